"""The portable archive: lossless between every pair of backends, and refused when damaged."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import convstore
from convstore import ConcurrencyError, ConversationStore, DataIntegrityError, InvalidInputError
from convstore import archive as archive_module
from convstore.archive import (
    ArchiveReader,
    ArchiveWriter,
    ConversationEntry,
    DeletedEntry,
    Header,
    export_store,
    import_archive,
    iter_conversations,
    redact_url,
    verify_archive,
)
from tests.archive_data import fill, snapshot
from tests.conftest import ENGINES, backend_url


@pytest.fixture
def source(tmp_path: Path) -> Iterator[ConversationStore]:
    with convstore.open(backend_url("sqlite", tmp_path / "source")) as store:
        fill(store)
        yield store


@pytest.mark.parametrize("target_backend", ENGINES)
@pytest.mark.parametrize("source_backend", ENGINES)
def test_round_trip_between_backends_is_lossless(
    source_backend: str, target_backend: str, tmp_path: Path
) -> None:
    path = tmp_path / "all.jsonl"
    with convstore.open(backend_url(source_backend, tmp_path / "source")) as source:
        ids = fill(source)
        expected = snapshot(source)
        counts = export_store(source, path)
    assert (counts.conversations, counts.messages) == (3, 5)
    with convstore.open(backend_url(target_backend, tmp_path / "target")) as target:
        imported = import_archive(target, path)
        assert (imported.conversations, imported.messages) == (3, 5)
        assert snapshot(target) == expected
        assert list(snapshot(target)) == ids
        assert target.check_integrity() == []
        assert target.append_message(ids[0], "user", "after").seq == 4  # seq carries on


def test_archive_layout(source: ConversationStore, tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    export_store(source, path)
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    header, *body, trailer = lines
    assert header["format"] == "convstore-archive" and header["version"] == 1
    assert (header["kind"], header["since"]) == ("full", None)
    assert header["source"] == source.url
    kinds = [line["type"] for line in body]
    assert (
        kinds
        == ["conversation", "message", "message", "conversation", "conversation"] + ["message"] * 3
    )
    assert trailer["type"] == "end" and (trailer["conversations"], trailer["messages"]) == (3, 5)
    assert "代码重构讨论" in path.read_text("utf-8")  # UTF-8, not \u escapes


def test_gzip_round_trip_and_detection_by_magic_bytes(
    source: ConversationStore, tmp_path: Path
) -> None:
    packed = tmp_path / "all.jsonl.gz"
    export_store(source, packed)
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed.read_bytes()).startswith(b'{"format":"convstore-archive"')
    misnamed = tmp_path / "all.jsonl"
    misnamed.write_bytes(packed.read_bytes())
    with convstore.open("memory://") as target:
        import_archive(target, misnamed)
        assert snapshot(target) == snapshot(source)


def test_progress_reports_each_conversation(source: ConversationStore, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    export_store(source, tmp_path / "a.jsonl", on_progress=lambda *c: calls.append(c))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    calls.clear()
    with convstore.open("memory://") as target:
        import_archive(target, tmp_path / "a.jsonl", on_progress=lambda *c: calls.append(c))
    assert calls == [(1, 3), (2, 3), (3, 3)]


# damaged archives ---------------------------------------------------------------------

Damage = Callable[[list[bytes]], list[bytes]]


def _replace_line(index: int, change: Callable[[dict[str, object]], object]) -> Damage:
    def damage(lines: list[bytes]) -> list[bytes]:
        value = json.loads(lines[index])
        changed = change(value)
        lines[index] = json.dumps(value if changed is None else changed).encode() + b"\n"
        return lines

    return damage


def _set_record(field: str, value: object) -> Callable[[dict[str, object]], None]:
    def change(line: dict[str, object]) -> None:
        record = line["record"]
        assert isinstance(record, dict)
        record[field] = value

    return change


def _flip_content_byte(lines: list[bytes]) -> list[bytes]:
    lines[2] = lines[2].replace(b'"content":{"z":1', b'"content":{"z":2')
    return lines


DAMAGES: dict[str, tuple[Damage, int, str]] = {
    # name: (damage, line named in the error, words in the error)
    "truncated": (lambda lines: lines[:-1], 10, "truncated"),
    "cut mid-line": (lambda lines: [*lines[:5], lines[5][:20]], 6, "not valid JSON"),
    "flipped byte": (_flip_content_byte, 10, "checksum mismatch"),
    "bad JSON line": (lambda lines: [*lines[:3], b"{nope\n", *lines[4:]], 4, "not valid JSON"),
    "unknown version": (_replace_line(0, lambda h: {**h, "version": 2}), 1, "version 2"),
    "not an archive": (_replace_line(0, lambda h: {"format": "other"}), 1, "not a convstore"),
    "bad record": (_replace_line(3, _set_record("seq", "x")), 4, "seq"),
    "unknown field": (_replace_line(1, _set_record("colour", "red")), 2, "colour"),
    "path in id": (_replace_line(4, _set_record("id", "../../etc/passwd")), 5, "invalid"),
    "NaN": (
        lambda lines: [*lines[:3], lines[3].replace(b'"seq":3', b'"seq":NaN'), *lines[4:]],
        4,
        "NaN",
    ),
    "lone surrogate": (_replace_line(3, _set_record("content", "\ud800")), 4, "surrogate"),
    "inconsistent": (_replace_line(1, _set_record("message_count", 9)), 2, "message_count"),
    "orphan message": (lambda lines: [lines[0], *lines[2:]], 2, "before any conversation"),
    "after the end": (lambda lines: [*lines, lines[1]], 11, "after the end"),
    "empty": (lambda lines: [], 1, "empty"),
    "unknown kind": (_replace_line(0, lambda h: {**h, "kind": "partial"}), 1, "'partial'"),
    "bad created_at": (_replace_line(0, lambda h: {**h, "created_at": "now"}), 1, "created_at"),
    "unknown line type": (_replace_line(4, lambda line: {"type": "note"}), 5, "'note'"),
    "not an object": (lambda lines: [*lines[:4], b"[1]\n", *lines[5:]], 5, "JSON object"),
    "repeated": (lambda lines: [*lines[:4], lines[1], *lines[2:]], 5, "appears twice"),
    "counts": (_replace_line(9, lambda end: {**end, "messages": 4}), 10, "counts"),
}


@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_archive_is_refused_and_changes_nothing(
    damage: str, backend: str, source: ConversationStore, tmp_path: Path
) -> None:
    path = tmp_path / "damaged.jsonl"
    export_store(source, path)
    change, line, words = DAMAGES[damage]
    path.write_bytes(b"".join(change(path.read_bytes().splitlines(keepends=True))))
    with convstore.open(backend_url(backend, tmp_path / "target")) as target:
        target.create_conversation("already here")
        before = snapshot(target)
        with pytest.raises(DataIntegrityError) as raised:
            import_archive(target, path, replace=True)
        assert snapshot(target) == before
    message = raised.value.message
    assert str(path) in message and f"line {line}:" in message and words in message, message


def test_damaged_gzip_is_refused(source: ConversationStore, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    export_store(source, path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(
        DataIntegrityError, match=r"a\.jsonl\.gz, line \d+: the file cannot be read"
    ):
        verify_archive(path)


def test_unreadable_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read archive"):
        verify_archive(tmp_path / "missing.jsonl")
    with (
        convstore.open("memory://") as store,
        pytest.raises(InvalidInputError, match="cannot write archive"),
    ):
        export_store(store, tmp_path / "no" / "such" / "dir.jsonl")


# importing ----------------------------------------------------------------------------


def test_import_without_replace_refuses_existing_conversations(
    source: ConversationStore, tmp_path: Path
) -> None:
    path = tmp_path / "a.jsonl"
    export_store(source, path)
    with convstore.open("memory://") as target:
        import_archive(target, path)
        target.delete_conversation(next(iter(snapshot(target))))
        before = snapshot(target)
        with pytest.raises(ConcurrencyError, match="already exists"):
            import_archive(target, path)
        assert snapshot(target) == before  # the missing one was not imported either
        import_archive(target, path, replace=True)
        assert snapshot(target) == snapshot(source)


def test_deletions_are_applied_only_with_replace(source: ConversationStore, tmp_path: Path) -> None:
    [first, *_] = snapshot(source)
    path = tmp_path / "deletes.jsonl"
    header = Header(kind="incremental", created_at=1.0, source="memory://", since=None)
    with ArchiveWriter(path, header) as writer:
        writer.write_deleted(first)
        writer.commit()
    with ArchiveReader(path) as reader:
        assert list(reader.entries()) == [DeletedEntry(first)]
        assert reader.header == header
    assert import_archive(source, path).deleted == 0 and source.get_conversation(first)
    assert import_archive(source, path, replace=True).deleted == 1
    assert source.get_conversation(first) is None


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_an_unfinished_writer_leaves_no_file(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    with ArchiveWriter(path, Header(kind="full", created_at=1.0, source="x")) as writer:
        writer.write_deleted("abc")
    assert list(tmp_path.iterdir()) == []


# iterating a store --------------------------------------------------------------------


def test_pages_continue_across_equal_creation_times_and_deletions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(archive_module, "PAGE_SIZE", 3)
    with convstore.open("memory://") as store:
        template = store.create_conversation("t")
        store.delete_conversation(template.id)
        times = [1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 4.0]
        for index, created in enumerate(times):
            record = template.model_copy(
                update={"id": f"c{index}", "created_at": created, "updated_at": created}
            )
            store.import_conversation(record, [])
        seen = []
        for conversation in iter_conversations(store):
            seen.append(conversation.id)
            if conversation.id == "c2":
                store.delete_conversation("c0")  # before the cursor: nothing is skipped
        assert seen == [f"c{i}" for i in range(8)]


def test_entries_stream_one_conversation_at_a_time(
    source: ConversationStore, tmp_path: Path
) -> None:
    path = tmp_path / "a.jsonl"
    export_store(source, path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:7], b"{damaged\n", *lines[8:]]))
    with ArchiveReader(path) as reader:
        entries = reader.entries()
        first, second = next(entries), next(entries)  # read before the damage is reached
        assert isinstance(first, ConversationEntry) and len(first.messages) == 2
        assert isinstance(second, ConversationEntry) and second.messages == []
        with pytest.raises(DataIntegrityError, match="line 8: not valid JSON"):
            next(entries)


def test_credentials_are_left_out_of_the_source() -> None:
    assert redact_url("postgresql://user:secret@db.example:5432/chats") == (
        "postgresql://db.example:5432/chats"
    )
    assert redact_url("sqlite:///x/y.db") == "sqlite:///x/y.db"
