"""Live change subscriptions: one reader of the change feed per store, handing new
changes to any number of subscribers, which hold no connection while they wait.

The reader wakes when this process commits a write (``ConversationStore.watch_writes``)
and otherwise every ``poll_interval`` seconds, which is how writes made by other
processes arrive. A subscriber that resumes from an older mark, or falls more than
``MAX_QUEUED`` changes behind, reads the feed itself until it has caught up, so it never
skips a change and a slow subscriber never holds others back or grows without bound.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

from convstore.errors import ConversationManagerError, InvalidInputError
from convstore.models import Change
from convstore.store import ConversationStore

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000  # changes held for one subscriber before it reads the feed itself
_BATCH = 1_000

Accept = Callable[[Change], bool]


class Subscription:
    """The changes after a mark that ``accept`` lets through, in order and without gaps.

    Use it from threads (:meth:`get`) or from asyncio (:meth:`next`), and close it (or use
    it as a context manager) when done.
    """

    def __init__(self, hub: ChangeHub, after: int, accept: Accept, behind: bool) -> None:
        self._hub = hub
        self._accept = accept
        self.last_id = after  # the newest change handed to the subscriber
        self._queue: deque[Change] = deque()
        self._behind = behind  # the feed holds changes the queue does not
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.closed = False

    # called by the hub's thread ---------------------------------------------------------

    def offer(self, changes: Iterable[Change]) -> None:
        with self._lock:
            self._queue.extend(c for c in changes if self._accept(c))
            if len(self._queue) > MAX_QUEUED:
                self._queue.clear()
                self._behind = True
            self._ready.notify_all()
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    # reading ------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> list[Change]:
        """The next changes, waiting up to ``timeout`` seconds; [] if none came."""
        with self._lock:
            if not self._queue and not self._behind and not self.closed:
                self._ready.wait(timeout)
        return self._take()

    async def next(self, timeout: float | None = None) -> list[Change]:
        """The next changes, awaiting up to ``timeout`` seconds; [] if none came."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            waiting = not self._queue and not self._behind and not self.closed
            if waiting:
                self._waiters.add((loop, event))
        if waiting:
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                pass
            finally:
                with self._lock:
                    self._waiters.discard((loop, event))
        with self._lock:
            behind = self._behind
        if behind:  # reading the feed blocks: not on the event loop
            return await asyncio.to_thread(self._take)
        return self._take()

    def _take(self) -> list[Change]:
        with self._lock:
            behind = self._behind
            self._behind = False
        found: list[Change] = []
        if behind:
            found = self._read_feed()
        with self._lock:
            found += [c for c in self._queue if c.id > (found[-1].id if found else self.last_id)]
            self._queue.clear()
            if found:
                self.last_id = found[-1].id
        return found

    def _read_feed(self) -> list[Change]:
        """Every accepted change after ``last_id`` that the feed holds now."""
        found: list[Change] = []
        mark = self.last_id
        while True:
            batch = self._hub.store.changes_since(mark, _BATCH)
            found += [c for c in batch if self._accept(c)]
            if len(batch) < _BATCH:
                return found
            mark = batch[-1].id

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._ready.notify_all()
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ChangeHub:
    """Reads a store's change feed in one background thread and hands each new change
    to every open subscription. Started by the first subscription, stopped by close()."""

    def __init__(self, store: ConversationStore, *, poll_interval: float = 0.5) -> None:
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float):
            raise InvalidInputError("poll_interval must be a number of seconds")
        if poll_interval <= 0:
            raise InvalidInputError("poll_interval must be positive")
        self.store = store
        self.poll_interval = float(poll_interval)
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._mark = 0
        store.watch_writes(self._wake.set)

    def subscribe(self, after: int | None = None, accept: Accept | None = None) -> Subscription:
        """Changes with ids above ``after`` (the current mark when None) that ``accept``
        lets through (all when None)."""
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
            raise InvalidInputError(f"after must be a change id; got {after!r}")
        if after is not None and after < 0:
            raise InvalidInputError(f"after must not be negative; got {after}")
        with self._lock:
            self._start()
            start = self._mark if after is None else after
            subscription = Subscription(self, start, accept or _everything, start < self._mark)
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def close(self) -> None:
        """Stop the reader and end every subscription."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for subscription in list(self._subscriptions):
            subscription.close()

    def _start(self) -> None:
        if self._thread is None:
            self._mark = self.store.change_mark()
            self._thread = threading.Thread(target=self._run, name="convstore-changes", daemon=True)
            self._thread.start()
            if self.store.redis is not None:  # other processes' writes wake the reader
                self.store.redis.listen(self._wake.set)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self._read()
            except ConversationManagerError as exc:  # the store is away: try again later
                log.warning("could not read the change feed: %s", exc)

    def _read(self) -> None:
        while True:
            changes = self.store.changes_since(self._mark, _BATCH)
            if not changes:
                return
            with self._lock:
                self._mark = changes[-1].id
                subscriptions = list(self._subscriptions)
            for subscription in subscriptions:
                subscription.offer(changes)
            if len(changes) < _BATCH:
                return


def _everything(change: Change) -> bool:
    return True
