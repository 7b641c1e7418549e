"""Health: status and counts for monitoring, integrity checks and in-place repair."""

from __future__ import annotations

from typing import Any

from convstore.backends.base import RepairReport
from convstore.queries import parse_conversation_filter
from convstore.store.core import StoreCore


class Health(StoreCore):
    """The health methods of the store."""

    def health_check(self) -> dict[str, Any]:
        """Status, counts, disk usage and cache figures; never raises."""
        report: dict[str, Any] = {"status": "healthy", "backend": self.url.split(":", 1)[0]}
        try:
            with self._unit(write=False) as session:
                report["conversations_count"] = session.count_conversations(
                    parse_conversation_filter(None)
                )
                report["total_messages"] = session.count_messages()
            report["disk_usage"] = self.disk_usage()
        except Exception as exc:  # a health check reports failures instead of raising them
            report.update(status="unhealthy", error=f"{type(exc).__name__}: {exc}")
        report["last_backup"] = None
        report["locks_status"] = {
            "lock_timeout": self.config.lock_timeout,
            "transaction_open_in_this_thread": self.in_transaction(),
        }
        report["cache"] = self._branches.stats()
        if self.redis is not None:
            report["redis"] = self.redis.stats()
        return report

    def disk_usage(self) -> int:
        """Bytes the store occupies on disk (0 in memory)."""
        return self._backend.disk_usage()

    def check_integrity(self) -> list[str]:
        """Every structural problem found in the stored data; [] means intact."""
        return list(self._backend.integrity_problems())

    def repair(self) -> RepairReport:
        """Fix what the backend can fix in place without losing data; what was done,
        and which conversations were set aside as damaged."""
        try:
            return self._backend.repair()
        finally:
            self._branches.clear()
