"""Database engines and the few dialect differences the rest of the server needs.

One ``Database`` per process. On PostgreSQL and MySQL it is one connection pool; writers
that touch the same run serialise on that run's row (``SELECT ... FOR UPDATE``), writers on
different runs proceed in parallel.

On SQLite there are two engines over the same file: a single writer connection and a small
pool of readers. SQLite admits one writer at a time whatever we do, so queueing writers on an
``asyncio.Lock`` in the process (instead of letting them collide on the file lock and spin in
the busy handler) keeps ingest latency flat. Writers begin with ``BEGIN IMMEDIATE`` so that a
second process on the same file (an admin command while the server runs) waits on the busy
timeout instead of failing with "database is locked" when it upgrades a read to a write. In
WAL mode readers never block the writer nor each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import event, func
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import ColumnElement

from gradexp.server.config import async_db_url, db_kind, sqlite_path

log = logging.getLogger("gradexp.server")

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_engine(url: str, pool_size: int, immediate: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so we can say BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe in WAL
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """The process's engines, plus helpers that hide the dialect differences."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.kind = db_kind(url)
        aurl = async_db_url(url)
        self._write_lock: asyncio.Lock | None = None
        if self.kind == "sqlite":
            path = sqlite_path(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(aurl, pool_size=1, immediate=True)
            self.read_engine = _sqlite_engine(aurl, pool_size=4, immediate=False)
        else:
            kwargs: dict[str, Any] = {
                "pool_size": pool_size,
                "max_overflow": pool_size,
                "pool_pre_ping": True,
                "pool_recycle": 1800,
            }
            if self.kind == "mysql":
                # Fresh snapshots per statement: pollers must see other processes' commits.
                kwargs["isolation_level"] = "READ COMMITTED"
                kwargs["connect_args"] = {"charset": "utf8mb4"}
            self.engine = create_async_engine(aurl, **kwargs)
            self.read_engine = self.engine

    @property
    def lock_rows(self) -> bool:
        """Whether ``SELECT ... FOR UPDATE`` is meaningful (not on SQLite)."""
        return self.kind != "sqlite"

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed on exit, rolled back on error."""
        if self.kind == "sqlite":
            if self._write_lock is None:
                self._write_lock = asyncio.Lock()
            async with self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a read transaction (one consistent snapshot on SQLite)."""
        async with self.read_engine.begin() as conn:
            yield conn

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()

    # --- dialect helpers -------------------------------------------------------------------

    def placeholders(self, n: int) -> str:
        """``n`` driver placeholders for ``exec_driver_sql`` (the hot insert paths)."""
        if self.kind == "sqlite":
            return ", ".join("?" * n)
        if self.kind == "postgresql":
            return ", ".join(f"${i}" for i in range(1, n + 1))
        return ", ".join(["%s"] * n)

    def least(self, a: Any, b: Any) -> ColumnElement[Any]:
        """The smaller of two nullable values, ignoring a NULL on either side."""
        a2, b2 = func.coalesce(a, b), func.coalesce(b, a)
        return func.min(a2, b2) if self.kind == "sqlite" else func.least(a2, b2)

    def greatest(self, a: Any, b: Any) -> ColumnElement[Any]:
        """The larger of two nullable values, ignoring a NULL on either side."""
        a2, b2 = func.coalesce(a, b), func.coalesce(b, a)
        return func.max(a2, b2) if self.kind == "sqlite" else func.greatest(a2, b2)

    def upsert(
        self,
        table: Any,
        keys: Sequence[str],
        updates: Any,
    ) -> Any:
        """An INSERT that updates the existing row on a key conflict.

        ``updates(new, old)`` returns ``[(column_name, expression), ...]`` in the order MySQL
        must apply them (MySQL evaluates assignments left to right, each seeing the ones
        before, so a column other expressions compare against must come last). ``new`` is
        the row being inserted and ``old`` the table.
        """
        if self.kind == "mysql":
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            stmt = mysql_insert(table)
            return stmt.on_duplicate_key_update(updates(stmt.inserted, table.c))
        if self.kind == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pstmt = pg_insert(table)
            return pstmt.on_conflict_do_update(
                index_elements=list(keys), set_=dict(updates(pstmt.excluded, table.c))
            )
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        sstmt = sqlite_insert(table)
        return sstmt.on_conflict_do_update(
            index_elements=list(keys), set_=dict(updates(sstmt.excluded, table.c))
        )

    def insert_ignore(self, table: Any) -> Any:
        """An INSERT that silently skips rows whose key already exists."""
        if self.kind == "mysql":
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            return mysql_insert(table).prefix_with("IGNORE")
        if self.kind == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
