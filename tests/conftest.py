"""Fixtures shared by the whole suite: a store per backend, opened fresh per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import convstore
from convstore import ConversationStore, PersistConversationManager

BACKENDS = ("memory", "sqlite", "files")
SHARED_BACKENDS = ("sqlite", "files")  # those that several processes can open at once


def backend_url(backend: str, directory: Path) -> str:
    """A store URL for ``backend`` whose files (if any) live in ``directory``."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{directory / 'store.db'}"
    if backend == "files":
        return f"file://{directory / 'files'}"
    raise ValueError(backend)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of each backend the contract suite runs against."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> str:
    return backend_url(backend, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[ConversationStore]:
    with convstore.open(store_url) as opened:
        yield opened


@pytest.fixture
def manager(store: ConversationStore) -> PersistConversationManager:
    return PersistConversationManager(store=store)
