"""Importing a ChatGPT data export on SQLite, beside a baseline from the same run.

Run with ``python benchmarks/bench_import.py [--quick]``. Generates a ChatGPT-format
``conversations.json`` of 1,000 conversations holding 100,000 messages (100 each: a
chain with a few regenerated answers, under the empty root and the hidden system message
every ChatGPT conversation starts with) and prints a Markdown table of messages per
second:

* direct: the very records the import produced, read back beforehand, written with
  ``store.import_conversation`` into a fresh store: the cost of storing alone.
* import_chatgpt from conversations.json, and from the export's zip, each into a fresh
  store: reading, checking and mapping the export on top of storing it.
* import_chatgpt again: the same export into the store that has it (everything found
  unchanged, nothing written).

Each run is made ``--rounds`` times (2 by default), in turns, and the best time kept: on a
shared machine, the load changes over the minutes a run takes.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import convstore
from convstore import Conversation, ConversationStore, Message
from convstore.importers import import_chatgpt

PER_CONVERSATION = 100
REGENERATED = 4  # answers given twice in each conversation: branches
SENTENCE = "the quick brown fox jumps over the lazy dog while planning a trip"
WORDS = SENTENCE.split()


def generated_export(conversations: int) -> list[dict[str, Any]]:
    """ChatGPT conversations of PER_CONVERSATION messages each."""
    return [_conversation(number) for number in range(conversations)]


def _conversation(number: int) -> dict[str, Any]:
    start = 1_700_000_000.0 + number * 3600
    ident = f"00000000-0000-4000-8000-{number:012d}"
    mapping: dict[str, Any] = {}

    def add(node_id: str, parent: str | None, role: str | None, text: str, at: float) -> str:
        message = None
        if role is not None:
            message = {
                "id": node_id,
                "author": {"role": role, "name": None, "metadata": {}},
                "create_time": start + at,
                "update_time": None,
                "content": {"content_type": "text", "parts": [text]},
                "status": "finished_successfully",
                "end_turn": role == "assistant" or None,
                "weight": 1.0,
                "metadata": {"model_slug": "gpt-4o"} if role == "assistant" else {},
                "recipient": "all",
                "channel": None,
            }
            if role == "system":
                message["metadata"] = {"is_visually_hidden_from_conversation": True}
        mapping[node_id] = {"id": node_id, "message": message, "parent": parent, "children": []}
        if parent is not None:
            mapping[parent]["children"].append(node_id)
        return node_id

    add(f"r{number}", None, None, "", 0)
    parent = add(f"s{number}", f"r{number}", "system", "", 0)
    chain = PER_CONVERSATION - REGENERATED
    for index in range(chain):
        role = "user" if index % 2 == 0 else "assistant"
        text = " ".join(WORDS[(index + k) % len(WORDS)] for k in range(30))
        node = add(f"{ident}-{index}", parent, role, text, index)
        if role == "assistant" and index < 2 * REGENERATED:  # answered again
            add(f"{ident}-{index}r", parent, role, "again: " + text, index + 0.5)
        parent = node
    return {
        "title": f"Conversation {number}",
        "create_time": start,
        "update_time": start + PER_CONVERSATION,
        "mapping": mapping,
        "moderation_results": [],
        "current_node": parent,
        "conversation_id": ident,
        "id": ident,
        "default_model_slug": "gpt-4o",
        "is_archived": False,
    }


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def fresh(path: Path) -> ConversationStore:
    return convstore.open(f"sqlite:///{path}")


def exported(store: ConversationStore) -> list[tuple[Conversation, list[Message]]]:
    found = []
    for conversation in store.list_conversations(order_by="created_at", descending=False):
        record = store.export_conversation(conversation.id)
        assert record is not None
        found.append(record)
    return found


DIRECT = "direct: store.import_conversation, same records"
FROM_FILE = "import_chatgpt, conversations.json"
FROM_ZIP = "import_chatgpt, export zip"
AGAIN = "import_chatgpt again (all unchanged)"


def one_round(
    workdir: Path, number: int, path: Path, packed: Path, records: list[Any], best: dict[str, float]
) -> None:
    """Each run once, into fresh stores, in an order that turns with ``number``; the best
    time of each kept in ``best``, the records the import produced in ``records``."""

    def from_file() -> None:
        with fresh(workdir / f"file{number}.db") as store:
            keep(FROM_FILE, timed(lambda: import_chatgpt(store, path)))
            if not records:
                records.extend(exported(store))
            keep(AGAIN, timed(lambda: import_chatgpt(store, path)))

    def from_zip() -> None:
        with fresh(workdir / f"zip{number}.db") as store:
            keep(FROM_ZIP, timed(lambda: import_chatgpt(store, packed)))

    def direct() -> None:
        with fresh(workdir / f"direct{number}.db") as store:

            def write_all() -> None:
                for conversation, messages in records:
                    store.import_conversation(conversation, messages)

            keep(DIRECT, timed(write_all))

    def keep(label: str, seconds: float) -> None:
        best[label] = min(best.get(label, seconds), seconds)

    runs = [from_file, from_zip, direct]  # the first round gets the records first
    for run in runs if number % 2 == 0 else runs[::-1]:
        run()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="100 conversations, for a smoke run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each; the best is kept")
    args = parser.parse_args(argv)
    count = 100 if args.quick else 1_000
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = workdir / "conversations.json"
        path.write_text(json.dumps(generated_export(count)), "utf-8")
        packed = workdir / "export.zip"
        with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, "conversations.json")
        records: list[Any] = []
        for number in range(args.rounds):
            one_round(workdir, number, path, packed, records, best)
            for leftover in workdir.glob(f"*{number}.db*"):
                leftover.unlink()
        messages = sum(len(m) for _, m in records)
        sizes = path.stat().st_size / 1e6, packed.stat().st_size / 1e6
    print(
        f"{count:,} conversations, {messages:,} messages, conversations.json {sizes[0]:.0f} MB "
        f"(zip {sizes[1]:.0f} MB); SQLite {sqlite3.sqlite_version}, "
        f"Python {sys.version.split()[0]}; best of {args.rounds} rounds"
    )
    print("| run | seconds | messages/s | vs direct |")
    print("|---|---:|---:|---:|")
    for label in (DIRECT, FROM_FILE, FROM_ZIP, AGAIN):
        seconds = best[label]
        print(
            f"| {label} | {seconds:.2f} | {messages / seconds:,.0f} "
            f"| {seconds / best[DIRECT]:.2f}x |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
