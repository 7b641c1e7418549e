"""The records one unit of work reads and writes on the files backend: small JSON
documents by namespace and key, in files of their own under a lock of their own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from convstore.backends.files.loaded import LoadedRecords
from convstore.locks import FileLock

if TYPE_CHECKING:
    from convstore.backends.files.backend import FilesBackend


class RecordsUnit:
    """A unit's view of the records: a writing unit locks them when it first touches
    them and keeps the lock until it ends; its changes are journaled at commit."""

    def __init__(self, backend: FilesBackend, *, write: bool) -> None:
        self._backend = backend
        self._write = write
        self._held: LoadedRecords | None = None  # held (and locked) once touched
        self._lock: FileLock | None = None
        self._ops: list[dict[str, Any]] = []

    def _records(self) -> LoadedRecords:
        """The records: locked until the unit ends when writing, briefly when reading."""
        if self._held is not None:
            return self._held
        if not self._write:
            with self._backend.records_lock(shared=True):
                return self._backend.records()
        self._lock = self._backend.records_lock(shared=False)
        self._lock.acquire()
        self._held = self._backend.records()
        return self._held

    def get(self, namespace: str, key: str) -> tuple[dict[str, Any], float | None] | None:
        """The record's value and expiry, or None."""
        return self._records().items.get((namespace, key))

    def put(
        self, namespace: str, key: str, value: Mapping[str, Any], expires_at: float | None
    ) -> None:
        """Set the record (journaled at commit)."""
        op = {
            "op": "put",
            "namespace": namespace,
            "key": key,
            "value": dict(value),
            "expires_at": expires_at,
        }
        self._records().apply(op)
        self._ops.append(op)

    def delete(self, namespace: str, key: str) -> bool:
        """Delete the record (journaled at commit); False if there was none."""
        records = self._records()
        if (namespace, key) not in records.items:
            return False
        op = {"op": "delete", "namespace": namespace, "key": key}
        records.apply(op)
        self._ops.append(op)
        return True

    def listed(self, namespace: str | None) -> list[tuple[str, str, dict[str, Any], float | None]]:
        """The records of ``namespace`` (of every namespace if None), by namespace and key."""
        items = sorted(self._records().items.items())
        return [(ns, k, v, e) for (ns, k), (v, e) in items if namespace in (None, ns)]

    def commit(self) -> None:
        """Journal the unit's changes, if it made any."""
        if self._held is not None and self._ops:
            self._backend.write_records(self._held, self._ops)

    def forget(self) -> None:
        """After a rollback the files are the truth again."""
        if self._ops:
            self._backend.forget_records()

    def release(self) -> None:
        """Let other writers at the records (when the unit ends)."""
        if self._lock is not None:
            self._lock.release()
