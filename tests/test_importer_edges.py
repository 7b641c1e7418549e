"""Edges of the export mappings: audio, odd ids, long titles, older Claude messages,
missing times, naive times."""

from __future__ import annotations

from pathlib import Path

import pytest

import convstore
from convstore import InvalidInputError
from convstore.importers import import_chatgpt, import_claude, import_format
from convstore.validation import MAX_NAME_LENGTH
from tests.export_builders import T0, ChatGPT, Claude, multimodal, write_export
from tests.test_importers import parts, records


def test_chatgpt_audio_odd_node_ids_and_unparsable_arguments(tmp_path: Path) -> None:
    chat = ChatGPT("x" * (MAX_NAME_LENGTH + 5), "voice")
    spoken = multimodal(
        {"content_type": "audio_transcription", "text": "hello there", "direction": "in"},
        {"content_type": "audio_asset_pointer", "asset_pointer": "sediment://a1", "format": "wav"},
    )
    chat.node("q", "root", "user", spoken, at=1)
    chat.node("call", "q", "assistant", "{not json", at=2, recipient="dalle.text2im")
    answer = multimodal({"content_type": "audio_transcription", "text": "ok"})
    chat.node("said", "call", "user", answer, at=3)
    chat.mapping["said"]["message"]["id"] = "message-said"  # a node named unlike its message
    with convstore.open("memory://") as store:
        import_chatgpt(store, write_export(tmp_path / "conversations.json", [chat]))
        conversation = store.get_conversation("voice")
        assert conversation is not None and len(conversation.name) == MAX_NAME_LENGTH
        assert conversation.metadata["source"]["fields"]["title"] == "x" * (MAX_NAME_LENGTH + 5)
        messages = records(store, "voice")
        text, audio = parts(messages["q"])
        assert text == {"type": "text", "text": "hello there", "direction": "in"}
        assert (audio["type"], audio["url"]) == ("file", "sediment://a1")
        assert audio["mime_type"] == "audio/wav"
        assert messages["q"].type == "file"
        [call] = parts(messages["call"])
        assert call["arguments"] == "{not json"  # not JSON: kept as text
        said = messages["said"]
        assert said.content == "ok" and said.metadata["source"]["node"] == "said"
        assert said.metadata["source"]["id"] == "message-said"


def test_older_claude_messages_files_and_naive_times(tmp_path: Path) -> None:
    chat = Claude("Old", "old", linear=True, created_at=None, updated_at=None)
    chat.message("m1", "human", "", at=5)
    first = chat.messages[0]
    del first["content"]  # only text, as the oldest exports have it
    first["text"] = "just text"
    first["created_at"] = "2023-11-14T22:13:25"  # no zone: UTC
    first["attachments"] = [{"file_name": "a.txt", "file_type": "txt", "extracted_content": "A"}]
    first["files"] = [{"file_name": "scan.pdf", "file_kind": "document"}]
    with convstore.open("memory://") as store:
        import_claude(store, write_export(tmp_path / "conversations.json", [chat]))
        message = records(store, "old")["m1"]
        text, attachment, scan = parts(message)
        assert text == {"type": "text", "text": "just text"}
        assert "text" not in message.metadata["source"]  # it is the content
        assert (attachment["filename"], attachment["mime_type"]) == ("a.txt", None)
        assert attachment["file_type"] == "txt"
        assert (scan["type"], scan["filename"], scan["url"]) == ("file", "scan.pdf", None)
        assert message.created_at == T0 + 5
        conversation = store.get_conversation("old")
        assert conversation is not None  # without times of its own: its messages'
        assert (conversation.created_at, conversation.updated_at) == (T0 + 5, T0 + 5)


def test_a_conversation_without_any_time(tmp_path: Path) -> None:
    chat = ChatGPT("Timeless", "timeless", create_time=None, update_time=None)
    chat.node("q", "root", "user", "when?", at=None)
    with convstore.open("memory://") as store:
        import_chatgpt(store, write_export(tmp_path / "conversations.json", [chat]))
        conversation = store.get_conversation("timeless")
        assert conversation is not None
        assert (conversation.created_at, records(store, "timeless")["q"].created_at) == (0, 0)


def test_time_fields_must_be_times(tmp_path: Path) -> None:
    chat = Claude("Bad time", "bad-time", created_at="yesterday")
    with convstore.open("memory://") as store, pytest.raises(InvalidInputError) as caught:
        import_claude(store, write_export(tmp_path / "conversations.json", [chat]))
    assert caught.value.message == (
        "conversation 'Bad time' (bad-time): created_at: expected an ISO 8601 time"
    )


def test_import_format_by_name(tmp_path: Path) -> None:
    path = write_export(tmp_path / "conversations.json", [])
    with convstore.open("memory://") as store:
        assert import_format(store, path, "claude").conversations == 0
        with pytest.raises(InvalidInputError, match="format must be one of chatgpt, claude"):
            import_format(store, path, "gemini")


def test_json_nested_too_deeply_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "conversations.json"
    path.write_text("[" + "[" * 100_000 + "]" * 100_000 + "]")
    with convstore.open("memory://") as store, pytest.raises(InvalidInputError) as caught:
        import_chatgpt(store, path)
    assert caught.value.message.startswith(f"{path}: invalid JSON (nested too deeply)")
