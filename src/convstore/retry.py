"""Bounded retries of transient failures, as one policy above every backend.

A failure the backend marks transient (a lost connection, a deadlock: the work was
rolled back) is tried again after a short pause that doubles each time, with jitter,
at most ``config.retry_attempts`` times; every other error, and the last failure,
reaches the caller. A failed COMMIT is never transient: it may have taken effect. Calls
inside ``store.transaction()`` are not retried one by one (the transaction fails).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from convstore.config import ConversationManagerConfig
from convstore.errors import ConversationManagerError

log = logging.getLogger("convstore")
P = ParamSpec("P")
R = TypeVar("R")


class Retrying(Protocol):
    """What a retried method needs of its object: the settings, and whether a
    transaction is open (calls inside one are not retried one by one)."""

    @property
    def config(self) -> ConversationManagerConfig: ...
    def in_transaction(self) -> bool: ...


S = TypeVar("S", bound=Retrying)
FIRST_PAUSE = 0.05
MAX_PAUSE = 2.0


def pause(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, ...): 50 ms, doubling, up
    to 2 s, each drawn uniformly from its upper half so that retrying clients spread."""
    ceiling = min(MAX_PAUSE, FIRST_PAUSE * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def retried(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], R]:
    """``method`` of the store, tried again on transient failures."""

    @functools.wraps(method)
    def call(store: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        attempt = 0
        while True:
            try:
                return method(store, *args, **kwargs)
            except ConversationManagerError as exc:
                attempt += 1
                if (
                    not exc.transient
                    or attempt > store.config.retry_attempts
                    or store.in_transaction()
                ):
                    raise
                log.warning(
                    "%s failed (%s), retrying (%d of %d): %s",
                    method.__name__,
                    exc.code,
                    attempt,
                    store.config.retry_attempts,
                    exc.message,
                )
                time.sleep(pause(attempt))

    return call
