"""Runs of the ChatGPT and Claude importers: inputs, re-imports, updates, ids, broken
exports and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import convstore
from convstore import ConcurrencyError, ConversationStore, InvalidInputError
from convstore.cli import app
from convstore.ids import scoped_id
from convstore.importers import ImportReport, import_chatgpt, import_claude
from convstore.importers import source as source_module
from tests.export_builders import ChatGPT, Claude, write_export, write_zip
from tests.test_importers import CLAUDE_ID, TRIP, claude_chat, records, tree, trip_plan

runner = CliRunner()


def short(title: str, conversation_id: str, *node_ids: str) -> ChatGPT:
    """A conversation of alternating user and assistant messages with these node ids."""
    chat = ChatGPT(title, conversation_id)
    parent = "root"
    for number, node_id in enumerate(node_ids):
        role = "user" if number % 2 == 0 else "assistant"
        parent = chat.node(node_id, parent, role, f"{title} {number}", at=number)
    return chat


def snapshot(store: ConversationStore) -> dict[str, Any]:
    """Every conversation with its messages, as stored."""
    found = {}
    for conversation in store.list_conversations():
        exported = store.export_conversation(conversation.id)
        assert exported is not None
        found[conversation.id] = (exported[0], exported[1])
    return found


# inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["conversations.json", "Export 2025-01-01/conversations.json"])
def test_zip_export_is_read_in_place(store: ConversationStore, tmp_path: Path, member: str) -> None:
    packed = write_zip(tmp_path / "export.zip", [trip_plan()], member)
    report = import_chatgpt(store, packed)
    assert (report.imported, report.messages) == (1, 5)
    assert [node for node, _ in tree(store, TRIP)] == ["q1", "a1", "a1r", "q2", "a2"]
    claude = write_zip(tmp_path / "claude.zip", [claude_chat()])
    with convstore.open("memory://") as other:
        assert import_claude(other, claude).imported == 1
        assert tree(other, CLAUDE_ID)[-1] == ("a2", "h1")


def test_directory_with_split_conversation_files(tmp_path: Path) -> None:
    write_export(tmp_path / "conversations-000.json", [short("One", "one", "o1", "o2")])
    write_export(tmp_path / "conversations-001.json", [short("Two", "two", "t1")])
    (tmp_path / "user.json").write_text("{}")
    with convstore.open("memory://") as store:
        report = import_chatgpt(store, tmp_path)
        assert (report.conversations, report.imported, report.messages) == (2, 2, 3)


def test_small_reads_give_the_same_result_and_progress_reaches_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shorts = [short(f"S{n}", f"s{n}", f"x{n}", f"y{n}") for n in range(10)]
    path = write_export(tmp_path / "conversations.json", [trip_plan(), *shorts])
    with convstore.open("memory://") as whole:
        import_chatgpt(whole, path)
        expected = snapshot(whole)
    monkeypatch.setattr(source_module, "CHUNK", 7)  # every conversation straddles reads
    seen: list[tuple[int, int]] = []
    with convstore.open("memory://") as pieces:
        import_chatgpt(pieces, path, on_progress=lambda done, total: seen.append((done, total)))
        assert snapshot(pieces) == expected
    size = path.stat().st_size
    assert len(seen) == 11 and seen[-1] == (size, size) and seen[0][0] < size / 2
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[{", "invalid JSON"),
        ('{"conversations": []}', "expected a JSON array of conversations"),
        ("[] []", "unexpected text after the array"),
        ("[{} {}]", "expected ',' or ']' after a conversation"),
        ("[NaN]", "invalid JSON (NaN is not valid JSON)"),
    ],
)
def test_a_file_that_is_not_a_json_array_is_refused(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "conversations.json"
    path.write_text(content)
    with convstore.open("memory://") as store, pytest.raises(InvalidInputError) as caught:
        import_chatgpt(store, path, skip_broken=True)  # elements' own problems are skipped
    assert str(path) in caught.value.message and problem in caught.value.message


def test_unreadable_inputs_are_refused(tmp_path: Path) -> None:
    not_utf8 = tmp_path / "latin1.json"
    not_utf8.write_bytes('[{"title": "caf\xe9"}]'.encode("latin-1"))
    empty_zip = write_zip(tmp_path / "other.zip", [], member="notes.json")
    cases = [
        (tmp_path / "missing.json", "cannot read export"),
        (not_utf8, "is not UTF-8 text"),
        (empty_zip, "holds no conversations.json"),
        (tmp_path, "holds no conversations.json"),
    ]
    with convstore.open("memory://") as store:
        for path, problem in cases:
            with pytest.raises(InvalidInputError, match=problem):
                import_claude(store, path)
        assert store.count_conversations() == 0


# idempotency and updates --------------------------------------------------------------


def test_importing_the_same_export_again_changes_nothing(
    store: ConversationStore, tmp_path: Path
) -> None:
    chats = [trip_plan(), short("Second", "second", "s1", "s2")]
    path = write_export(tmp_path / "conversations.json", chats)
    import_chatgpt(store, path)
    before, mark = snapshot(store), store.change_mark()
    again = import_chatgpt(store, path, update=True)
    assert (again.conversations, again.unchanged, again.imported, again.updated) == (2, 2, 0, 0)
    assert again.messages == 0 and not again.skipped
    assert store.change_mark() == mark and snapshot(store) == before
    claude = write_export(tmp_path / "claude.json", [claude_chat()])
    import_claude(store, claude)
    assert import_claude(store, claude).unchanged == 1


def test_update_replaces_only_conversations_whose_export_changed(
    store: ConversationStore, tmp_path: Path
) -> None:
    unchanged = short("Second", "second", "s1", "s2")
    path = write_export(tmp_path / "conversations.json", [trip_plan(), unchanged])
    import_chatgpt(store, path)
    first = store.get_conversation(TRIP)
    assert first is not None
    changed = trip_plan()
    changed.node("q3", "a2", "user", "And Nara?", at=70)
    changed.fields["update_time"] += 100
    path = write_export(tmp_path / "conversations.json", [changed, unchanged])
    mark = store.change_mark()
    kept = import_chatgpt(store, path)
    assert (kept.outdated, kept.unchanged, kept.updated) == (1, 1, 0)
    assert "--update re-imports them" in kept.summary()[0]
    assert store.change_mark() == mark  # nothing written without update
    report = import_chatgpt(store, path, update=True)
    assert (report.updated, report.unchanged, report.messages) == (1, 1, 6)
    conversation = store.get_conversation(TRIP)
    assert conversation is not None and conversation.head_message_id == "q3"
    assert conversation.version == first.version + 1
    assert tree(store, TRIP)[-1] == ("q3", "a2")
    assert import_chatgpt(store, path, update=True).unchanged == 2


# ids ----------------------------------------------------------------------------------


def test_invalid_or_taken_source_ids_get_stable_derived_ids(
    store: ConversationStore, tmp_path: Path
) -> None:
    store.create_conversation("mine", conversation_id="taken")
    chats = [
        short("Odd ids", "conv with spaces!", "node one", "node two"),
        short("Taken id", "taken", "t1", "t2"),
        short("Same nodes", "first", "n1", "n2"),
        short("Same nodes again", "second", "n1", "n2"),  # node ids another one uses
    ]
    path = write_export(tmp_path / "conversations.json", chats)
    report = import_chatgpt(store, path)
    assert report.imported == 4 and store.count_conversations() == 5
    by_source = {c.metadata["source"]["id"]: c for c in store.list_conversations() if c.metadata}
    odd = by_source["conv with spaces!"]
    assert len(odd.id) == 26 and list(records(store, odd.id)) != ["node one", "node two"]
    assert [m.metadata["source"]["id"] for m in records(store, odd.id).values()] == [
        "node one",
        "node two",
    ]
    assert by_source["taken"].id != "taken"
    assert store.get_conversation("taken") is not None  # the store's own, left alone
    assert list(records(store, "first")) == ["n1", "n2"]
    again = list(records(store, "second"))
    assert again != ["n1", "n2"] and len(set(again)) == 2
    assert import_chatgpt(store, path).unchanged == 4  # found again under derived ids


def test_each_user_imports_into_their_own_view(store: ConversationStore, tmp_path: Path) -> None:
    path = write_export(tmp_path / "conversations.json", [trip_plan()])
    alice, bob = store.for_user("alice"), store.for_user("bob")
    assert import_chatgpt(alice, path).imported == 1
    assert import_chatgpt(bob, path).imported == 1
    assert import_chatgpt(bob, path).unchanged == 1
    [mine] = alice.list_conversations()
    [theirs] = bob.list_conversations()
    assert (mine.owner_id, theirs.owner_id) == ("alice", "bob")
    # ids chosen in a user's view are scoped to the user, as the store does for callers
    assert (mine.id, theirs.id) == (scoped_id(TRIP, "alice"), scoped_id(TRIP, "bob"))
    assert mine.head_message_id == scoped_id("a2", "alice")
    assert list(records(alice, mine.id))[:2] == [scoped_id("q1", "alice"), scoped_id("a1", "alice")]


# broken exports -----------------------------------------------------------------------

Breakage = Callable[[dict[str, Any]], None]


def _set(path: list[Any], value: Any) -> Breakage:
    def apply(raw: dict[str, Any]) -> None:
        target = raw
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return apply


_DELETE = object()
_Q = ["mapping", "q"]
_M = [*_Q, "message"]
_AT = "mapping['q'].message"
CHATGPT_BREAKAGES = [
    (_set([*_M, "author", "role"], 5), f"{_AT}.author.role: expected a string"),
    (_set([*_M, "author", "role"], "robot"), f"{_AT}.author.role: unknown role 'robot'"),
    (_set(["mapping"], _DELETE), "mapping: is missing"),
    (_set([*_Q, "parent"], "ghost"), "mapping['q']: its parent 'ghost' is not in the export"),
    (_set(["mapping", "root", "parent"], "a"), "its parents go round in a cycle"),
    (_set(["current_node"], "nope"), "current_node: 'nope' is not a node of the mapping"),
    (_set([*_M, "create_time"], "now"), f"{_AT}.create_time: expected a number of seconds"),
    (_set([*_M, "content", "parts"], "x"), f"{_AT}.content.parts: expected an array"),
    (_set([*_M, "content", "parts", 0], "\x00"), "mapping['q']: content contains a NUL"),
    (_set([*_M, "content", "parts", 0], "\ud800"), "mapping['q']: content contains a lone"),
]


@pytest.mark.parametrize(("breakage", "problem"), CHATGPT_BREAKAGES)
def test_a_broken_chatgpt_conversation_names_itself_and_the_field(
    tmp_path: Path, breakage: Breakage, problem: str
) -> None:
    broken = short("Broken", "broken-1", "q", "a").to_json()
    breakage(broken)
    path = write_export(tmp_path / "conversations.json", [trip_plan(), broken])
    with convstore.open("memory://") as store:
        with pytest.raises(InvalidInputError) as caught:
            import_chatgpt(store, path)
        assert caught.value.message.startswith("conversation 'Broken' (broken-1): ")
        assert problem in caught.value.message
        assert [c.id for c in store.list_conversations()] == [TRIP]  # the one before stays


def _claude_breakages() -> list[tuple[Breakage, str]]:
    first = ["chat_messages", 0]
    return [
        (_set([*first, "sender"], "robot"), "chat_messages[0].sender: unknown sender 'robot'"),
        (_set([*first, "created_at"], "soon"), "chat_messages[0].created_at: expected an ISO"),
        (_set([*first, "content", 0, "type"], _DELETE), "chat_messages[0].content[0].type: is"),
        (_set(["chat_messages", 1, "uuid"], "m1"), "chat_messages[1]: the id 'm1' repeats"),
        (_set(["uuid"], 7), "uuid: expected a string"),
    ]


@pytest.mark.parametrize(("breakage", "problem"), _claude_breakages())
def test_a_broken_claude_conversation_names_itself_and_the_field(
    tmp_path: Path, breakage: Breakage, problem: str
) -> None:
    chat = Claude("Broken", "broken-2")
    chat.message("m1", "human", "hi", at=1)
    chat.message("m2", "assistant", "hello", at=2)
    broken = chat.to_json()
    breakage(broken)
    path = write_export(tmp_path / "conversations.json", [broken])
    with convstore.open("memory://") as store, pytest.raises(InvalidInputError) as caught:
        import_claude(store, path)
    assert caught.value.message.startswith("conversation 'Broken'")
    assert problem in caught.value.message


def test_broken_conversations_are_skipped_when_asked_and_nothing_partial_is_stored(
    store: ConversationStore, tmp_path: Path
) -> None:
    broken = short("Broken", "broken-1", "q", "a").to_json()
    broken["mapping"]["a"]["message"]["content"]["parts"] = ["nul \x00"]
    chats = [short("Before", "before", "b1"), broken, "not a conversation", trip_plan()]
    path = write_export(tmp_path / "conversations.json", chats)
    with pytest.raises(InvalidInputError, match=r"^conversation 'Broken' \(broken-1\): "):
        import_chatgpt(store, path)
    assert [c.id for c in store.list_conversations()] == ["before"]
    report = import_chatgpt(store, path, skip_broken=True)
    assert (report.imported, report.unchanged, len(report.broken)) == (1, 1, 2)
    assert report.broken[1] == "conversation #3: expected an object"
    assert store.get_conversation("broken-1") is None
    assert store.get_message("broken-1", "q") is None and store.count_messages() == 6
    assert "2 broken conversation(s) not imported:" in report.summary()


def test_a_conflict_that_derived_ids_cannot_avoid_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_export(tmp_path / "conversations.json", [trip_plan()])
    with convstore.open("memory://") as store:

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise ConcurrencyError("taken")

        monkeypatch.setattr(store, "import_conversation", refuse)
        with pytest.raises(ConcurrencyError):
            import_chatgpt(store, path, skip_broken=True)


# the CLI ------------------------------------------------------------------------------


def test_cli_imports_exports_and_prints_a_summary(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    packed = write_zip(tmp_path / "chatgpt.zip", [trip_plan()])
    done = runner.invoke(app, ["import", str(packed), "--format", "chatgpt", "--url", url])
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        "1 conversation(s) in the chatgpt export: 1 imported, 0 updated, 0 unchanged",
        "5 message(s) written, with 2 alternative branch(es)",
        "2 node(s) skipped: 1 empty root node, 1 hidden message",
    ]
    again = runner.invoke(app, ["import", str(packed), "--format", "chatgpt", "--url", url])
    assert "0 imported, 0 updated, 1 unchanged" in again.output
    claude = write_export(tmp_path / "claude.json", [claude_chat()])
    done = runner.invoke(app, ["import", str(claude), "--format", "claude", "--url", url])
    assert done.exit_code == 0 and "1 imported" in done.output
    with convstore.open(url) as store:
        assert store.count_conversations() == 2 and store.count_messages() == 8


def test_cli_broken_export_is_one_error_line_unless_skipped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    broken = short("Broken", "broken-1", "q").to_json()
    broken["mapping"]["q"]["message"]["author"] = "me"
    path = write_export(tmp_path / "conversations.json", [broken, trip_plan()])
    failed = runner.invoke(app, ["import", str(path), "--format", "chatgpt", "--url", url])
    assert failed.exit_code == 2 and failed.output.count("\n") == 1
    assert "[INVALID_INPUT]: conversation 'Broken' (broken-1): mapping['q'].message.author: " in (
        failed.output
    )
    skipped = runner.invoke(
        app, ["import", str(path), "--format", "chatgpt", "--skip-broken", "--url", url]
    )
    assert skipped.exit_code == 0 and "1 imported" in skipped.output
    assert "1 broken conversation(s) not imported:" in skipped.output


def test_cli_refuses_options_of_the_other_kind(tmp_path: Path) -> None:
    path = write_export(tmp_path / "conversations.json", [])
    replace = runner.invoke(app, ["import", str(path), "--format", "claude", "--replace"])
    assert replace.exit_code == 2 and "--replace is for archives" in replace.output
    update = runner.invoke(app, ["import", str(path), "--update", "--url", "memory://"])
    assert update.exit_code == 2 and "are for --format chatgpt or claude" in update.output


def test_report_summary_lists_every_count() -> None:
    report = ImportReport("claude", conversations=3, imported=1, updated=1, unchanged=1)
    report.skipped.update({"hidden message": 2})
    assert report.summary() == [
        "3 conversation(s) in the claude export: 1 imported, 1 updated, 1 unchanged",
        "0 message(s) written, with 0 alternative branch(es)",
        "2 node(s) skipped: 2 hidden message",
    ]
