"""Ranked full-text search over names, descriptions and message text, with filters."""

from __future__ import annotations

import time

import pytest

from convstore import ConversationNotFoundError, ConversationStore, InvalidInputError


@pytest.fixture
def corpus(store: ConversationStore) -> dict[str, str]:
    refactor = store.create_conversation(
        "代码重构讨论", description="关于 AutoCoder 架构重构的讨论"
    )
    store.append_message(refactor.id, "user", "请帮我重构这段代码")
    store.append_message(
        refactor.id,
        "assistant",
        {"type": "code_suggestion", "code": "def f(): return 100", "explanation": "Faster LOOP"},
        metadata={"lang": "python"},
    )
    cooking = store.create_conversation("Cooking", description="Recipes from Café Müller")
    store.append_message(cooking.id, "user", 'She said "loop the dough" twice')
    store.append_message(cooking.id, "assistant", "Use 50 grams of flour, then loop again")
    return {"refactor": refactor.id, "cooking": cooking.id}


def contents(found: list) -> list:  # type: ignore[type-arg]
    return [m.content for m in found]


def test_chinese_without_spaces_short_queries_included(
    store: ConversationStore, corpus: dict[str, str]
) -> None:
    assert [c.id for c in store.search_conversations("重构")] == [corpus["refactor"]]
    assert [c.id for c in store.search_conversations("重")] == [corpus["refactor"]]
    assert [m.seq for m in store.search_messages("重构", conversation_id=corpus["refactor"])] == [1]
    assert store.search_messages("构重") == []  # characters in another order
    assert [c.id for c in store.search_conversations("autocoder 架构")] == [corpus["refactor"]]


def test_case_accents_and_punctuation_are_ignored(
    store: ConversationStore, corpus: dict[str, str]
) -> None:
    assert [c.id for c in store.search_conversations("cafe muller")] == [corpus["cooking"]]
    assert [c.id for c in store.search_conversations("CAFÉ")] == [corpus["cooking"]]
    assert contents(store.search_messages("faster loop")) == [
        {"type": "code_suggestion", "code": "def f(): return 100", "explanation": "Faster LOOP"}
    ]
    assert len(store.search_messages('"loop the dough"')) == 1
    assert len(store.search_messages("dough loop")) == 1  # words in any order
    assert store.search_messages('"dough loop"') == []  # but a phrase keeps its order
    assert len(store.search_messages("gram*")) == 1
    assert len(store.search_messages("loop -dough")) == 2


def test_content_is_searched_by_its_text_not_its_json(
    store: ConversationStore, corpus: dict[str, str]
) -> None:
    refactor = corpus["refactor"]
    assert store.search_messages("code_suggestion", conversation_id=refactor) != []  # a value
    assert store.search_messages("explanation", conversation_id=refactor) == []  # a key
    assert store.search_messages("type", conversation_id=refactor) == []


def test_names_weigh_more_than_messages(store: ConversationStore) -> None:
    chatter = store.create_conversation("General")
    store.append_messages(chatter.id, [{"role": "user", "content": "kubernetes kubernetes"}] * 3)
    titled = store.create_conversation("Kubernetes upgrade plan")
    store.append_message(titled.id, "user", "let us start")
    assert [c.id for c in store.search_conversations("kubernetes")] == [titled.id, chatter.id]
    assert [c.id for c in store.search_conversations("kubernetes", search_in_messages=False)] == [
        titled.id
    ]


def test_more_matches_rank_higher(store: ConversationStore) -> None:
    chat = store.create_conversation("ranking").id
    once = store.append_message(chat, "user", "deploy the service today please")
    twice = store.append_message(chat, "user", "deploy then deploy again please")
    store.append_message(chat, "user", "nothing relevant here at all")
    assert [m.id for m in store.search_messages("deploy")] == [twice.id, once.id]
    hits = store.search("deploy").hits
    assert hits[0].score > hits[1].score > 0


def test_filters(store: ConversationStore, corpus: dict[str, str]) -> None:
    assert {m.role.value for m in store.search_messages("loop", filters={"role": "user"})} == {
        "user"
    }
    assert len(store.search_messages("loop", filters={"role": ["user", "assistant"]})) == 3
    python_only = store.search_messages("loop", filters={"metadata": {"lang": "python"}})
    assert [m.metadata for m in python_only] == [{"lang": "python"}]
    assert store.search_messages("loop", filters={"status": "retracted"}) == []
    assert store.search_messages("loop", filters={"created_after": time.time() + 60}) == []
    scoped = store.search_messages(
        "loop",
        conversation_id=corpus["refactor"],
        filters={"conversation_ids": [corpus["cooking"]]},
    )
    assert scoped == []
    only = store.search_conversations("loop", filters={"conversation_ids": [corpus["cooking"]]})
    assert [c.id for c in only] == [corpus["cooking"]]
    assert store.search_conversations("loop", filters={"owner_id": "nobody"}) == []
    assert len(store.search_messages("loop", limit=2)) == 2
    assert len(store.search_messages("loop", offset=2)) == 1
    assert len(store.search_conversations("loop", limit=1)) == 1


def test_snippets_mark_the_matches(store: ConversationStore) -> None:
    chat = store.create_conversation("snippets").id
    store.append_message(
        chat, "user", "x " * 200 + "我们需要代码重构, then DEPLOY it " + "y " * 200
    )
    hit = store.search("重构 deploy").hits[0]
    assert hit.message is not None and hit.conversation_id == chat
    assert "«重构»" in hit.snippet.marked() and "«DEPLOY»" in hit.snippet.marked()
    assert len(hit.snippet.text) < 200 and hit.snippet.text.startswith("…")
    titled = store.search("snippets", target="conversations").hits[0]
    assert titled.conversation is not None and titled.snippet.marked() == "«snippets»"


def test_cursor_pages_through_every_hit_once(store: ConversationStore) -> None:
    chat = store.create_conversation("pages").id
    store.append_messages(chat, [{"role": "user", "content": f"needle {i}"} for i in range(25)])
    seen, cursor = [], None
    while True:
        page = store.search("needle", limit=10, cursor=cursor)
        seen += [h.message.id for h in page.hits if h.message]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 25
    with pytest.raises(InvalidInputError, match="different search"):
        store.search("other", cursor=store.search("needle", limit=10).next_cursor)
    with pytest.raises(InvalidInputError, match="not a cursor"):
        store.search("needle", cursor="garbage!")


def test_bad_queries_are_refused(store: ConversationStore, corpus: dict[str, str]) -> None:
    with pytest.raises(ConversationNotFoundError):
        store.search_messages("x", conversation_id="missing")
    for bad in ("", "   ", None, 5, '"unclosed', "-only", "a*b", "!!!"):
        with pytest.raises(InvalidInputError):
            store.search_messages(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            store.search_conversations(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unknown message filter keys: colour"):
        store.search_messages("x", filters={"colour": "red"})
    with pytest.raises(InvalidInputError, match="unknown conversation filter keys"):
        store.search_conversations("x", filters={"role": "user"})
    with pytest.raises(InvalidInputError, match="target"):
        store.search("x", target="users")  # type: ignore[arg-type]
    # text that looks like index syntax is only ever words to find
    assert store.search_messages("NEAR OR AND NOT") == []
    assert store.search_messages("terms : loop") == []


def test_edits_and_deletes_keep_the_index_in_step(
    store: ConversationStore, corpus: dict[str, str]
) -> None:
    message = store.search_messages('"50 grams"')[0]
    store.update_message(message.conversation_id, message.id, content="Use a kilo")
    assert store.search_messages('"50 grams"') == []
    assert len(store.search_messages("kilo")) == 1
    store.update_conversation(corpus["cooking"], name="Baking", description="bread")
    assert store.search_conversations("cooking", search_in_messages=False) == []
    assert len(store.search_conversations("baking")) == 1
    question = store.search_messages("帮我")[0]
    store.delete_message(corpus["refactor"], question.id)
    assert store.search_messages("帮我") == []
    store.delete_conversation(corpus["cooking"])
    assert store.search_messages("kilo") == []
    assert store.search_conversations("baking") == []


def test_very_common_queries_rank_the_newest_matches(
    store: ConversationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("convstore.backends.sql.ranking", "convstore.backends.files.search"):
        monkeypatch.setattr(f"{module}.RANK_WINDOW", 3)
    chat = store.create_conversation("window").id
    oldest = store.append_message(chat, "user", "needle needle needle")
    newer = [store.append_message(chat, "user", f"needle and other words {i}") for i in range(4)]
    found = store.search_messages("needle")
    assert oldest.id not in {m.id for m in found}  # the best match, but not among the newest 3
    assert {m.id for m in found} == {m.id for m in newer[1:]}
    assert store.search_messages('"needle needle"') == [oldest]  # a rarer query finds it


def test_a_word_inside_stars_finds_the_words_containing_it(
    store: ConversationStore, corpus: dict[str, str]
) -> None:
    chat = store.create_conversation("Code review of ConversationManagerConfig").id
    config = store.append_message(chat, "user", "ConversationManagerConfig needs a default")
    refactoring = store.append_message(chat, "assistant", "Refactoring: moved config to TOML")
    store.append_message(chat, "user", "nothing in common")
    assert {m.id for m in store.search_messages("*config*")} == {config.id, refactoring.id}
    assert [m.id for m in store.search_messages("*managerconf*")] == [config.id]
    assert [m.id for m in store.search_messages("*CONFIG* -*factor*")] == [config.id]
    assert [m.id for m in store.search_messages("*config* *toml*")] == [refactoring.id]
    assert store.search_messages("*qqqzzz*") == []
    assert len(store.search_messages("needs -*qqqzzz*")) == 1  # an exclusion of nothing
    assert [
        c.id for c in store.search_conversations("*managerconf*", search_in_messages=False)
    ] == [chat]
    assert (
        store.search("*managerconf*")
        .hits[0]
        .snippet.marked()
        .startswith("Conversation«ManagerConf»ig")
    )
    assert [c.id for c in store.search_conversations("*coder*")] == [corpus["refactor"]]
    assert [c.id for c in store.search_conversations("*重构*")] == [corpus["refactor"]]


def test_words_inside_stars_follow_edits(store: ConversationStore) -> None:
    chat = store.create_conversation("edits").id
    message = store.append_message(chat, "user", "first draft")
    store.update_message(chat, message.id, content="Kubernetes rollout")
    assert [m.id for m in store.search_messages("*bernet*")] == [message.id]
    store.update_conversation(chat, name="Observability")
    assert [c.id for c in store.search_conversations("*servab*")] == [chat]
    store.delete_conversation(chat)
    assert store.search_messages("*bernet*") == []  # a word of deleted text matches nothing


def test_a_word_inside_stars_stands_for_its_shortest_words(store: ConversationStore) -> None:
    from convstore.search.query import MAX_EXPANSIONS

    chat = store.create_conversation("many").id
    longest = store.append_message(chat, "user", "x" * 20 + "abc")
    words = [f"abc{i:04d}" for i in range(MAX_EXPANSIONS)]
    store.append_message(chat, "user", " ".join(words))
    found = store.search_messages("*abc*")
    assert longest.id not in {m.id for m in found}  # past the shortest words containing abc
    assert [m.id for m in store.search_messages("*xabc*")] == [longest.id]


def test_words_inside_stars_are_checked(store: ConversationStore) -> None:
    for bad in ("*ab*", "*a*b*", "**", "*x y*"):
        with pytest.raises(InvalidInputError):
            store.search_messages(bad)
