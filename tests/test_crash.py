"""Crashes and damage: a killed writer loses nothing it acknowledged; a bad file is refused."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import convstore
from convstore import DataIntegrityError
from tests.conftest import SHARED_BACKENDS, backend_url

pytestmark = pytest.mark.slow

# Appends forever, printing each message id only after append_message has returned.
WRITER = """
import sys
import convstore

store = convstore.open(sys.argv[1])
conversation_id = sys.argv[2]
i = 0
while True:
    message = store.append_message(conversation_id, "user", {"n": i, "text": "x" * (i % 500)})
    print(message.id, flush=True)
    i += 1
"""

# Streams one reply forever, printing each chunk's seq once append_chunk has returned.
STREAMER = """
import sys
import convstore

store = convstore.open(sys.argv[1])
conversation_id = sys.argv[2]
reply = store.begin_stream(conversation_id, message_id="reply")
i = 0
while True:
    i += 1
    store.append_chunk(conversation_id, reply.id, f"<{i}>", seq=i)
    print(i, flush=True)
"""


def run_and_kill(url: str, conversation_id: str, seconds: float, script: str = WRITER) -> list[str]:
    """Run the writer, SIGKILL it after ``seconds`` of writing; what it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, url, conversation_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    output = child.stdout
    assert output is not None
    acknowledged: list[str] = []
    reader = threading.Thread(target=lambda: acknowledged.extend(line.strip() for line in output))
    reader.start()
    deadline = time.monotonic() + 60
    while not acknowledged and time.monotonic() < deadline:  # wait until it is writing
        time.sleep(0.01)
    time.sleep(seconds)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    reader.join()
    assert child.returncode == -signal.SIGKILL
    return [i for i in acknowledged if i]


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
@pytest.mark.parametrize("trial", range(50))
def test_sigkill_mid_append_loses_nothing_acknowledged(
    backend: str, tmp_path: Path, trial: int
) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url) as store:
        chat = store.create_conversation("crash").id
    acknowledged = run_and_kill(url, chat, random.Random(trial).uniform(0.0, 0.3))
    assert acknowledged, "the writer must have appended something before it was killed"

    with convstore.open(url) as store:
        assert store.check_integrity() == []
        messages = store.get_messages(chat)
        stored_ids = [m.id for m in messages]
        # every acknowledged append is there, in order; at most the one in flight is extra
        assert stored_ids[: len(acknowledged)] == acknowledged
        assert len(stored_ids) - len(acknowledged) in (0, 1)
        assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
        assert [m.content["n"] for m in messages] == list(range(len(messages)))  # type: ignore[call-overload,index]
        conversation = store.get_conversation(chat)
        assert conversation is not None
        assert conversation.message_count == len(messages)
        store.append_message(chat, "user", "after the crash")  # and it takes writes again
        assert store.get_messages(chat)[-1].seq == len(messages) + 1


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
@pytest.mark.parametrize("trial", range(5))
def test_a_reply_streaming_when_its_writer_dies_is_marked_error_on_restart(
    backend: str, tmp_path: Path, trial: int
) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url) as store:
        chat = store.create_conversation("crash").id
        store.append_message(chat, "user", "go")
    seconds = random.Random(trial).uniform(0.0, 0.2)
    acknowledged = run_and_kill(url, chat, seconds, STREAMER)
    assert acknowledged, "the streamer must have written something before it was killed"

    with convstore.open(url) as store:
        assert store.check_integrity() == []
        chunks = store.get_chunks(chat, "reply")
        assert [c.seq for c in chunks][: len(acknowledged)] == [int(n) for n in acknowledged]
        assert len(chunks) - len(acknowledged) in (0, 1)
        (failed,) = store.fail_unfinished_streams()
        assert failed.id == "reply"
        assert failed.status is convstore.MessageStatus.ERROR
        assert failed.content == "".join(c.delta for c in chunks)
        assert store.get_conversation(chat).state == "error"  # type: ignore[union-attr]
        assert store.get_chunks(chat, "reply") == chunks


@pytest.mark.parametrize(
    "content",
    [
        b"this is not a database, just text\n" * 100,
        b"\x00" * 4096,
        b"SQLite format 3\x00" + b"\xff" * 4000,
    ],
    ids=["text", "zeros", "bad-header"],
)
def test_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    with pytest.raises(DataIntegrityError, match=r"notes\.db"):
        convstore.open(f"sqlite:///{path}")
    assert path.read_bytes() == content


def test_damaged_pages_are_reported_not_served(tmp_path: Path) -> None:
    url = backend_url("sqlite", tmp_path)
    with convstore.open(url) as store:
        chat = store.create_conversation("damaged").id
        store.append_messages(chat, [{"role": "user", "content": "m" * 200}] * 300)
    path = tmp_path / "store.db"
    data = bytearray(path.read_bytes())
    page, noise = 4096, random.Random(0)
    for offset in range(3 * page, len(data) - page, 2 * page):  # scribble over many pages
        data[offset + 100 : offset + 400] = noise.randbytes(300)
    path.write_bytes(bytes(data))
    with (
        pytest.raises(DataIntegrityError, match=r"store\.db is damaged"),
        convstore.open(url) as store,
    ):
        store.check_integrity()
        store.get_messages(chat)
