"""Read/write file locks with a timeout, across threads and processes.

portalocker gives shared and exclusive locks on every platform (``flock`` on POSIX,
``LockFileEx`` on Windows) where the standard library offers only POSIX calls, and
filelock offers exclusive locks only. Each acquisition opens its own descriptor, so
threads of one process exclude each other exactly as processes do.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import IO

import portalocker

from convstore.errors import LockTimeoutError

_FIRST_WAIT = 0.0005
_LONGEST_WAIT = 0.02


class FileLock:
    """A shared (readers) or exclusive (writer) lock on ``path``, held as a context."""

    def __init__(self, path: Path, *, shared: bool, timeout: float) -> None:
        self.path = path
        self.shared = shared
        self.timeout = timeout
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, waiting at most ``timeout`` seconds, else LockTimeoutError."""
        mode = portalocker.LOCK_SH if self.shared else portalocker.LOCK_EX
        handle = open(self.path, "a")  # noqa: SIM115 - held until release()
        deadline = time.monotonic() + self.timeout
        wait = _FIRST_WAIT
        while True:
            try:
                portalocker.lock(handle, mode | portalocker.LOCK_NB)
            except portalocker.LockException:
                if time.monotonic() >= deadline:
                    handle.close()
                    kind = "shared" if self.shared else "exclusive"
                    raise LockTimeoutError(
                        f"could not take the {kind} lock {self.path} within {self.timeout}s "
                        "(another reader or writer holds it)"
                    ) from None
                time.sleep(wait)
                wait = min(wait * 2, _LONGEST_WAIT)
            else:
                self._handle = handle
                return

    def release(self) -> None:
        if self._handle is not None:
            portalocker.unlock(self._handle)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
