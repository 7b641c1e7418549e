"""Upgrading a store written by an older schema revision keeps what it holds searchable;
migrations are frozen (they import nothing of convstore, so later code cannot change
what an old revision does)."""

from __future__ import annotations

import ast
import os
import struct
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

import convstore
from convstore.backends.sql.migrate import MIGRATIONS
from tests.conftest import POSTGRES15, backend_url, empty_database, postgres_server_url

ROWS = [
    "INSERT INTO conversations (id, name, state, created_at, updated_at, metadata, version,"
    " message_count, last_seq, prompt_tokens, completion_tokens)"
    " VALUES ('c1', 'Kubernetes notes', 'active', :t, :t, '{}', 2, 1, 1, 0, 0)",
    "INSERT INTO messages (id, conversation_id, seq, active, role, type, content, status,"
    " created_at, updated_at, metadata) VALUES ('m1', 'c1', 1, true, 'user', 'text',"
    " '\"ConversationManagerConfig\"', 'complete', :t, :t, '{}')",
    "INSERT INTO message_search (message_id, conversation_id, terms, singles)"
    " VALUES ('m1', 'c1', 'conversationmanagerconfig', '')",
    "INSERT INTO conversation_search (conversation_id, name_terms, name_singles,"
    " description_terms, description_singles) VALUES ('c1', 'kubernetes notes', '', '', '')",
]


def written_at(url: str, revision: str, rows: list[str] = ROWS) -> None:
    """A store at ``revision`` holding one conversation, written as that revision would."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        upgrade(conn, revision)
        for statement in rows:
            conn.execute(sa.text(statement), {"t": time.time()})
    engine.dispose()


def upgrade(conn: sa.Connection, revision: str) -> None:
    """Run the migrations up to ``revision`` on ``conn``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def upgraded(url: str, revision: str, *queries: str) -> list[list[tuple[object, ...]]]:
    """Upgrade the store at ``url`` to ``revision``, then the rows of each query."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        upgrade(conn, revision)
        found = [[tuple(row) for row in conn.execute(sa.text(q)).all()] for q in queries]
    engine.dispose()
    return found


def test_no_migration_imports_convstore() -> None:
    """Migrations use frozen copies of what they need: a later change of convstore's
    code must not change what an old revision does to a database."""
    modules = sorted(MIGRATIONS.rglob("*.py"))
    assert len(modules) > 7
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = ["." if node.level else node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"convstore", "."}, f"{module.name}: {name}"


# Rows of revision 0001, and the index text revision 0002 makes of them
OLD_CONVERSATION = (
    "INSERT INTO conversations (id, name, description, state, created_at, updated_at,"
    " metadata, version, message_count, last_seq, prompt_tokens, completion_tokens)"
    " VALUES ('c1', 'Überblick 日本', NULL, 'active', 1, 1, '{}', 1, 2, 2, 0, 0)"
)
OLD_MESSAGE = (
    "INSERT INTO messages (id, conversation_id, seq, active, role, type, content, status,"
    " created_at, updated_at, metadata) VALUES (:id, 'c1', :seq, true, 'user', 'text',"
    " :content, 'complete', 1, 1, '{}')"
)
OLD_CONTENTS = [
    '"Café Ｆｕｌｌ-width 代码重构"',
    '{"kind": "tool_call", "args": ["帮我", {"q": "ÉCOLE"}]}',
]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_full_text_revision_indexes_what_is_stored(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        url = backend_url("sqlite", tmp_path)
    else:
        url = empty_database(postgres_server_url())
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        upgrade(conn, "0001")
        conn.execute(sa.text(OLD_CONVERSATION))
        for seq, content in enumerate(OLD_CONTENTS, start=1):
            conn.execute(sa.text(OLD_MESSAGE), {"id": f"m{seq}", "seq": seq, "content": content})
    engine.dispose()
    messages, conversations = upgraded(
        url,
        "0002",
        "SELECT message_id, terms, singles FROM message_search ORDER BY message_id",
        "SELECT conversation_id, name_terms, name_singles, description_terms,"
        " description_singles FROM conversation_search",
    )
    assert messages == [
        ("m1", "cafe full width 代码 码重 重构", "代 码 重 构"),
        ("m2", "tool call 帮我 ecole", "帮 我"),
    ]
    assert conversations == [("c1", "uberblick 日本", "日 本", "", "")]


def test_the_pgvector_revision_copies_stored_vectors() -> None:
    url = empty_database(postgres_server_url())  # the private server, which has pgvector
    vector = struct.pack("<3f", 0.5, -1.25, 3.0)
    written_at(url, "0005")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO embeddings (message_id, model, vector) VALUES ('m1', 'h', :v)"),
            {"v": vector},
        )
    engine.dispose()
    [copied] = upgraded(url, "0006", "SELECT message_id, embedding::text FROM embeddings")
    assert copied == [("m1", "[0.5,-1.25,3]")]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_vocabulary_is_filled_from_what_is_stored(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        url = backend_url("sqlite", tmp_path)
    else:
        url = empty_database(postgres_server_url())
    written_at(url, "0006")
    with convstore.open(url) as store:
        assert [m.id for m in store.search_messages("*managerconf*")] == ["m1"]
        assert [c.id for c in store.search_conversations("*bernet*")] == ["c1"]


def test_without_leave_to_enable_pg_trgm_the_vocabulary_is_read_whole() -> None:
    """A user who may create tables but not extensions (no CREATE on the database) still
    gets a store whose *fragment* queries work, without the trigram index."""
    import psycopg

    server = make_url(os.environ.get("CONVSTORE_TEST_POSTGRES15_URL", POSTGRES15))
    database = make_url(empty_database(server.render_as_string(hide_password=False)))
    role = f"limited_{uuid.uuid4().hex[:8]}"
    admin = database.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {role}")
    try:
        as_role = database.set(username=role, password=None)
        with convstore.open(as_role.render_as_string(hide_password=False)) as store:
            chat = store.create_conversation("limited").id
            message = store.append_message(chat, "user", "ConversationManagerConfig")
            assert store.search_messages("*managerconf*") == [message]
        with psycopg.connect(admin) as conn:
            indexes = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'search_words'"
            ).fetchall()
        assert indexes == [("search_words_pkey",)]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
