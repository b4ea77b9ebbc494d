"""Schema migrations: bring any gradexp database to the newest revision, in place.

Runs at server start and from ``gradexp server migrate``. Several processes may start at
once on one database, so the upgrade runs under a database-wide lock (an advisory lock on
PostgreSQL, ``GET_LOCK`` on MySQL, the write lock of ``BEGIN IMMEDIATE`` on SQLite): the
first process upgrades, the others then find nothing to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gradexp.server.storage.db import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_ID = 0x67726164  # "grad": the PostgreSQL advisory lock key


class MigrationError(RuntimeError):
    """The database is at a revision this version of gradexp does not know."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at our migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this version of gradexp ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, target: str) -> tuple[str | None, str | None]:
    before = _current(connection)
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if before is not None and before not in known:
        raise MigrationError(
            f"the database is at schema revision {before!r}, which this gradexp does not know; "
            "it was made by a newer gradexp: upgrade gradexp instead"
        )
    if connection.in_transaction():
        connection.commit()  # let Alembic run its own transaction per migration
    command.upgrade(alembic_config(connection), target)
    return before, _current(connection)


async def migrate(db: Database, target: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database to ``target``; returns the revisions before and after."""

    def run(connection: Connection) -> tuple[str | None, str | None]:
        if db.kind == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_ID})
            connection.commit()
            try:
                return _upgrade(connection, target)
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
                connection.commit()
        if db.kind == "mysql":
            connection.execute(text("SELECT GET_LOCK('gradexp_migrate', 300)"))
            try:
                return _upgrade(connection, target)
            finally:
                connection.execute(text("SELECT RELEASE_LOCK('gradexp_migrate')"))
                connection.commit()
        return _upgrade(connection, target)

    return await db.run_with_connection(run)
