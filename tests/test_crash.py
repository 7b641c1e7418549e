"""Crashes and damage: a killed writer loses nothing it acknowledged; a bad file is refused."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import convstore
from convstore import DataIntegrityError
from tests.conftest import SHARED_BACKENDS, backend_url

pytestmark = pytest.mark.slow

# Appends forever, writing each message id only after append_message has returned.
WRITER = """
def work(store, conversation_id, acknowledge):
    i = 0
    while True:
        message = store.append_message(
            conversation_id, "user", {"n": i, "text": "x" * (i % 500)}
        )
        acknowledge(message.id)
        i += 1
"""

# Streams one reply forever, writing each chunk's seq once append_chunk has returned.
STREAMER = """
def work(store, conversation_id, acknowledge):
    reply = store.begin_stream(conversation_id, message_id="reply")
    i = 0
    while True:
        i += 1
        store.append_chunk(conversation_id, reply.id, f"<{i}>", seq=i)
        acknowledge(i)
"""

# A process that has imported convstore once and forks a fresh writer per request (a
# line: script file, store URL, conversation id, FIFO for acknowledgements), answering
# with the writer's pid. Forking skips the second of start-up a new interpreter costs,
# and the writer is still a real process of its own, killed with SIGKILL.
FORK_SERVER = """
import os, signal, sys
import convstore

signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # writers are reaped without waiting
for line in sys.stdin:
    script, url, conversation_id, fifo = line.split()
    pid = os.fork()
    if pid == 0:
        try:
            acknowledgements = open(fifo, "w", buffering=1)
            namespace = {}
            exec(open(script).read(), namespace)
            store = convstore.open(url)
            namespace["work"](store, conversation_id, lambda a: print(a, file=acknowledgements))
        finally:  # never back into the loop above, even after an error
            os._exit(1)
    print(pid, flush=True)
"""


@pytest.fixture(scope="module")
def fork_server() -> Iterator[subprocess.Popen[str]]:
    server = subprocess.Popen(
        [sys.executable, "-c", FORK_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield server
    server.kill()
    server.wait()


def run_and_kill(
    fork_server: subprocess.Popen[str],
    workdir: Path,
    url: str,
    conversation_id: str,
    seconds: float,
    script: str = WRITER,
) -> list[str]:
    """Fork a writer running ``script``, SIGKILL it after ``seconds`` of writing, and
    return what it acknowledged (read to the end: the FIFO closes when it is dead)."""
    script_file, fifo = workdir / "writer.py", workdir / "acknowledged"
    script_file.write_text(script)
    os.mkfifo(fifo)
    assert fork_server.stdin is not None and fork_server.stdout is not None
    fork_server.stdin.write(f"{script_file} {url} {conversation_id} {fifo}\n")
    fork_server.stdin.flush()
    acknowledged: list[str] = []
    with open(fifo) as output:  # opens once the writer has opened its end
        pid = int(fork_server.stdout.readline())
        reader = threading.Thread(target=lambda: acknowledged.extend(a.strip() for a in output))
        reader.start()
        deadline = time.monotonic() + 60
        while not acknowledged and time.monotonic() < deadline:  # wait until it is writing
            time.sleep(0.005)
        time.sleep(seconds)
        os.kill(pid, signal.SIGKILL)
        reader.join(timeout=60)
    assert not reader.is_alive(), "the killed writer's FIFO never closed"
    return [i for i in acknowledged if i]


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
@pytest.mark.parametrize("trial", range(30))
def test_sigkill_mid_append_loses_nothing_acknowledged(
    fork_server: subprocess.Popen[str], backend: str, tmp_path: Path, trial: int
) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url) as store:
        chat = store.create_conversation("crash").id
    seconds = random.Random(trial).uniform(0.0, 0.3)
    acknowledged = run_and_kill(fork_server, tmp_path, url, chat, seconds)
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
    fork_server: subprocess.Popen[str], backend: str, tmp_path: Path, trial: int
) -> None:
    url = backend_url(backend, tmp_path)
    with convstore.open(url) as store:
        chat = store.create_conversation("crash").id
        store.append_message(chat, "user", "go")
    seconds = random.Random(trial).uniform(0.0, 0.2)
    acknowledged = run_and_kill(fork_server, tmp_path, url, chat, seconds, STREAMER)
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
