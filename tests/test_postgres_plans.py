"""Every query the store makes on PostgreSQL is answered through an index, checked with
EXPLAIN on tables of 100,000 conversations and 200,000 messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

import convstore
from convstore import ConversationStore
from convstore.backends.sql import statements
from convstore.backends.sql.prepared import PreparedStatement
from tests.conftest import backend_url

FILL = [
    """INSERT INTO conversations (id, owner_id, name, description, state, head_message_id,
        created_at, updated_at, deleted_at, metadata, version, message_count, last_seq,
        prompt_tokens, completion_tokens)
       SELECT 'c' || g, 'owner' || (g % 100), 'conversation ' || g, NULL, 'active', NULL,
        g, g, NULL, '{}', 1, 2, 2, 0, 0 FROM generate_series(1, 100000) g""",
    """INSERT INTO messages (id, conversation_id, parent_id, seq, active, role, type, content,
        status, sender_id, created_at, updated_at, metadata, usage)
       SELECT 'm' || g, 'c' || (g % 100000 + 1), NULL, g / 100000 + 1, true, 'user', 'text',
        '"word' || g || '"', 'complete', NULL, g, g, '{}', NULL
       FROM generate_series(0, 199999) g""",
    """INSERT INTO message_search (message_id, conversation_id, terms, singles)
       SELECT id, conversation_id, 'word' || substr(id, 2) || ' common', '' FROM messages""",
    """INSERT INTO conversation_search (conversation_id, name_terms, name_singles,
        description_terms, description_singles)
       SELECT id, 'conversation ' || substr(id, 2), '', '', '' FROM conversations""",
    "ANALYZE",
]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ConversationStore]]:
    url = backend_url("postgres", tmp_path_factory.mktemp("plans"))
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in FILL:
            conn.execute(statement)
    with convstore.open(url) as store:
        yield url, store


def scans(store: ConversationStore, query: str, params: Any) -> list[str]:
    """The scan nodes of the plan PostgreSQL chooses on one of the store's connections
    (with its settings), as 'Node Type on relation'."""
    connection = store._backend._engine.raw_connection()  # type: ignore[attr-defined]
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {query}", params)
            plan = cursor.fetchone()
    finally:
        connection.close()
    assert plan is not None
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            found.append(f"{node['Node Type']} on {node['Relation Name']}")
        for child in node.get("Plans", []):
            walk(child)

    walk((plan[0] if isinstance(plan[0], list) else json.loads(plan[0]))[0]["Plan"])
    return found


def prepared(store: ConversationStore, statement: sa.Select[Any], **values: Any) -> tuple[str, Any]:
    compiled = PreparedStatement(statement, store._backend._engine.dialect, None)  # type: ignore[attr-defined]
    return compiled.sql, compiled.parameters(values)


def assert_indexed(found: list[str]) -> None:
    assert found, "the plan touches no table"
    assert not [s for s in found if s.startswith("Seq Scan")], found


def test_listing_newest_conversations(big: tuple[str, ConversationStore]) -> None:
    _, store = big
    statement = statements.list_statement("updated_at", True, limited=True, skipping=False)
    assert_indexed(scans(store, *prepared(store, statement, limit=50, offset=0)))
    assert [c.id for c in store.list_conversations(limit=3)] == ["c100000", "c99999", "c99998"]


@contextmanager
def queries_of(store: ConversationStore) -> Iterator[list[tuple[str, Any]]]:
    """The (SQL, parameters) SQLAlchemy sends while the block runs."""
    captured: list[tuple[str, Any]] = []
    engine = store._backend._engine  # type: ignore[attr-defined]

    def listener(*args: Any) -> None:
        captured.append((args[2], args[3]))  # conn, cursor, statement, parameters, ...

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield captured
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


def test_listing_by_owner(big: tuple[str, ConversationStore]) -> None:
    _, store = big
    with queries_of(store) as captured:
        assert len(store.list_conversations(limit=20, filters={"owner_id": "owner7"})) == 20
    assert_indexed(scans(store, *captured[-1]))


def test_newest_page_of_a_conversation(big: tuple[str, ConversationStore]) -> None:
    _, store = big
    statement = statements.branch_statement(
        before=False, after=False, newest_first=True, limited=True, skipping=False
    )
    query = prepared(store, statement, conversation_id="c42", limit=50, offset=0)
    assert_indexed(scans(store, *query))
    assert [m.seq for m in store.get_messages("c42", limit=50, newest_first=True)] == [2, 1]


def test_search(big: tuple[str, ConversationStore]) -> None:
    _, store = big
    with queries_of(store) as captured:
        found = store.search_messages("word12345")
        conversations = store.search_conversations("conversation 777", search_in_messages=False)
    assert [m.id for m in found] == ["m12345"]
    assert conversations[0].id == "c777"
    searches = [(q, p) for q, p in captured if "to_tsquery" in q]
    assert len(searches) >= 3
    for query, params in searches:
        assert_indexed(scans(store, query, params))


def test_store_holds_what_was_loaded(big: tuple[str, ConversationStore]) -> None:
    _, store = big
    assert store.count_conversations() == 100_000
    assert store.count_messages() == 200_000


def test_words_inside_stars_are_looked_up_through_trigrams(tmp_path: Any) -> None:
    """On a server with pg_trgm (the machine's PostgreSQL 15), the vocabulary lookup of
    a *fragment* reads a trigram index, not all 100,000 words."""
    url = backend_url("postgres15", tmp_path)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO search_words SELECT 'word' || g FROM generate_series(1, 100000) g"
        )
        conn.execute("ANALYZE search_words")
    with convstore.open(url) as store:
        chat = store.create_conversation("plans").id
        wanted = store.append_message(chat, "user", "see word12345")
        with queries_of(store) as captured:
            assert store.search_messages("*ord1234*") == [wanted]
        lookups = [(q, p) for q, p in captured if "search_words" in q]
        assert len(lookups) == 1
        assert "Bitmap Heap Scan on search_words" in scans(store, *lookups[0])
