"""Giving storage back: the rows and objects of deleted runs, in the background.

A deletion (``manage.py``) only writes tombstones; this removes what they leave behind:

- the rows of **every table keyed by** ``run_pk`` (history, rollups, typed values, key
  index, files, blobs, alerts, console, system samples... found from the schema, so a new
  table is reclaimed without being listed here), in chunks of :data:`CHUNK_ROWS`, one short
  transaction each, so a run with millions of rows never holds a long lock;
- the run's **objects** (blobs, the Parquet export), except blobs that something other
  than the run still references (:data:`BLOB_REFERENCES`);
- then ``deleted_runs.reclaimed_at`` is set: the tombstone stays, keeping the id taken;
- for a **deleted project**, its artifacts too: the objects under its artifact prefix
  (files and upload parts) first, then the rows of ``artifact_usage``,
  ``artifact_aliases``, ``artifact_versions`` and ``artifact_blobs``, in chunks. The
  rows left are the work list: a project is owed while any remains, so a pass cut off
  among the objects lists them again next time.

Every step is idempotent (deleting what is gone is a no-op) and the work list is the
tombstones themselves, so a process that dies halfway leaves work that the next pass, in
any process, picks up and finishes. One process at a time does it: the pass holds the
``reclaim`` lease of ``server_leases`` and renews it with every chunk (in the chunk's own
transaction, so a process that lost its lease stops before it deletes more); a dead
holder's lease runs out after :data:`LEASE_SECONDS` and another process takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, delete, or_, select, update
from sqlalchemy.engine import Connection

from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, insert_ignore
from gradexp.server.storage.objects import (
    ObjectStore,
    artifact_prefix,
    parse_run_key,
    run_prefix,
)

log = logging.getLogger("gradexp.server.reclaim")

RECLAIM_LEASE = "reclaim"
LEASE_SECONDS = 60.0  # a holder that stops renewing loses the lease after this long
CHUNK_ROWS = 5000  # rows deleted per transaction
CHECK_INTERVAL = 30.0  # seconds between looks for owed work (a deletion here wakes it now)
OBJECTS_PER_RENEWAL = 200

#: Things other than a run's own rows that may still need a deleted run's blobs (an
#: artifact's files, say) register a query here: given the run's pk, a SELECT of the
#: sha256 values they reference. Those objects are kept; ``gradexp server gc`` asks again.
BlobReferences = Callable[[int], Select[Any]]
BLOB_REFERENCES: list[BlobReferences] = []


def run_tables() -> list[Table]:
    """Every table whose rows belong to a run (a ``run_pk`` column that is part of the
    key), children before parents."""
    return [
        t for t in reversed(s.metadata.sorted_tables) if "run_pk" in t.c and not t.c.run_pk.nullable
    ]


def detached_tables() -> list[Table]:
    """Tables whose rows only mention a run and outlive it (a nullable ``run_pk``: the
    run that logged an artifact version first); the reclaimer sets it to NULL."""
    return [t for t in s.metadata.sorted_tables if "run_pk" in t.c and t.c.run_pk.nullable]


def detach_run(conn: Connection, run_pk: int, holder: str, seconds: float) -> int:
    """Forget run ``run_pk`` in the rows that outlive it; returns how many changed."""
    _renewed(conn, holder, seconds)
    return sum(
        int(conn.execute(update(t).where(t.c.run_pk == run_pk).values(run_pk=None)).rowcount or 0)
        for t in detached_tables()
    )


class LeaseLost(RuntimeError):
    """Another process holds the reclaim lease now (this one was too slow to renew it)."""


# --- the lease -----------------------------------------------------------------------------


def take_lease(conn: Connection, name: str, holder: str, seconds: float) -> float | None:
    """Take or renew lease ``name`` for ``holder``: None on success, else when the current
    holder's lease runs out (Unix seconds)."""
    now = time.time()
    leases = s.server_leases
    conn.execute(
        insert_ignore(conn.dialect.name, leases).values(name=name, holder="", expires_at=0.0)
    )
    taken = conn.execute(
        update(leases)
        .where(
            leases.c.name == name,
            or_(leases.c.holder == holder, leases.c.expires_at < now),
        )
        .values(holder=holder, expires_at=now + seconds)
    )
    if taken.rowcount == 1:
        return None
    until = conn.execute(select(leases.c.expires_at).where(leases.c.name == name)).scalar()
    return float(until or now)


def release_lease(conn: Connection, name: str, holder: str) -> None:
    """Give lease ``name`` back, if ``holder`` still has it."""
    leases = s.server_leases
    conn.execute(
        update(leases)
        .where(leases.c.name == name, leases.c.holder == holder)
        .values(expires_at=0.0)
    )


def _renewed(conn: Connection, holder: str, seconds: float) -> None:
    if take_lease(conn, RECLAIM_LEASE, holder, seconds) is not None:
        raise LeaseLost("another server process took over reclaiming storage")


# --- rows ----------------------------------------------------------------------------------


def delete_chunk(
    conn: Connection, table: Table, run_pk: int, limit: int, holder: str, seconds: float
) -> int:
    """Delete up to about ``limit`` of run ``run_pk``'s rows of ``table`` (renewing the
    lease in the same transaction); returns how many went (0: none left)."""
    _renewed(conn, holder, seconds)
    run_col = table.c.run_pk
    # The chunk is a range of the key's next column (seq, key_id, line id...): portable
    # (PostgreSQL has no DELETE ... LIMIT) and an index range on every table.
    after = [c for c in table.primary_key.columns if c.name != "run_pk"]
    if not after:
        return int(conn.execute(delete(table).where(run_col == run_pk)).rowcount or 0)
    col = after[0]
    bound = conn.execute(
        select(col).where(run_col == run_pk).order_by(col).offset(limit - 1).limit(1)
    ).scalar()
    stmt = delete(table).where(run_col == run_pk)
    if bound is not None:
        stmt = stmt.where(col <= bound)
    return int(conn.execute(stmt).rowcount or 0)


def _owed(conn: Connection) -> list[Any]:
    d = s.deleted_runs
    return list(
        conn.execute(
            select(d.c.pk, d.c.id, d.c.project_id)
            .where(d.c.reclaimed_at.is_(None))
            .order_by(d.c.deleted_at, d.c.pk)
        ).all()
    )


def _mark_reclaimed(conn: Connection, run_pk: int, holder: str, seconds: float) -> None:
    _renewed(conn, holder, seconds)
    conn.execute(
        update(s.deleted_runs).where(s.deleted_runs.c.pk == run_pk).values(reclaimed_at=time.time())
    )


def owed_projects(conn: Connection) -> list[int]:
    """Deleted projects that still have artifact rows (their artifacts are owed)."""
    p = s.projects
    out: set[int] = set()
    for table in (s.artifact_blobs, s.artifact_versions, s.artifact_aliases):
        out.update(
            int(pid)
            for pid in conn.execute(
                select(table.c.project_id)
                .distinct()
                .join(p, p.c.id == table.c.project_id)
                .where(p.c.deleted_at.is_not(None))
            ).scalars()
        )
    return sorted(out)


def delete_artifact_chunk(
    conn: Connection, project_id: int, limit: int, holder: str, seconds: float
) -> int:
    """Delete up to about ``limit`` of a deleted project's artifact rows (renewing the
    lease in the same transaction); returns how many went (0: none left)."""
    _renewed(conn, holder, seconds)
    av, blobs = s.artifact_versions, s.artifact_blobs
    # Ids first, then IN (...): MySQL takes no LIMIT in an IN subquery.
    ids = list(
        conn.execute(
            select(av.c.id).where(av.c.project_id == project_id).order_by(av.c.id).limit(limit)
        ).scalars()
    )
    if ids:
        n = conn.execute(delete(s.artifact_usage).where(s.artifact_usage.c.version_id.in_(ids)))
        aa = s.artifact_aliases
        m = conn.execute(delete(aa).where(aa.c.project_id == project_id, aa.c.version_id.in_(ids)))
        v = conn.execute(delete(av).where(av.c.id.in_(ids)))
        return int(n.rowcount or 0) + int(m.rowcount or 0) + int(v.rowcount or 0)
    aa = s.artifact_aliases  # aliases of versions gone already (none, unless hand-made)
    gone = int(conn.execute(delete(aa).where(aa.c.project_id == project_id)).rowcount or 0)
    shas = list(
        conn.execute(
            select(blobs.c.sha256).where(blobs.c.project_id == project_id).limit(limit)
        ).scalars()
    )
    if shas:
        gone += int(
            conn.execute(
                delete(blobs).where(blobs.c.project_id == project_id, blobs.c.sha256.in_(shas))
            ).rowcount
            or 0
        )
    return gone


def referenced_blobs(conn: Connection, run_pk: int) -> set[str]:
    """The sha256 of run ``run_pk``'s blobs that something else still references."""
    out: set[str] = set()
    for query in BLOB_REFERENCES:
        out.update(str(sha) for sha in conn.execute(query(run_pk)).scalars())
    return out


def blob_sha(rest: str) -> str | None:
    """The sha256 of a run object's key remainder (``blobs/<sha>``), else None."""
    kind, _, name = rest.partition("/")
    return name[:64] if kind == "blobs" else None


# --- the pass ------------------------------------------------------------------------------

#: Called after each committed step: (what, how many) — ("history", 5000), ("objects", 12).
Progress = Callable[[str, int], None]


@dataclass
class ReclaimPass:
    """What one pass did: runs finished, rows and objects removed; ``busy_until`` is set
    when another process held the lease (nothing was done)."""

    runs: int = 0
    projects: int = 0  # deleted projects whose artifacts were reclaimed
    rows: int = 0
    objects: int = 0
    bytes: int = 0
    busy_until: float | None = None


class Reclaimer:
    """The background reclaimer of one server process (``AppState.reclaimer``).

    ``start()`` begins a task that runs a pass at startup (finishing what a previous life
    left), every :data:`CHECK_INTERVAL` seconds, and at once after :meth:`wake`; when
    another process holds the lease it waits until that lease would run out.
    """

    def __init__(
        self,
        db: Database,
        objects: ObjectStore,
        *,
        lease_seconds: float = LEASE_SECONDS,
        chunk_rows: int = CHUNK_ROWS,
        interval: float = CHECK_INTERVAL,
        progress: Progress | None = None,
    ) -> None:
        self.db = db
        self.objects = objects
        self.lease_seconds = lease_seconds
        self.chunk_rows = chunk_rows
        self.interval = interval
        self.progress = progress
        self.holder = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the background task (on the running loop)."""
        self._task = asyncio.create_task(self._forever(), name="gradexp-reclaim")

    def wake(self) -> None:
        """Something was deleted here: reclaim it now rather than at the next interval."""
        self._wake.set()

    async def close(self) -> None:
        """Stop; whatever is left stays owed in the database for the next pass."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _forever(self) -> None:
        while True:
            self._wake.clear()
            delay = self.interval
            try:
                done = await self.run_pass()
                if done.busy_until is not None:
                    delay = max(0.5, min(delay, done.busy_until - time.time() + 0.5))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reclaiming deleted runs' storage failed; will retry")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def run_pass(self) -> ReclaimPass:
        """Reclaim every deleted run still owed, holding the lease; a no-op (with
        ``busy_until``) when another process holds it."""
        done = ReclaimPass()
        async with self.db.read() as conn:
            owed = await conn.run_sync(_owed) or await conn.run_sync(owed_projects)
        if not owed:
            return done
        async with self.lease() as busy:
            if busy is not None:
                done.busy_until = busy
                return done
            await self.reclaim_owed(done)
        return done

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[float | None]:
        """Hold the reclaim lease for the block (it yields None), or yield when another
        process's lease runs out without taking it."""
        busy = await self.db.write(take_lease, RECLAIM_LEASE, self.holder, self.lease_seconds)
        if busy is not None:
            yield busy
            return
        try:
            yield None
        finally:
            with contextlib.suppress(Exception):
                await self.db.write(release_lease, RECLAIM_LEASE, self.holder)

    async def reclaim_owed(self, done: ReclaimPass) -> None:
        """Reclaim every owed tombstone and deleted project's artifacts (the caller holds
        the lease)."""
        for tomb in await self.db.write(_owed):  # read again, under the lease
            await self.reclaim_run(tomb.pk, tomb.id, tomb.project_id, done)
            await self.db.write(_mark_reclaimed, tomb.pk, self.holder, self.lease_seconds)
            done.runs += 1
            log.info("reclaimed the storage of deleted run %s", tomb.id)
        for project_id in await self.db.write(owed_projects):
            await self.reclaim_artifacts(project_id, done)
            done.projects += 1
            log.info("reclaimed the artifacts of deleted project #%d", project_id)

    async def reclaim_artifacts(self, project_id: int, done: ReclaimPass) -> None:
        """Remove a deleted project's artifact objects, then its artifact rows (the
        caller holds the lease)."""
        await self._delete_under(artifact_prefix(project_id), done)
        while True:
            n = await self.db.write(
                delete_artifact_chunk, project_id, self.chunk_rows, self.holder, self.lease_seconds
            )
            if not n:
                break
            done.rows += n
            if self.progress is not None:
                self.progress("artifacts", n)

    async def reclaim_run(
        self, run_pk: int, run_id: str | None, project_id: int | None, done: ReclaimPass
    ) -> None:
        """Remove one gone run's rows and (when its id is known) objects; the caller holds
        the lease."""
        done.rows += await self.db.write(detach_run, run_pk, self.holder, self.lease_seconds)
        for table in run_tables():
            while True:
                n = await self.db.write(
                    delete_chunk, table, run_pk, self.chunk_rows, self.holder, self.lease_seconds
                )
                if not n:
                    break
                done.rows += n
                if self.progress is not None:
                    self.progress(table.name, n)
        if run_id is not None and project_id is not None:
            await self.delete_objects(run_pk, run_id, project_id, done)

    async def delete_objects(
        self, run_pk: int, run_id: str, project_id: int, done: ReclaimPass
    ) -> None:
        """Delete a gone run's objects but the blobs still referenced elsewhere."""
        async with self.db.read() as conn:
            kept = await conn.run_sync(referenced_blobs, run_pk)

        def keep(key: str) -> bool:
            parsed = parse_run_key(key)
            return parsed is None or blob_sha(parsed[2]) in kept

        await self._delete_under(run_prefix(project_id, run_id), done, keep)

    async def _delete_under(
        self, prefix: str, done: ReclaimPass, keep: Callable[[str], bool] | None = None
    ) -> None:
        """Delete the objects under ``prefix`` but those ``keep`` says to keep, renewing
        the lease as it goes, then the folders left empty (a local store)."""
        count = 0
        async for obj in self.objects.list(prefix + "/"):
            if keep is not None and keep(obj.key):
                continue
            await self.objects.delete(obj.key)
            done.objects += 1
            done.bytes += obj.size
            count += 1
            if count % OBJECTS_PER_RENEWAL == 0:
                await self.db.write(_renewed, self.holder, self.lease_seconds)
        await asyncio.to_thread(self.objects.prune_folders, prefix)
        if count and self.progress is not None:
            self.progress("objects", count)
