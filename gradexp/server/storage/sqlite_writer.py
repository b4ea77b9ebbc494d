"""SQLite's writer thread: the transactions it commits together (:class:`GroupCommit`) and
the WAL checkpoints it leaves to a thread of their own (:class:`Checkpointer`). See
``db.py`` for the engines and ``Database.write``."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

log = logging.getLogger("gradexp.server")

SQLITE_BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")


class Checkpointer:
    """Checkpoints a SQLite database's WAL on a thread of its own.

    With SQLite's default, the commit that takes the WAL past 1,000 pages copies them
    into the database and fsyncs both files before it returns: measured at 50-60 ms
    every ~16 MB written, added to one batch's latency while every batch behind it
    waited. Here the writer's commits skip that (``wal_autocheckpoint=0``); after each
    one, :meth:`after_commit` wakes this thread once the WAL is past ``threshold`` bytes,
    and it runs a PASSIVE checkpoint, which blocks neither the writer nor readers.

    SQLite rewinds the WAL (and truncates the file to ``threshold``: journal_size_limit)
    at the first write after a checkpoint that copied all of it. Under a steady stream
    of commits a concurrent checkpoint may never quite catch up, so past
    ``writer_limit`` bytes the writer finishes the job itself, right after its commit:
    by then the thread has copied (and synced) nearly everything, so that pass is short,
    and it completes, so the WAL is rewound. The WAL stays under ~``writer_limit``.
    """

    def __init__(
        self,
        path: str,
        threshold: int = 16 << 20,
        writer_limit: int = 64 << 20,
        min_interval: float = 1.0,
    ) -> None:
        self.path = path
        self.min_interval = min_interval
        self.wal_path = path + "-wal"
        self.threshold = threshold
        self.writer_limit = writer_limit
        self.checkpoints = 0  # passes by the thread
        self.writer_checkpoints = 0  # passes by the writer (past writer_limit)
        self._limit_set = False
        self._woken_at = -math.inf  # never: the first commit past the threshold wakes it
        self._lock = threading.Lock()  # held by whoever is checkpointing
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="gradexp-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """The writer's hook, after each commit (writer thread, its sqlite3 connection)."""
        if not self._limit_set:
            conn.execute(f"PRAGMA journal_size_limit={self.threshold}").fetchall()
            self._limit_set = True
        try:
            size = os.stat(self.wal_path).st_size
        except OSError:
            return
        if size >= self.writer_limit:
            with self._lock:  # after the thread's pass in progress, if any
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.writer_checkpoints += 1
                except sqlite3.Error as exc:  # never fail a commit that has happened
                    log.warning("checkpoint of %s failed: %s", self.path, exc)
        elif size > self.threshold:
            # At most one pass a second: each pass syncs the database file, and under a
            # steady stream of commits a pass after every commit copied a few pages each
            # time (measured: a third of a millisecond of CPU per small batch).
            now = time.monotonic()
            if now - self._woken_at >= self.min_interval:
                self._woken_at = now
                self._wake.set()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                break
            try:
                if conn is None:
                    conn = sqlite3.connect(
                        self.path,
                        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                with self._lock:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
            except sqlite3.Error as exc:
                log.warning("checkpoint of %s failed: %s", self.path, exc)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Stop the thread (a checkpoint in progress finishes first)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)


class GroupCommit:
    """SQLite's writes, run on the writer thread and committed in groups.

    One write at a time, each its own transaction, cost a small batch more in the commit
    (the pages it touched written to the WAL: the run's row, the history, rollup and key
    pages, most of them shared with the next batch) and in the two thread hops (a wake-up
    of the writer thread, then of the event loop) than in its statements. Here, whatever
    has queued while the thread was busy runs as one transaction: each write in a savepoint
    of its own (an error rolls back that write only and goes to its caller), one commit,
    then one wake-up of the loop answers every caller. Alone in the queue, a write is its
    own transaction, as before. A caller is answered only after the commit: what it was
    told is written, is. If the commit itself fails (a full disk, say), nothing of the
    group was written and each caller gets that error.

    At most ``max_group`` writes per transaction, so one commit never waits on a long queue.
    A write whose caller was cancelled before the group began is skipped (as an executor
    skips a cancelled job that has not started).
    """

    def __init__(
        self,
        engine: Engine,
        executor: concurrent.futures.ThreadPoolExecutor,
        checkpointer: Checkpointer | None,
        max_group: int = 32,
    ) -> None:
        self._engine = engine
        self._executor = executor
        self._checkpointer = checkpointer
        self.max_group = max_group
        self._jobs: collections.deque[_Job] = collections.deque()
        self._lock = threading.Lock()
        self._draining = False
        self.groups = 0  # transactions committed (or tried)
        self.writes = 0  # writes run in them

    async def write(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._jobs.append(_Job(fn, args, future, loop))
            start = not self._draining
            self._draining = True
        if start:
            try:
                self._executor.submit(self._drain)
            except RuntimeError as exc:  # the database was disposed of
                with self._lock:
                    stranded, self._draining = list(self._jobs), False
                    self._jobs.clear()
                _answer([(job, exc) for job in stranded])
        return await future

    def _drain(self) -> None:
        """Writer thread: run groups until the queue is empty."""
        while True:
            with self._lock:
                if not self._jobs:
                    self._draining = False
                    return
                n = min(len(self._jobs), self.max_group)
                group = [self._jobs.popleft() for _ in range(n)]
            try:
                self._run(group)
            except BaseException as exc:  # every caller must be answered
                _answer([(job, exc) for job in group])

    def _run(self, group: list[_Job]) -> None:
        jobs = [job for job in group if not job.future.cancelled()]
        if not jobs:
            return
        outcomes: list[tuple[_Job, Any]] = []
        try:
            with self._engine.begin() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None
                if len(jobs) == 1:
                    job = jobs[0]
                    outcomes.append((job, _Ok(job.fn(conn, *job.args))))
                else:
                    for job in jobs:
                        # (one at a time: if one raises, those before it are kept)
                        outcomes.append((job, _savepointed(raw, conn, job)))  # noqa: PERF401
        except Exception as exc:
            # Rolled back whole: the write that raised (alone) or the commit failed. The
            # writes that failed by themselves keep their own error.
            outcomes = [
                (job, got if isinstance(got, BaseException) else exc) for job, got in outcomes
            ]
            done = {id(job) for job, _ in outcomes}
            outcomes += [(job, exc) for job in jobs if id(job) not in done]
        else:
            if self._checkpointer is not None:
                self._checkpointer.after_commit(raw)
        self.groups += 1
        self.writes += len(jobs)
        _answer(outcomes)


class _Job:
    __slots__ = ("args", "fn", "future", "loop")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.fn, self.args, self.future, self.loop = fn, args, future, loop


class _Ok:
    """A write's result (an exception is an outcome too: this tells them apart)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _savepointed(raw: sqlite3.Connection, conn: Connection, job: _Job) -> Any:
    """Run one write of a group in a savepoint: its result (an ``_Ok``) or its error, its
    changes rolled back. An error that SQLite answered by rolling back the whole
    transaction (no savepoint left to go back to) is raised: the group failed."""
    raw.execute("SAVEPOINT gradexp_write")
    try:
        value = job.fn(conn, *job.args)
    except Exception as exc:
        try:
            raw.execute("ROLLBACK TO gradexp_write")
            raw.execute("RELEASE gradexp_write")
        except sqlite3.Error:
            raise exc from None
        return exc
    raw.execute("RELEASE gradexp_write")
    return _Ok(value)


def _answer(outcomes: list[tuple[_Job, Any]]) -> None:
    """Hand each caller its outcome: one wake-up per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any]]] = {}
    for job, got in outcomes:
        by_loop.setdefault(job.loop, []).append((job, got))
    for loop, some in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(_settle, some)


def _settle(outcomes: list[tuple[_Job, Any]]) -> None:
    for job, got in outcomes:
        if job.future.done():  # cancelled meanwhile
            continue
        if isinstance(got, _Ok):
            job.future.set_result(got.value)
        else:
            job.future.set_exception(got)
