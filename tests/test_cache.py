"""The LRU+TTL cache, and that the store never serves what another writer changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import convstore
from convstore.cache import StampedLRUCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lru_eviction_and_hits() -> None:
    cache: StampedLRUCache[str] = StampedLRUCache(max_size=2, ttl=60)
    cache.put("a", (1.0, 1), "A")
    cache.put("b", (1.0, 1), "B")
    assert cache.get("a", (1.0, 1)) == "A"  # a is now most recent
    cache.put("c", (1.0, 1), "C")  # evicts b
    assert cache.get("b", (1.0, 1)) is None
    assert cache.get("a", (1.0, 1)) == "A"
    assert len(cache) == 2
    assert cache.stats() == {"size": 2, "max_size": 2, "hits": 2, "misses": 1}


def test_ttl_expiry() -> None:
    clock = FakeClock()
    cache: StampedLRUCache[str] = StampedLRUCache(max_size=10, ttl=5, clock=clock)
    cache.put("a", (1.0, 1), "A")
    clock.now = 4.9
    assert cache.get("a", (1.0, 1)) == "A"
    clock.now = 5.0
    assert cache.get("a", (1.0, 1)) is None
    assert len(cache) == 0


def test_stamp_mismatch_drops_entry() -> None:
    cache: StampedLRUCache[str] = StampedLRUCache(max_size=10, ttl=60)
    cache.put("a", (1.0, 1), "A")
    assert cache.get("a", (1.0, 2)) is None
    assert cache.get("a", (1.0, 1)) is None  # dropped on the mismatch
    cache.put("b", (1.0, 1), "B")
    cache.invalidate("b")
    assert cache.get("b", (1.0, 1)) is None


def test_disabled_cache_stores_nothing() -> None:
    for size, ttl in ((0, 60.0), (10, 0.0)):
        cache: StampedLRUCache[str] = StampedLRUCache(max_size=size, ttl=ttl)
        cache.put("a", (1.0, 1), "A")
        assert cache.get("a", (1.0, 1)) is None


def test_two_stores_on_one_file_never_read_stale(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with convstore.open(url) as reader, convstore.open(url) as writer:
        chat = writer.create_conversation("c").id
        writer.append_message(chat, "user", "one")
        assert [m.content for m in reader.get_messages(chat)] == ["one"]
        assert [m.content for m in reader.get_messages(chat)] == ["one"]  # served by the cache
        writer.append_message(chat, "assistant", "two")
        assert [m.content for m in reader.get_messages(chat)] == ["one", "two"]
        message = reader.get_messages(chat)[0]
        writer.update_message(chat, message.id, content="edited")
        assert reader.get_messages(chat)[0].content == "edited"
        writer.delete_conversation(chat)
        writer.create_conversation("c again", conversation_id=chat)
        assert reader.get_messages(chat) == []


def test_other_process_write_is_seen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with convstore.open(url) as store:
        chat = store.create_conversation("c").id
        store.append_message(chat, "user", "mine")
        assert len(store.get_messages(chat)) == 1
        script = (
            "import convstore, sys\n"
            "with convstore.open(sys.argv[1]) as s:\n"
            "    s.append_message(sys.argv[2], 'assistant', 'theirs')\n"
        )
        subprocess.run([sys.executable, "-c", script, url, chat], check=True, timeout=60)
        assert [m.content for m in store.get_messages(chat)] == ["mine", "theirs"]
