"""Database engines and the few dialect differences the rest of the server needs.

Writes go through ``Database.write(fn, *args)``: ``fn`` is a plain function taking a sync
SQLAlchemy ``Connection`` inside a transaction (committed when it returns, rolled back if it
raises). Why sync: a batch's transaction is a handful of statements, and on SQLite every
statement through aiosqlite costs a thread round trip (about 0.5 ms here), which dominated
ingest. So:

- SQLite: one dedicated writer thread owns the only write connection (stdlib ``sqlite3``
  through a sync engine) and runs each ``fn`` whole. SQLite admits one writer at a time
  anyway; a single thread makes that queue explicit and keeps writers from spinning in
  the busy handler. The writes waiting when the thread turns to the queue commit together
  (``sqlite_writer.GroupCommit``): each in a savepoint of its own, so each commits or fails alone,
  and every caller is answered only once the group has committed. Transactions begin with
  ``BEGIN IMMEDIATE`` so another process on the same file (an admin command while the
  server runs) waits on the busy timeout instead of failing to upgrade a read lock. Reads
  use a small aiosqlite pool; in WAL mode they never block the writer nor each other.
- PostgreSQL / MySQL: ``fn`` runs via ``AsyncConnection.run_sync`` on the async pool (each
  statement is awaited on the event loop through SQLAlchemy's greenlet bridge). Writers of
  the same run serialise on its row lock (``SELECT ... FOR UPDATE``); others run in
  parallel. PostgreSQL's hot path, a statement that is a transaction by itself
  (``domain/ingest_pg.py``), skips SQLAlchemy: ``Database.fetch_autocommit`` runs it on
  a few asyncpg connections of the process's own (:class:`DriverPool`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, func
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import ColumnElement

from gradexp.server.storage.private import private_file
from gradexp.server.storage.sqlite_writer import SQLITE_BUSY_TIMEOUT_MS, Checkpointer, GroupCommit
from gradexp.server.storage.urls import async_db_url, db_kind, sqlite_path

log = logging.getLogger("gradexp.server")

SQLITE_PAGE_SIZE = 16384  # for new databases; see _sqlite_setup
T = TypeVar("T")


def _sqlite_setup(engine: Engine, writer: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so we can say BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Before anything creates the file (journal_mode does): a new database gets 16 KiB
        # pages. Ingest appends rows in key order, and bigger pages mean fewer page splits
        # and fewer pages per commit and checkpoint: ~30% less CPU per history row here.
        # An existing database keeps its page size (this pragma is then a no-op).
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe in WAL
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    if not writer:
        # Readers run in autocommit: each statement reads one consistent WAL snapshot, and
        # a read request saves the two thread hops of BEGIN and COMMIT through aiosqlite.
        return

    @event.listens_for(engine, "connect")
    def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
        # Commits never checkpoint: the Checkpointer does it on its own thread.
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to sqlite3: through exec_driver_sql this cost a small batch ~40 us of
        # SQLAlchemy's execution machinery.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]


def _sqlite_reader(url: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    _sqlite_setup(engine.sync_engine, writer=False)
    return engine


def _sqlite_writer(url: str) -> Engine:
    # One connection, only ever used from the writer thread.
    engine = create_engine(
        url,
        poolclass=StaticPool,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    _sqlite_setup(engine, writer=True)
    return engine


#: A pooled connection idle longer than this is pinged before use (see _ping_when_idle).
PING_AFTER_IDLE = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle for ``PING_AFTER_IDLE``.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: with asyncpg that is three
    round trips (BEGIN, a query, ROLLBACK), measured at a third of a small batch's CPU.
    A connection in steady use has just proved itself; one that sat idle may have been
    closed by the server (a restart, an idle timeout) and is replaced before anyone
    uses it, as with pre-ping.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            # The pool drops this connection and checks out another (a new one if need be).
            raise DisconnectionError(f"a pooled connection was closed: {exc}") from exc


class DriverPool:
    """A few asyncpg connections of the process's own, for statements that are a
    transaction by themselves (PostgreSQL's hot path: ``Database.fetch_autocommit``).

    Through SQLAlchemy's pool, checking a connection out and in cost more CPU than the
    statement (measured: 160-210 us against 85-125 us for a small statement here). These
    connections never hold a transaction open between statements, so they need no reset:
    one taken from the idle list runs the statement at once. A connection that fails is
    closed and forgotten, and the next statement opens a new one. At most ``size`` are
    open; more statements wait their turn.
    """

    def __init__(self, connect: dict[str, Any], size: int) -> None:
        self._connect = connect
        self._size = size
        self._idle: list[Any] = []
        self._gate: asyncio.Semaphore | None = None  # made on the server's loop
        self._closed = False

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any] | None:
        """The statement's rows; None if its connection failed (the statement may or may
        not have committed). An error of the statement itself is raised."""
        import asyncpg

        if self._gate is None:
            self._gate = asyncio.Semaphore(self._size)
        async with self._gate:
            if self._closed:
                return None
            conn = self._idle.pop() if self._idle else None
            try:
                if conn is None:
                    conn = await asyncpg.connect(**self._connect)
                rows = await conn.fetch(sql, *params)
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
                log.info("a PostgreSQL connection failed (%s): opening another", exc)
                if conn is not None:
                    conn.terminate()
                return None
            except asyncpg.PostgresError:
                # The statement failed, and rolled back by itself: the connection is fine.
                self._idle.append(conn)
                raise
            except BaseException:
                # Cancelled mid-statement, say: the connection's state is unknown.
                if conn is not None:
                    conn.terminate()
                raise
            self._idle.append(conn)
            return list(rows)

    async def close(self) -> None:
        """Close the idle connections; later statements get None."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)


class Database:
    """The process's engines, plus helpers that hide the dialect differences."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.kind = db_kind(url)
        aurl = async_db_url(url)
        self._sqlite_writer: Engine | None = None
        self._writer_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._group_commit: GroupCommit | None = None
        self.checkpointer: Checkpointer | None = None
        self._driver_pool: DriverPool | None = None
        if self.kind == "sqlite":
            path = sqlite_path(url)
            if path is not None:
                private_file(path)  # 0600 before SQLite opens it: the -wal/-shm inherit it
                self.checkpointer = Checkpointer(str(path))
            self._sqlite_writer = _sqlite_writer("sqlite:" + url.split(":", 1)[1])
            self._writer_thread = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="gradexp-sqlite-writer"
            )
            self._group_commit = GroupCommit(
                self._sqlite_writer, self._writer_thread, self.checkpointer
            )
            self.engine = _sqlite_reader(aurl, pool_size=4)
        else:
            kwargs: dict[str, Any] = {
                "pool_size": pool_size,
                "max_overflow": pool_size,
                "pool_recycle": 1800,
            }
            if self.kind == "mysql":
                # Fresh snapshots per statement: pollers must see other processes' commits.
                kwargs["isolation_level"] = "READ COMMITTED"
                kwargs["connect_args"] = {"charset": "utf8mb4"}
            self.engine = create_async_engine(aurl, **kwargs)
            _ping_when_idle(self.engine.sync_engine)
            if self.kind == "postgresql":
                _args, connect = self.engine.dialect.create_connect_args(self.engine.url)
                connect.pop("prepared_statement_cache_size", None)
                self._driver_pool = DriverPool(dict(connect), size=pool_size)
        self.dialect = self.engine.dialect

    @property
    def lock_rows(self) -> bool:
        """Whether ``SELECT ... FOR UPDATE`` is meaningful (not on SQLite)."""
        return self.kind != "sqlite"

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in a write transaction; returns its result once
        that has committed. What ``fn`` did is all written or, if it raises, none of it.
        On SQLite the transaction may be shared with other writes (:class:`GroupCommit`):
        ``fn`` must not commit or roll back itself."""
        if self._group_commit is not None:
            return await self._group_commit.write(fn, args)
        async with self.engine.begin() as aconn:
            return await aconn.run_sync(fn, *args)

    async def write_retrying(self, fn: Callable[..., T], *args: Any, tries: int = 3) -> T:
        """:meth:`write`, run again (up to ``tries`` times in all) when the database picks
        the transaction as a deadlock's victim: it rolled back whole, so ``fn`` must only
        decide from what it reads. The last deadlock is raised (the HTTP layer answers it
        with 503 and ``Retry-After``)."""
        for attempt in range(1, tries + 1):
            try:
                return await self.write(fn, *args)
            except Exception as exc:  # noqa: PERF203 - rare, and it must be retried
                if attempt == tries or not is_deadlock(exc):
                    raise
        raise AssertionError("unreachable")

    async def fetch_autocommit(self, sql: str, params: Sequence[Any]) -> list[Any] | None:
        """PostgreSQL: run one statement by itself (its own transaction: it commits whole
        or not at all) on one of the process's own asyncpg connections; its rows, or None
        if the connection failed (then whether the statement committed is unknown: the
        caller must be able to tell, see ``ingest_pg.py``). See :class:`DriverPool`."""
        if self._driver_pool is None:
            raise RuntimeError("fetch_autocommit is for PostgreSQL only")
        return await self._driver_pool.fetch(sql, params)

    async def run_with_connection(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on a write connection that manages its own
        transactions (schema migrations)."""
        if self._sqlite_writer is not None:
            engine = self._sqlite_writer

            def in_writer_thread() -> T:
                with engine.connect() as conn:
                    return fn(conn, *args)

            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._writer_thread, in_writer_thread)
        async with self.engine.connect() as aconn:
            return await aconn.run_sync(fn, *args)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading (on SQLite each statement reads its own snapshot)."""
        async with self.engine.begin() as conn:
            yield conn

    async def dispose(self) -> None:
        """Close every connection (and stop the SQLite writer thread)."""
        await self.engine.dispose()
        if self._driver_pool is not None:
            await self._driver_pool.close()
        if self._group_commit is not None and self._group_commit.groups:
            group = self._group_commit
            log.info("SQLite: %d writes committed in %d transactions", group.writes, group.groups)
        if self._sqlite_writer is not None and self._writer_thread is not None:
            writer = self._sqlite_writer
            await asyncio.get_running_loop().run_in_executor(self._writer_thread, writer.dispose)
            self._writer_thread.shutdown(wait=True)
            self._sqlite_writer = None
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.close)
            self.checkpointer = None


# --- dialect helpers ---------------------------------------------------------------------------


def least(kind: str, a: Any, b: Any) -> ColumnElement[Any]:
    """The smaller of two nullable values, ignoring a NULL on either side."""
    a2, b2 = func.coalesce(a, b), func.coalesce(b, a)
    return func.min(a2, b2) if kind == "sqlite" else func.least(a2, b2)


def greatest(kind: str, a: Any, b: Any) -> ColumnElement[Any]:
    """The larger of two nullable values, ignoring a NULL on either side."""
    a2, b2 = func.coalesce(a, b), func.coalesce(b, a)
    return func.max(a2, b2) if kind == "sqlite" else func.greatest(a2, b2)


def upsert_statement(kind: str, table: Any, keys: Sequence[str], updates: Any) -> Any:
    """An INSERT that updates the existing row on a key conflict.

    ``updates(new, old)`` returns ``[(column_name, expression), ...]`` in the order MySQL
    must apply them (MySQL evaluates assignments left to right, each seeing the ones
    before, so a column other expressions compare against must come last). ``new`` is the
    row being inserted and ``old`` the table's columns.
    """
    if kind == "mysql":
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table)
        return stmt.on_duplicate_key_update(updates(stmt.inserted, table.c))
    if kind == "postgresql":
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


def insert_ignore(kind: str, table: Any) -> Any:
    """An INSERT that silently skips rows whose key already exists."""
    if kind == "mysql":
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        return mysql_insert(table).prefix_with("IGNORE")
    if kind == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def is_deadlock(exc: BaseException) -> bool:
    """Whether a failed write was chosen as a deadlock's victim (or timed out on a lock),
    so that running its transaction again can succeed (PostgreSQL, MySQL)."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) in ("40P01", "40001"):
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in (1213, 1205)


def is_disconnect(exc: BaseException) -> bool:
    """Whether a failed request lost its database connection (the database restarted or is
    unreachable): nothing it asked was done, and the same request may succeed shortly."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, OSError):
        return True
    return type(orig).__name__ in (
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "ConnectionFailureError",
        "AdminShutdownError",
    )


def placeholders(kind: str, n: int) -> str:
    """``n`` driver placeholders for ``exec_driver_sql`` in this dialect's paramstyle."""
    if kind == "sqlite":
        return ", ".join("?" * n)
    if kind == "postgresql":
        return ", ".join(f"${i}" for i in range(1, n + 1))
    return ", ".join(["%s"] * n)


# Multi-row INSERTs for the hot paths: one statement per few hundred rows instead of
# executemany's one step per row. On SQLite this measured ~1.7x less CPU per row (the
# sqlite3 module binds, steps and resets per row, releasing the GIL each time).
MAX_PARAMS = 30_000  # under SQLite's 32,766 and PostgreSQL's 32,767 bind parameters
MAX_ROWS_PER_STATEMENT = 500


def driver_execute(conn: Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run driver SQL (this dialect's paramstyle) in ``conn``'s transaction; returns
    something with ``fetchone()``/``fetchall()`` giving plain tuples.

    On SQLite the statement goes straight to the ``sqlite3`` connection: SQLAlchemy's
    execution machinery (events, result metadata) cost more than a small statement
    itself (~50 us against ~30 us here), and ingest runs half a dozen per batch. The
    transaction is still SQLAlchemy's: same connection, so BEGIN and COMMIT enclose it.
    """
    if conn.dialect.name == "sqlite":
        return conn.connection.driver_connection.execute(sql, params)  # type: ignore[union-attr]
    return conn.exec_driver_sql(sql, tuple(params))


def insert_rows(conn: Connection, kind: str, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``sql``, a one-row ``INSERT ... VALUES (...) [ON CONFLICT ...]`` in the driver's
    paramstyle, for every row of ``rows``, as multi-row statements."""
    if not rows:
        return
    ncols = len(rows[0])
    per = max(1, min(MAX_ROWS_PER_STATEMENT, MAX_PARAMS // ncols))
    for i in range(0, len(rows), per):
        part = rows[i : i + per]
        driver_execute(conn, _multi_row_sql(kind, sql, len(part)), tuple(chain.from_iterable(part)))


class StatementChain:
    """Writes that PostgreSQL runs as one statement: each ``INSERT``/upsert as a
    data-modifying ``WITH`` query, the last statement as the main one.

    A small batch's writes (history rows, rollups, key index, the run's row) each cost a
    round trip through asyncpg and the event loop, about 0.2 ms of the server's CPU apiece
    on loopback; chained, they cost one. The statements must not read what the others
    write (PostgreSQL runs them on one snapshot), and together hold at most
    ``MAX_PARAMS`` parameters.
    """

    def __init__(self) -> None:
        self.sqls: list[str] = []
        self.counts: list[int] = []
        self.params: list[Any] = []

    def add_rows(self, kind: str, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """``sql`` (a one-row ``INSERT ... VALUES``, as for :func:`insert_rows`) for every
        row of ``rows``."""
        if rows:
            self.add(_multi_row_sql(kind, sql, len(rows)), tuple(chain.from_iterable(rows)))

    def add(self, sql: str, params: Sequence[Any]) -> None:
        """One statement with its parameters (numbered from ``$1``)."""
        self.sqls.append(sql)
        self.counts.append(len(params))
        self.params.extend(params)

    def fits(self, extra: int) -> bool:
        """Whether ``extra`` more parameters fit in one statement."""
        return len(self.params) + extra <= MAX_PARAMS

    def execute(self, conn: Connection) -> None:
        """Run the statements, as one."""
        if self.sqls:
            driver_execute(conn, _chained_sql(tuple(self.sqls), tuple(self.counts)), self.params)


@functools.lru_cache(maxsize=256)
def _chained_sql(sqls: tuple[str, ...], counts: tuple[int, ...]) -> str:
    parts, offset = [], 0
    for sql, count in zip(sqls, counts, strict=True):
        parts.append(_shift_params(sql, offset))
        offset += count
    *ctes, main = parts
    if not ctes:
        return main
    return "WITH " + ", ".join(f"w{i} AS ({cte})" for i, cte in enumerate(ctes)) + " " + main


def _shift_params(sql: str, offset: int) -> str:
    """PostgreSQL's numbered parameters ``$n`` of ``sql`` renumbered from ``offset + 1``."""
    return re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + offset}", sql)


def split_insert(sql: str) -> tuple[str, list[str], str]:
    """A one-row ``INSERT ... VALUES (...) [tail]`` as (the part before ``VALUES``, one
    placeholder per column, the tail: ``ON CONFLICT ...``, say)."""
    head, sep, rest = sql.partition(" VALUES (")
    if not sep:
        raise ValueError(f"not a one-row INSERT ... VALUES (...): {sql[:80]}")
    # The VALUES group ends at its matching parenthesis (placeholders may carry casts such
    # as $3::VARCHAR(300)); split it into one placeholder per column.
    depth, items, start = 0, [], 0
    for pos, ch in enumerate(rest):
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                items.append(rest[start:pos].strip())
                return head, items, rest[pos + 1 :]
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(rest[start:pos].strip())
            start = pos + 1
    raise ValueError(f"unbalanced VALUES group: {sql[:80]}")


@functools.lru_cache(maxsize=128)
def _multi_row_sql(kind: str, sql: str, nrows: int) -> str:
    head, items, tail = split_insert(sql)
    ncols = len(items)
    if kind == "postgresql":  # numbered parameters: $1.. for row 0, $n+1.. for row 1...
        groups = [
            "(" + ", ".join(_shift_params(i, r * ncols) for i in items) + ")" for r in range(nrows)
        ]
    else:
        groups = ["(" + ", ".join(items) + ")"] * nrows
    return f"{head} VALUES {', '.join(groups)}{tail}"


def inserted_id(result: Any) -> int:
    """The primary key an ``INSERT`` of one row assigned."""
    return int(result.inserted_primary_key[0])
