"""Records: small JSON documents by namespace and key, with an optional lifetime."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

import convstore
from convstore import ConversationStore, InvalidInputError


def test_records_are_kept_once_and_read_back(store: ConversationStore) -> None:
    assert store.put_record("keys", "k1", {"n": 1, "text": "数据"})
    assert not store.put_record("keys", "k1", {"n": 2})  # insert only
    assert store.get_record("keys", "k1") == {"n": 1, "text": "数据"}
    assert store.get_record("keys", "other") is None
    assert store.get_record("other", "k1") is None
    store.put_record("keys", "k0", {})
    assert store.list_records("keys") == [("k0", {}), ("k1", {"n": 1, "text": "数据"})]
    assert store.delete_record("keys", "k1")
    assert not store.delete_record("keys", "k1")
    assert store.put_record("keys", "k1", {"n": 3})


def test_an_expired_record_is_gone_and_its_key_free(store: ConversationStore) -> None:
    assert store.put_record("idem", "k", {"v": 1}, ttl=0.01)
    time.sleep(0.02)
    assert store.get_record("idem", "k") is None
    assert store.list_records("idem") == []
    assert store.put_record("idem", "k", {"v": 2})
    assert store.get_record("idem", "k") == {"v": 2}


@pytest.mark.parametrize(
    ("namespace", "key", "value", "ttl"),
    [
        ("", "k", {}, None),
        ("Upper", "k", {}, None),
        ("_trash", "k", {}, None),
        ("ns", 3, {}, None),
        ("ns", "k" * 256, {}, None),
        ("ns", "k", [1], None),
        ("ns", "k", {"x": float("nan")}, None),
        ("ns", "k", {}, 0),
        ("ns", "k", {}, True),
    ],
)
def test_bad_records_are_refused_and_change_nothing(
    store: ConversationStore, namespace: object, key: object, value: object, ttl: object
) -> None:
    with pytest.raises(InvalidInputError):
        store.put_record(namespace, key, value, ttl=ttl)  # type: ignore[arg-type]
    assert store.list_records("ns") == []


def test_records_move_between_stores_with_their_expiry(
    store: ConversationStore, tmp_path: object
) -> None:
    store.put_record("a", "1", {"x": 1}, ttl=100)
    store.put_record("b", "2", {"y": [1, "二"]})
    exported = store.export_records()
    assert [(r.namespace, r.key) for r in exported] == [("a", "1"), ("b", "2")]
    with convstore.open("memory://") as other:
        other.import_records(exported)
        assert other.export_records() == exported
        bad = replace(exported[0], expires_at="soon")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            other.import_records([bad])
        with pytest.raises(InvalidInputError):
            other.import_records([replace(exported[0], namespace="Bad NS")])
        assert other.export_records() == exported


def test_racing_inserts_of_one_key_keep_exactly_one(store: ConversationStore) -> None:
    import threading

    results: list[bool] = []
    start = threading.Barrier(8)

    def insert(n: int) -> None:
        start.wait()
        results.append(store.put_record("race", "k", {"winner": n}))

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    winner = store.get_record("race", "k")
    assert winner is not None and winner["winner"] in range(8)
