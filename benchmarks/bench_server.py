"""Load on a real `convstore serve` process over loopback, beside the same store calls
made in-process (the baseline: what HTTP, JSON and the server add).

Run ``python benchmarks/bench_server.py [--seconds 30] [--clients 64] [--streams 100]``.

* mix: each client appends a message and reads the newest 20, in a loop, for
  ``--seconds``; every response must be a 2xx (errors are counted and printed).
* chunk latency: ``--streams`` replies stream at once, 20 chunks each; one SSE
  subscriber times each chunk from just before its POST to its event's arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

import convstore

RATES = {
    "CONVSTORE_READ_RATE": "100000000/minute",
    "CONVSTORE_WRITE_RATE": "100000000/minute",
    "CONVSTORE_CHUNK_RATE": "100000000/minute",
}


def serve(store_url: str) -> tuple[subprocess.Popen[str], str, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "convstore", "serve", "--url", store_url,
        "--port", str(port), "--demo-user", "--poll-interval", "0.05",
    ]  # fmt: skip
    env = {**os.environ, **RATES, "COLUMNS": "500"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    assert process.stdout is not None
    key = ""
    for line in process.stdout:
        found = re.search(r"(cs_[A-Za-z0-9_-]+)", line)
        key = found.group(1) if found else key
        if "convstore serving" in line:
            break
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(f"{url}/health")
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return process, url, key


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def http_mix(url: str, key: str, clients: int, seconds: float) -> tuple[list[float], int]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as http:
        ids = []
        for i in range(clients):
            made = await http.post("/api/v1/conversations", json={"name": f"load {i}"})
            ids.append(made.json()["id"])
        latencies: list[float] = []
        errors = 0
        stop_at = time.monotonic() + seconds

        async def client(cid: str) -> None:
            nonlocal errors
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                path = f"/api/v1/conversations/{cid}/messages"
                message = {"role": "user", "content": f"message {n}"}
                reads = f"{path}?limit=20&newest_first=true"
                for method, target, body in (("POST", path, message), ("GET", reads, None)):
                    started = time.perf_counter()
                    response = await http.request(method, target, json=body)
                    latencies.append((time.perf_counter() - started) * 1000)
                    errors += not response.is_success

        await asyncio.gather(*(client(cid) for cid in ids))
    return latencies, errors


def store_mix(store_url: str, clients: int, seconds: float) -> list[float]:
    """The same calls in-process from ``clients`` threads: the baseline."""
    latencies: list[float] = []
    with convstore.open(store_url) as store:
        view = store.for_user("demo")
        ids = [view.create_conversation(f"direct {i}").id for i in range(clients)]
        stop_at = time.monotonic() + seconds

        def client(cid: str) -> None:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                started = time.perf_counter()
                view.append_message(cid, "user", f"message {n}")
                latencies.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                view.get_messages(cid, limit=20, newest_first=True)
                latencies.append((time.perf_counter() - started) * 1000)

        threads = [threading.Thread(target=client, args=(cid,)) for cid in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return latencies


async def chunk_latency(url: str, key: str, streams: int, chunks: int) -> tuple[list[float], int]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=streams + 10)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        replies = []
        for i in range(streams):
            cid = (await http.post("/api/v1/conversations", json={"name": f"s{i}"})).json()["id"]
            mid = (await http.post(f"/api/v1/conversations/{cid}/streams", json={})).json()["id"]
            replies.append((cid, mid))
        sent: dict[tuple[str, int], float] = {}
        latencies: list[float] = []
        expected = streams * chunks

        async def listen() -> None:
            async with http.stream("GET", "/api/v1/events") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and '"first_seq"' in line:
                        data = json.loads(line[6:])
                        key_ = (data.get("message_id", ""), data["first_seq"])
                        if key_ in sent:
                            latencies.append((time.perf_counter() - sent[key_]) * 1000)
                            if len(latencies) == expected:
                                return

        async def stream(cid: str, mid: str) -> int:
            failures = 0
            for seq in range(1, chunks + 1):
                sent[(mid, seq)] = time.perf_counter()
                response = await http.post(
                    f"/api/v1/conversations/{cid}/messages/{mid}/chunks",
                    json={"chunks": [{"seq": seq, "delta": f"token{seq} "}]},
                )
                failures += not response.is_success
                await asyncio.sleep(0.01)
            return failures

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        failures = sum(await asyncio.gather(*(stream(c, m) for c, m in replies)))
        await asyncio.wait_for(listener, 60)
    return latencies, failures


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--streams", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        process, url, key = serve(store_url)
        try:
            started = time.monotonic()
            http_latencies, errors = asyncio.run(http_mix(url, key, args.clients, args.seconds))
            http_elapsed = time.monotonic() - started
            chunk_latencies, chunk_errors = asyncio.run(chunk_latency(url, key, args.streams, 20))
        finally:
            process.terminate()
            process.wait()
        started = time.monotonic()
        direct = store_mix(store_url, args.clients, args.seconds)
        direct_elapsed = time.monotonic() - started
    rows = [
        ("REST over loopback, append + newest 20", http_latencies, http_elapsed, errors),
        ("baseline: the same calls in-process (threads)", direct, direct_elapsed, 0),
    ]
    print(
        f"{args.clients} clients for {args.seconds:.0f} s; SQLite, Python {sys.version.split()[0]}"
    )
    print("| load | requests | per second | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, samples, elapsed, failed in rows:
        p50, p99 = percentiles(samples)
        rate = len(samples) / elapsed
        print(f"| {label} | {len(samples)} | {rate:.0f} | {p50:.2f} | {p99:.2f} | {failed} |")
    p50, p99 = percentiles(chunk_latencies)
    print(
        f"| chunk to SSE subscriber, {args.streams} streams x 20 chunks | {len(chunk_latencies)} |"
        f" | {p50:.2f} | {p99:.2f} | {chunk_errors} |"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
