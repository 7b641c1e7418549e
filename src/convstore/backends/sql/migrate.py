"""Bring a database to the newest schema with Alembic, once, however many processes open it.

The common case (already up to date) costs one query. Otherwise the upgrade runs inside
the store's write transaction, so concurrent openers queue on the write lock and the
ones that come after the first find nothing left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import cache
from pathlib import Path
from typing import Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from convstore.errors import DataIntegrityError

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger(__name__)


class _HasConnection(Protocol):
    conn: Connection


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def _known_revisions() -> set[str]:
    return {script.revision for script in _scripts().walk_revisions()}


def head_revision() -> str:
    """The newest schema revision this version of convstore knows."""
    head = _scripts().get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The schema revision of the database behind ``conn`` (None when it is empty)."""
    return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(
    engine: Engine, begin_write: Callable[[], AbstractContextManager[_HasConnection]]
) -> bool:
    """Upgrade the database to the newest revision if it is not there yet.

    Returns whether this call ran the upgrade (False when it was already done).
    """
    head = head_revision()
    with engine.connect() as conn:
        current = current_revision(conn)
    if current == head:
        return False
    with begin_write() as session:
        current = current_revision(session.conn)
        if current == head:
            return False
        if current is not None and current not in _known_revisions():
            raise DataIntegrityError(
                f"the store's schema revision {current!r} is unknown to this version of "
                "convstore (was it written by a newer one?)"
            )
        alembic_config = Config()
        alembic_config.set_main_option("script_location", str(MIGRATIONS))
        alembic_config.attributes["connection"] = session.conn
        command.upgrade(alembic_config, "head")
    log.info("upgraded the schema of %s from %s to %s", engine.url, current or "empty", head)
    return True
