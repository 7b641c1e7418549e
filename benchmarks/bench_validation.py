"""What checking a hostile request body costs, beside parsing it, measured in the same run.

Run with ``python benchmarks/bench_validation.py [--quick]``. Each body is at most
2 MiB (the server's body limit) and is shaped to make the store's checks work hard:
the reported attack (one 800,000-character metadata key above 300,000 zeros), flat
and nested arrays at the member limit, short non-ASCII strings, long keys, deep
nesting, integers at the 64-bit bound. A row times the checks the store applies to the
body before any I/O (``check_metadata`` for a metadata patch; for each message of a
batch the role, ``encode_content``, ``check_metadata``, the type and ``check_usage``);
the baseline is ``json.loads`` of the same bytes, the work any request costs. Prints a
Markdown table: median and p95 in milliseconds, and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from convstore import InvalidInputError
from convstore.validation import (
    MAX_INT,
    MAX_JSON_DEPTH,
    MAX_JSON_ITEMS,
    MAX_JSON_KEY_LENGTH,
    MAX_TYPE_LENGTH,
    check_metadata,
    check_role,
    check_text,
    check_usage,
    encode_content,
)

MAX_BODY = 2 * 1024 * 1024  # the server's default max_body_bytes
MAX_MESSAGE = 1_048_576  # the default max_message_size
Row = tuple[str, str, float, float, str]


def nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def batch(content: Callable[[int], Any], per_message: int) -> dict[str, Any]:
    """As many messages of ``content(per_message)`` as fit in a body."""
    one = {"role": "user", "content": content(per_message), "metadata": {"k": 1}}
    size = len(encoded(one))
    return {"messages": [one] * ((MAX_BODY - 20) // (size + 1))}


def bodies() -> dict[str, tuple[str, Callable[[], dict[str, Any]]]]:
    """Label: (kind, a function making the body); each body is under MAX_BODY, and is
    made only when measured, so that one at a time is alive."""
    members = MAX_JSON_ITEMS - 1  # the most one value may hold
    key = "k" * MAX_JSON_KEY_LENGTH
    return {
        "metadata: 800,000-char key over 300,000 zeros (refused)": (
            "patch",
            lambda: {"metadata": {"k" * 800_000: [0] * 300_000}},
        ),
        "metadata: 1,000,000 zeros (refused)": (
            "patch",
            lambda: {"metadata": {"k": [0] * 1_000_000}},
        ),
        "batch: arrays of zeros at the member limit": (
            "batch",
            lambda: batch(lambda n: [0] * n, members),
        ),
        "batch: arrays of floats at the member limit": (
            "batch",
            lambda: batch(lambda n: [0.5] * n, members),
        ),
        "batch: mixed 0, '', null, true": (
            "batch",
            lambda: batch(lambda n: [0, "", None, True] * (n // 4), members),
        ),
        "batch: short non-ASCII strings, mixed with 0": (
            "batch",
            lambda: batch(lambda n: ["é", 0] * (n // 2), members),
        ),
        "batch: integers at the 64-bit bound, mixed with ''": (
            "batch",
            lambda: batch(lambda n: [MAX_INT, ""] * (n // 2), members),
        ),
        "batch: one-item arrays [[0],[0],...]": (
            "batch",
            lambda: batch(lambda n: [[0]] * n, members // 2),
        ),
        "batch: objects {a:0} in arrays": (
            "batch",
            lambda: batch(lambda n: [{"a": 0}] * n, members // 2),
        ),
        "batch: objects of 1,024-char keys": (
            "batch",
            lambda: batch(lambda n: {f"{i:04d}{key[4:]}": i for i in range(n)}, 900),
        ),
        "batch: arrays 100 deep": (
            "batch",
            lambda: batch(lambda n: [nested(MAX_JSON_DEPTH - 1)] * n, members // MAX_JSON_DEPTH),
        ),
        "batch: 1 MB non-ASCII strings": ("batch", lambda: batch(lambda n: "é" * n, 500_000)),
    }


def encoded(value: Any) -> bytes:
    """A body as a client sends it: compact JSON, UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def check(kind: str, body: dict[str, Any]) -> None:
    """The checks the store applies to ``body`` before any I/O (a refusal included)."""
    try:
        if kind == "patch":
            check_metadata(body["metadata"])
            return
        for message in body["messages"]:
            check_role(message["role"])
            encode_content(message["content"], MAX_MESSAGE)
            check_metadata(message.get("metadata"))
            check_text(message.get("type", "text"), "type", MAX_TYPE_LENGTH)
            check_usage(message.get("usage"))
    except InvalidInputError:
        pass


def timings(*operations: Callable[[], object], repeat: int) -> list[list[float]]:
    """Milliseconds per call of each operation, interleaved call by call."""
    samples: list[list[float]] = [[] for _ in operations]
    for operation in operations:
        operation()
    for _ in range(repeat):
        for operation, taken in zip(operations, samples, strict=True):
            start = time.perf_counter()
            operation()
            taken.append((time.perf_counter() - start) * 1000)
    return samples


def rows(repeat: int) -> list[Row]:
    found: list[Row] = []
    for label, (kind, make) in bodies().items():
        raw = encoded(make())
        assert len(raw) <= MAX_BODY, (label, len(raw))
        parsed = json.loads(raw)

        def parse(raw: bytes = raw) -> object:
            return json.loads(raw)

        def checks(kind: str = kind, parsed: dict[str, Any] = parsed) -> None:
            check(kind, parsed)

        baseline, ours = timings(parse, checks, repeat=repeat)
        found.append(row(f"{label} ({len(raw) / 2**20:.2f} MiB): json.loads", baseline))
        found.append(row(f"{label}: checks", ours, baseline))
    return found


def row(label: str, samples: list[float], baseline: list[float] | None = None) -> Row:
    median = statistics.median(samples)
    p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)
    ratio = f"{median / statistics.median(baseline):.2f}x" if baseline else ""
    return (label, str(len(samples)), median, p95, ratio)


def table(found: list[Row]) -> str:
    lines = [
        "| body | runs | median ms | p95 ms | vs json.loads |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {a} | {n} | {m:.1f} | {p:.1f} | {r} |" for a, n, m, p, r in found]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, for a smoke run")
    args = parser.parse_args(argv)
    found = rows(5 if args.quick else 30)
    print(f"Python {sys.version.split()[0]}; bodies up to {MAX_BODY:,} bytes")
    print(table(found))
    worst = max(m for label, _, m, _, _ in found if label.endswith(": checks"))
    print(f"\nworst case of the checks: {worst:.1f} ms (median)")


if __name__ == "__main__":
    main(sys.argv[1:])
