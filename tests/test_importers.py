"""Importing ChatGPT and Claude data exports: trees, parts, metadata, idempotency, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convstore import ConversationStore, Message, MessageStatus
from convstore.importers import import_chatgpt, import_claude
from tests.export_builders import (
    ROOT,
    T0,
    ChatGPT,
    Claude,
    code,
    execution_output,
    image_pointer,
    multimodal,
    write_export,
)

TRIP = "c0ffee00-0000-4000-8000-000000000001"


def trip_plan() -> ChatGPT:
    """A question answered twice (regenerated), then edited and answered again."""
    chat = ChatGPT("Trip plan", TRIP)
    chat.system()
    chat.node("q1", "system", "user", "Plan a trip to Kyoto", at=10)
    chat.node("a1", "q1", "assistant", "Day 1: temples", at=20, model="gpt-4o")
    chat.node("a1r", "q1", "assistant", "Day 1: gardens", at=30, model="gpt-4o")
    chat.node("q2", "system", "user", "Plan a trip to Osaka", at=40)
    chat.node("a2", "q2", "assistant", "Day 1: the castle", at=50, model="gpt-4o-mini")
    return chat


def records(store: ConversationStore, conversation_id: str) -> dict[str, Message]:
    """Every message of the conversation (any branch), by id."""
    exported = store.export_conversation(conversation_id)
    assert exported is not None
    return {m.id: m for m in exported[1]}


def parts(message: Message) -> list[dict[str, Any]]:
    """The message's content, which must be a list of parts."""
    assert isinstance(message.content, list)
    return message.content


def tree(store: ConversationStore, conversation_id: str) -> list[tuple[str, str | None]]:
    """(id, parent id) of every message, by seq."""
    exported = store.export_conversation(conversation_id)
    assert exported is not None
    return [(m.id, m.parent_id) for m in exported[1]]


# ChatGPT ------------------------------------------------------------------------------


def test_chatgpt_tree_keeps_edits_and_regenerations(
    store: ConversationStore, tmp_path: Path
) -> None:
    report = import_chatgpt(store, write_export(tmp_path / "conversations.json", [trip_plan()]))
    assert (report.conversations, report.imported, report.messages) == (1, 1, 5)
    assert report.branches == 2
    assert report.skipped == {"empty root node": 1, "hidden message": 1}
    assert tree(store, TRIP) == [
        ("q1", None),  # the hidden system message and the empty root are left out
        ("a1", "q1"),
        ("a1r", "q1"),
        ("q2", None),
        ("a2", "q2"),
    ]
    conversation = store.get_conversation(TRIP)
    assert conversation is not None
    assert (conversation.name, conversation.head_message_id) == ("Trip plan", "a2")
    assert (conversation.created_at, conversation.updated_at) == (T0, T0 + 600)
    assert conversation.metadata["model"] == "gpt-4o"
    source = conversation.metadata["source"]
    assert (source["format"], source["id"], source["update_time"]) == ("chatgpt", TRIP, T0 + 600)
    assert source["fields"]["is_archived"] is False and "mapping" not in source["fields"]
    messages = records(store, TRIP)
    assert messages["q1"].metadata["source"]["parent"] == "system"  # re-attached, noted
    assert "parent" not in messages["a1"].metadata["source"]
    assert [m.seq for m in messages.values()] == [1, 2, 3, 4, 5]
    assert messages["a2"].metadata["model"] == "gpt-4o-mini"
    assert messages["a2"].usage is not None and messages["a2"].usage.model == "gpt-4o-mini"
    assert messages["q1"].usage is None and messages["q1"].content == "Plan a trip to Kyoto"
    assert messages["a1r"].created_at == T0 + 30
    assert store.check_integrity() == []


def test_chatgpt_active_branch_is_the_current_node_path(
    store: ConversationStore, tmp_path: Path
) -> None:
    import_chatgpt(store, write_export(tmp_path / "conversations.json", [trip_plan()]))
    assert [m.id for m in store.get_messages(TRIP)] == ["q2", "a2"]


def test_chatgpt_head_moves_to_the_nearest_kept_ancestor(
    store: ConversationStore, tmp_path: Path
) -> None:
    chat = trip_plan()
    chat.node("ctx", "a1", "user", "hidden context", at=60, hidden=True)
    chat.node("ctx2", "ctx", "system", "", at=None)  # an empty system message: skipped
    import_chatgpt(store, write_export(tmp_path / "conversations.json", [chat]))
    conversation = store.get_conversation(TRIP)
    assert conversation is not None and conversation.head_message_id == "a1"


def test_chatgpt_tool_calls_and_results(store: ConversationStore, tmp_path: Path) -> None:
    chat = ChatGPT("Sums", "sums")
    chat.node("q", "root", "user", "What is 2+2? Search it too.", at=1)
    chat.node("call", "q", "assistant", code("print(2+2)"), at=2, recipient="python")
    chat.node("out", "call", "tool", execution_output("4"), at=3, name="python")
    chat.node("search", "out", "assistant", '{"query": "2+2"}', at=4, recipient="browser")
    shown = {"content_type": "tether_browsing_display", "result": "# 2+2=4", "summary": None}
    chat.node("page", "search", "tool", shown, at=5, name="browser")
    failure = {"content_type": "system_error", "name": "tool_error", "text": "timed out"}
    chat.node("err", "page", "tool", failure, at=6, name="python")
    chat.node("a", "err", "assistant", "It is 4.", at=7)
    import_chatgpt(store, write_export(tmp_path / "conversations.json", [chat]))
    messages = records(store, "sums")
    call, out = messages["call"], messages["out"]
    assert call.type == "tool_call"
    assert call.content == [
        {"type": "tool_call", "id": "call", "name": "python", "arguments": "print(2+2)"}
    ]
    assert call.metadata["source"]["content"] == {
        "language": "python",
        "response_format_name": None,
    }
    assert out.type == "tool_result" and out.role.value == "tool"
    assert out.content == [{"type": "tool_result", "tool_call_id": "call", "content": "4"}]
    assert out.metadata["name"] == "python"
    assert messages["search"].content == [
        {"type": "tool_call", "id": "search", "name": "browser", "arguments": {"query": "2+2"}}
    ]
    page = parts(messages["page"])
    assert page[0]["tool_call_id"] == "search"
    assert page[0]["content"] == "# 2+2=4"
    assert messages["page"].metadata["source"]["content"] == {"summary": None}
    error = parts(messages["err"])
    assert error[0]["is_error"] is True
    assert error[0]["tool_call_id"] == "call"  # the nearest call to the same tool
    assert messages["a"].content == "It is 4." and messages["a"].type == "text"


def test_chatgpt_images_by_reference(store: ConversationStore, tmp_path: Path) -> None:
    chat = ChatGPT("Photo", "photo")
    question = multimodal(image_pointer("file-service://file-abc"), "What is this?")
    chat.node("q", "root", "user", question, at=1)
    drawn = multimodal(image_pointer("sediment://file_def", 1024, 1024))
    chat.node("a", "q", "tool", drawn, at=2, name="dalle.text2im")
    import_chatgpt(store, write_export(tmp_path / "conversations.json", [chat]))
    messages = records(store, "photo")
    assert messages["q"].type == "image"
    image, text = parts(messages["q"])
    assert image == {
        "type": "image",
        "url": "file-service://file-abc",
        "attachment_id": None,
        "mime_type": None,
        "detail": None,
        "size_bytes": 1234,
        "width": 512,
        "height": 512,
        "fovea": None,
        "metadata": None,
    }
    assert text == {"type": "text", "text": "What is this?"}
    [result] = parts(messages["a"])
    assert result["content"][0]["url"] == "sediment://file_def"
    assert "base64" not in json.dumps(messages["q"].content)


def test_chatgpt_reasoning_hidden_context_and_unknown_content(
    store: ConversationStore, tmp_path: Path
) -> None:
    chat = ChatGPT("Think", "think", gizmo_id="g-123")
    profile = {
        "content_type": "user_editable_context",
        "user_profile": "I am a cook",
        "user_instructions": "Be brief",
    }
    chat.node("ctx", "root", "user", profile, at=None, hidden=True)
    chat.node("q", "ctx", "user", "Why?", at=1)
    thoughts = {
        "content_type": "thoughts",
        "thoughts": [{"summary": "Considering", "content": "Because...", "finished": True}],
        "source_analysis_msg_id": "x",
    }
    chat.node("t", "q", "assistant", thoughts, at=2, model="o3")
    recap = {"content_type": "reasoning_recap", "content": "Thought for 4 seconds"}
    chat.node("r", "t", "assistant", recap, at=3, model="o3")
    odd = {"content_type": "sonic_webpage", "url": "https://example.org", "text": "page"}
    chat.node("w", "r", "tool", odd, at=4, name="web")
    chat.node("a", "w", "assistant", "Because.", at=5, status="in_progress")
    report = import_chatgpt(store, write_export(tmp_path / "conversations.json", [chat]))
    assert report.skipped == {"empty root node": 1, "hidden message": 1}
    messages = records(store, "think")
    assert list(messages) == ["q", "t", "r", "w", "a"]
    assert messages["t"].content == [
        {"type": "reasoning", "text": "Because...", "summary": "Considering", "finished": True}
    ]
    assert messages["t"].metadata["source"]["content"] == {"source_analysis_msg_id": "x"}
    assert messages["r"].content == [
        {"type": "reasoning", "text": "", "summary": "Thought for 4 seconds"}
    ]
    [result] = parts(messages["w"])
    assert result["content"] == [odd]  # unknown content is kept whole
    assert messages["a"].status is MessageStatus.ERROR  # never finished
    assert messages["a"].metadata["source"]["status"] == "in_progress"
    conversation = store.get_conversation("think")
    assert conversation is not None
    assert conversation.metadata["source"]["fields"]["gizmo_id"] == "g-123"


def test_null_create_times_inherit_from_the_parent(
    store: ConversationStore, tmp_path: Path
) -> None:
    chat = ChatGPT(None, "times")
    chat.fields["update_time"] = None
    chat.node("q", "root", "user", "first", at=None)
    chat.node("a", "q", "assistant", "second", at=30)
    chat.node("b", "a", "user", "third", at=None)
    chat.node("c", "a", "user", "fourth", at=20)  # older than its sibling's inherited time
    import_chatgpt(store, write_export(tmp_path / "conversations.json", [chat]))
    messages = records(store, "times")
    assert [(m.id, m.created_at) for m in messages.values()] == [
        ("q", T0),  # the conversation's start
        ("a", T0 + 30),
        ("c", T0 + 20),  # creation order, parents first
        ("b", T0 + 30),
    ]
    conversation = store.get_conversation("times")
    assert conversation is not None
    assert conversation.name == "Untitled" and conversation.updated_at == T0 + 30


# Claude -------------------------------------------------------------------------------

CLAUDE_ID = "5ca1ab1e-0000-4000-8000-000000000002"


def claude_chat() -> Claude:
    """Thinking, a tool call with its result, an attachment, an image and a retried
    answer."""
    chat = Claude("Recipe", CLAUDE_ID, model="claude-sonnet-4")
    notes = {
        "file_name": "notes.txt",
        "file_size": 11,
        "file_type": "text/plain",
        "extracted_content": "eggs, flour",
    }
    photo = {"file_kind": "image", "file_uuid": "f-1", "file_name": "cake.png"}
    photo["preview_url"] = "/api/files/f-1/preview"
    chat.message("h1", "human", "Bake what?", at=1, attachments=[notes], files=[photo])
    thinking: dict[str, Any] = {
        "type": "thinking",
        "thinking": "They have eggs.",
        "summaries": [{"summary": "Checking"}, {"summary": "Deciding"}],
        "cut_off": False,
    }
    search: dict[str, Any] = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "web_search",
        "input": {"q": "cake"},
    }
    found: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "name": "web_search",
        "content": [{"type": "text", "text": "sponge cake"}, {"type": "knowledge", "url": "u"}],
        "is_error": False,
    }
    blocks = [thinking, search, found, {"type": "text", "text": "A sponge cake."}]
    chat.message("a1", "assistant", blocks, at=2)
    chat.message("a2", "assistant", "Pancakes.", parent="h1", at=3)  # retried
    return chat


def test_claude_blocks_attachments_and_branches(store: ConversationStore, tmp_path: Path) -> None:
    report = import_claude(store, write_export(tmp_path / "conversations.json", [claude_chat()]))
    assert (report.imported, report.messages, report.branches) == (1, 3, 1)
    assert tree(store, CLAUDE_ID) == [("h1", None), ("a1", "h1"), ("a2", "h1")]
    conversation = store.get_conversation(CLAUDE_ID)
    assert conversation is not None
    assert (conversation.name, conversation.head_message_id) == ("Recipe", "a2")
    assert (conversation.created_at, conversation.updated_at) == (T0, T0 + 600)
    assert conversation.metadata["model"] == "claude-sonnet-4"
    assert conversation.metadata["source"]["fields"] == {"account": {"uuid": "acc-1"}}
    messages = records(store, CLAUDE_ID)
    human = messages["h1"]
    assert human.role.value == "user" and human.created_at == T0 + 1
    text, attachment, image = parts(human)
    assert (text["type"], text["text"], text["citations"]) == ("text", "Bake what?", [])
    assert attachment["type"] == "file" and attachment["filename"] == "notes.txt"
    assert attachment["mime_type"] == "text/plain" and "extracted_content" not in attachment
    assert human.metadata["attachments"][0]["extracted_content"] == "eggs, flour"
    assert image["type"] == "image" and image["url"] == "/api/files/f-1/preview"
    assert human.metadata["source"]["parent_message_uuid"] == ROOT
    reasoning, call, result, answer = parts(messages["a1"])
    assert reasoning == {
        "type": "reasoning",
        "text": "They have eggs.",
        "summary": "Checking\nDeciding",
        "cut_off": False,
    }
    assert call == {
        "type": "tool_call",
        "id": "toolu_1",
        "name": "web_search",
        "arguments": {"q": "cake"},
    }
    assert result["tool_call_id"] == "toolu_1" and result["is_error"] is False
    assert result["content"] == [
        {"type": "text", "text": "sponge cake"},
        {"type": "knowledge", "url": "u"},
    ]
    assert answer["text"] == "A sponge cake." and answer["type"] == "text"
    assert messages["a1"].type == "tool_call"
    assert "text" not in messages["a1"].metadata["source"]  # it only repeated the blocks
    retried = messages["a2"]
    assert retried.content == "Pancakes." and retried.type == "text"
    assert retried.metadata["source"]["part"]["citations"] == []  # the block's other fields


def test_claude_active_branch_is_the_current_leaf_path(
    store: ConversationStore, tmp_path: Path
) -> None:
    import_claude(store, write_export(tmp_path / "conversations.json", [claude_chat()]))
    assert [m.id for m in store.get_messages(CLAUDE_ID)] == ["h1", "a2"]


def test_claude_tool_result_without_ids_answers_the_latest_call(
    store: ConversationStore, tmp_path: Path
) -> None:
    chat = Claude("Search", "search")
    use = {"type": "tool_use", "name": "web_search", "input": {"query": "x"}}
    result = {"type": "tool_result", "name": "web_search", "content": "found", "is_error": True}
    chat.message("h", "human", "look", at=1)
    chat.message("a", "assistant", [use, result], at=2)
    import_claude(store, write_export(tmp_path / "conversations.json", [chat]))
    call, answer = parts(records(store, "search")["a"])
    assert call["id"] == "a-0" and answer["tool_call_id"] == "a-0"
    assert answer["content"] == "found" and answer["is_error"] is True


def test_old_claude_export_is_one_linear_branch(store: ConversationStore, tmp_path: Path) -> None:
    chat = Claude("", "linear", linear=True)
    chat.message("m1", "human", "one", at=1)
    chat.message("m2", "assistant", "two", at=2)
    chat.message("m3", "human", "three", at=3)
    import_claude(store, write_export(tmp_path / "conversations.json", [chat]))
    assert tree(store, "linear") == [("m1", None), ("m2", "m1"), ("m3", "m2")]
    conversation = store.get_conversation("linear")
    assert conversation is not None
    assert (conversation.name, conversation.head_message_id) == ("Untitled", "m3")
