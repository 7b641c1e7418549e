"""Generated ids, id checks and the error hierarchy."""

from __future__ import annotations

import re
import threading

import pytest

from convstore import errors
from convstore.ids import check_id, new_id


def test_generated_ids_are_valid_unique_and_ordered() -> None:
    ids = [new_id() for _ in range(5_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"[0-9a-z]{26}", i) for i in ids)
    assert all(check_id(i) == i for i in ids[:10])


def test_ids_from_threads_are_unique() -> None:
    found: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        made = [new_id() for _ in range(1_000)]
        with lock:
            found.extend(made)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 4_000


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a b", "x" * 65, "é", "a\x00", "..", "/abs"])
def test_check_id_refuses(bad: str) -> None:
    with pytest.raises(errors.InvalidInputError, match="invalid"):
        check_id(bad, "message_id")


def test_check_id_shortens_long_values_in_messages() -> None:
    with pytest.raises(errors.InvalidInputError) as raised:
        check_id("y" * 500)
    assert len(raised.value.message) < 200


def test_hierarchy_and_codes() -> None:
    classes: list[type[errors.ConversationManagerError]] = [
        errors.InvalidInputError,
        errors.ConfigurationError,
        errors.ConversationNotFoundError,
        errors.MessageNotFoundError,
        errors.ConcurrencyError,
        errors.DataIntegrityError,
        errors.LockTimeoutError,
        errors.StorageError,
    ]
    codes = {cls.code for cls in classes}
    assert len(codes) == len(classes)
    assert all(issubclass(cls, errors.ConversationManagerError) for cls in classes)
    assert issubclass(errors.ConfigurationError, errors.InvalidInputError)
    missing = errors.ConversationNotFoundError("c1")
    assert missing.to_dict() == {
        "code": "CONVERSATION_NOT_FOUND",
        "message": "conversation 'c1' does not exist",
    }
    assert missing.http_status == 404
    message_missing = errors.MessageNotFoundError("c1", "m1")
    assert "m1" in str(message_missing) and message_missing.conversation_id == "c1"
    assert errors.LockTimeoutError("x").http_status == 503
