"""Parquet export of a run's history, and the worker that makes it when a run finishes.

The file has ``step`` (int64), ``timestamp`` (float64 Unix seconds, as in the read API)
and one column per key, in the order keys first appeared:

- numbers: float64 (NaN and infinities restored); booleans: bool; strings: string;
- histograms ``K``: ``K.bins`` and ``K.counts`` (list<float64>), plus the ``K#stat``
  statistics as float64 columns; tensors: ``K.path``, ``K.sha256`` and the statistics;
  images and tables: ``K.path`` and ``K.sha256`` (a table's file); galleries: ``K.paths`` (list<string>, the
  images' files in order).

A value that does not fit its key's column (a string logged under a numeric key) is written
as null there. Building reads the rows in chunks and converts them on a worker thread, so
the event loop keeps serving while a large run exports.

``Exporter`` runs exports off the request path. A finished run owes an export until
``runs.exported_seq`` reaches its ``acked_seq``; the debt lives in the database, so a failed
or interrupted export is retried (with backoff, and by a periodic sweep in every process),
never lost. A claim column keeps two processes from exporting the same run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Connection

from gradexp.protocol.values import decode_value, numeric_value
from gradexp.protocol.wire import STAT_SEPARATOR
from gradexp.server.domain.errors import NotFound
from gradexp.server.domain.history import key_index
from gradexp.server.domain.pool import off_loop
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database
from gradexp.server.storage.objects import ObjectStore, export_key, run_prefix

log = logging.getLogger("gradexp.server.export")

CHUNK_ROWS = 50_000
CHUNK_CELLS = 2_000_000  # rows x columns converted at a time
CLAIM_TIMEOUT = 600.0  # seconds after which another process may take over a stuck export
SWEEP_INTERVAL = 60.0


def _columns(keys: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None]]:
    """``(column, arrow type, source key, field)`` for every output column."""
    kinds = {k["key"]: k["kind"] for k in keys}
    cols: list[tuple[str, str, str, str | None]] = []
    for k in keys:
        key, kind = k["key"], k["kind"]
        base, sep, stat = key.rpartition(STAT_SEPARATOR)
        if sep:
            if kinds.get(base) in ("histogram", "tensor"):
                cols.append((key, "float", base, stat))
            continue
        if kind == "number":
            cols.append((key, "float", key, None))
        elif kind == "bool":
            cols.append((key, "bool", key, None))
        elif kind == "string":
            cols.append((key, "string", key, None))
        elif kind == "histogram":
            cols.append((f"{key}.bins", "list", key, "bins"))
            cols.append((f"{key}.counts", "list", key, "counts"))
        elif kind in ("tensor", "image", "table"):
            cols.append((f"{key}.path", "string", key, "path"))
            cols.append((f"{key}.sha256", "string", key, "sha256"))
        elif kind == "gallery":
            cols.append((f"{key}.paths", "paths", key, "images"))
    return cols


def _convert(
    rows: list[tuple[int, float, str]], cols: list[tuple[str, str, str, str | None]]
) -> Any:
    """One Arrow record batch from raw history rows (runs on a worker thread)."""
    import pyarrow as pa

    n = len(rows)
    steps = [step for step, _t, _x in rows]
    times = [t for _s, t, _x in rows]
    # Every column starts all null (one C-level list each); each row then fills in only
    # the keys it holds: the work is the row's own values, not the run's key count.
    data: list[list[Any]] = [[None] * n for _ in cols]
    by_key: dict[str, list[tuple[list[Any], str, str | None]]] = {}
    for col, (_name, kind, key, field) in zip(data, cols, strict=True):
        by_key.setdefault(key, []).append((col, kind, field))
    for r, (_step, _t, text) in enumerate(rows):
        values = orjson.loads(text)
        for key, value in values.items():
            for col, kind, field in by_key.get(key, ()):
                v = value
                if field is not None:
                    v = v.get(field) if type(v) is dict else None
                if v is None:
                    continue
                if kind == "float":
                    col[r] = numeric_value(v) if type(v) is not str else None
                elif kind == "bool":
                    col[r] = v if type(v) is bool else None
                elif kind == "string":
                    col[r] = v if type(v) is str else None
                elif kind == "paths":  # a gallery's images
                    col[r] = [x.get("path") for x in v] if type(v) is list else None
                else:  # list of numbers (histogram bins/counts)
                    col[r] = [decode_value(x) for x in v] if type(v) is list else None
    arrow_types = {
        "float": pa.float64(),
        "bool": pa.bool_(),
        "string": pa.string(),
        "list": pa.list_(pa.float64()),
        "paths": pa.list_(pa.string()),
    }
    arrays = [pa.array(steps, pa.int64()), pa.array(times, pa.float64())]
    arrays += [
        pa.array(col, arrow_types[kind]) for col, (_n, kind, _k, _f) in zip(data, cols, strict=True)
    ]
    names = ["step", "timestamp", *(c[0] for c in cols)]
    return pa.RecordBatch.from_arrays(arrays, names=names)


async def write_export_file(db: Database, run_pk: int, path: Path) -> int:
    """Write the run's history as Parquet to ``path``; returns the ``acked_seq`` it covers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    h = s.history
    async with db.read() as conn:
        acked = int(
            (
                await conn.execute(select(s.runs.c.acked_seq).where(s.runs.c.pk == run_pk))
            ).scalar_one()
        )
        keys = await key_index(conn, run_pk)
    cols = _columns(keys)
    # A chunk holds at most CHUNK_CELLS cells (a wide run reads fewer rows at a time).
    chunk_rows = max(1, min(CHUNK_ROWS, CHUNK_CELLS // max(1, len(cols))))

    def open_writer() -> Any:
        schema = _convert([], cols).schema
        return schema, pq.ParquetWriter(str(path), schema, compression="zstd")

    def write(rows: list[tuple[int, float, str]]) -> None:
        batch = _convert(rows, cols)
        writer.write_table(pa.Table.from_batches([batch], schema=schema))

    # Everything CPU-heavy (the schema of a wide run, converting, compressing) runs in the
    # bounded read pool, never on the event loop.
    schema, writer = await off_loop(open_writer)
    try:
        after = 0
        while True:
            async with db.read() as conn:
                rows = (
                    await conn.execute(
                        select(h.c.seq, h.c.step, h.c.time, h.c.row_values)
                        .where(h.c.run_pk == run_pk, h.c.seq > after, h.c.seq <= acked)
                        .order_by(h.c.seq)
                        .limit(chunk_rows)
                    )
                ).all()
            if not rows:
                break
            after = int(rows[-1][0])
            await off_loop(write, [(r[1], r[2], r[3]) for r in rows])
            if len(rows) < chunk_rows:
                break
    finally:
        await off_loop(writer.close)
    return acked


async def export_run(db: Database, run_id: str, path: Path) -> int:
    """Write run ``run_id``'s history to ``path`` as Parquet (``gradexp export``); returns
    the row count. NotFound if there is no such run."""
    async with db.read() as conn:
        pk = (await conn.execute(select(s.runs.c.pk).where(s.runs.c.id == run_id))).scalar()
        if pk is None:
            raise NotFound(f"no run {run_id!r} in this database", code="run_not_found")
        count = (
            await conn.execute(
                select(func.count()).select_from(s.history).where(s.history.c.run_pk == pk)
            )
        ).scalar_one()
    path.parent.mkdir(parents=True, exist_ok=True)
    await write_export_file(db, int(pk), path)
    return int(count)


@contextlib.asynccontextmanager
async def temporary_export(db: Database, run_pk: int) -> AsyncIterator[Path]:
    """The run's history as a temporary Parquet file (for on-demand downloads, which
    stream it), removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="gradexp-export-") as tmp:
        path = Path(tmp) / "history.parquet"
        await write_export_file(db, run_pk, path)
        yield path


class Exporter:
    """Makes the Parquet export of finished runs, in the background of a server process."""

    def __init__(self, db: Database, objects: ObjectStore) -> None:
        self.db = db
        self.objects = objects
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[int] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the periodic sweep for owed exports (including those of a previous life)."""
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="gradexp-export-sweep")

    async def close(self) -> None:
        """Stop the worker; unfinished exports stay owed in the database."""
        tasks = [*self._tasks, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def schedule(self, run_pk: int) -> None:
        """Export this run soon (no-op if this process is already on it)."""
        if run_pk in self._running:
            return
        self._running.add(run_pk)
        task = asyncio.create_task(self._export_with_retry(run_pk), name=f"gradexp-export-{run_pk}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("export sweep failed; will retry")
            await asyncio.sleep(SWEEP_INTERVAL)

    async def sweep(self) -> None:
        """Schedule every finished run that still owes an export."""
        r = s.runs
        async with self.db.read() as conn:
            owed = (
                await conn.execute(
                    select(r.c.pk).where(
                        r.c.parent_pk.is_(None),  # a run's other writers are not runs: no export
                        r.c.state.in_(("finished", "failed")),
                        or_(r.c.exported_seq.is_(None), r.c.exported_seq < r.c.acked_seq),
                    )
                )
            ).scalars()
            for pk in owed:
                self.schedule(int(pk))

    async def export_now(self, run_pk: int) -> bool:
        """Claim and export one run; False when there is nothing to do (or another has it)."""
        run = await self.db.write(_claim, run_pk, time.time())
        if run is None:
            return False
        try:
            with tempfile.TemporaryDirectory(prefix="gradexp-export-") as tmp:
                path = Path(tmp) / "history.parquet"
                acked = await write_export_file(self.db, run_pk, path)
                await self.objects.put_file(export_key(run.project_id, run.id), path)
        except BaseException as exc:
            await self.db.write(_release, run_pk, f"{type(exc).__name__}: {exc}"[:2000])
            raise
        if not await self.db.write(_done, run_pk, acked):
            # The run was deleted while it exported, and its storage may be reclaimed
            # already: this file is the last of it (a deletion after _done finds it).
            await self.objects.delete(export_key(run.project_id, run.id))
            await asyncio.to_thread(self.objects.prune_folders, run_prefix(run.project_id, run.id))
            return True
        log.info("exported run %s (through seq %d)", run.id, acked)
        return True

    async def _export_with_retry(self, run_pk: int) -> None:
        delay = 2.0
        try:
            while True:
                try:
                    await self.export_now(run_pk)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("exporting run #%d failed; retrying in %.0f s", run_pk, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)
        finally:
            self._running.discard(run_pk)


def _claim(conn: Connection, run_pk: int, now: float) -> Any:
    """Mark the run's export as taken by this process; None if nothing is owed or taken."""
    r = s.runs
    result = conn.execute(
        update(r)
        .where(
            r.c.pk == run_pk,
            r.c.state.in_(("finished", "failed")),
            or_(r.c.exported_seq.is_(None), r.c.exported_seq < r.c.acked_seq),
            or_(r.c.export_claimed_at.is_(None), r.c.export_claimed_at < now - CLAIM_TIMEOUT),
        )
        .values(export_claimed_at=now)
    )
    if result.rowcount != 1:
        return None
    return conn.execute(select(r.c.id, r.c.project_id).where(r.c.pk == run_pk)).one()


def _release(conn: Connection, run_pk: int, error: str) -> None:
    conn.execute(
        update(s.runs)
        .where(s.runs.c.pk == run_pk)
        .values(export_claimed_at=None, export_error=error)
    )


def _done(conn: Connection, run_pk: int, acked: int) -> bool:
    """Record the export; False when the run is gone (deleted meanwhile)."""
    result = conn.execute(
        update(s.runs)
        .where(s.runs.c.pk == run_pk)
        .values(exported_seq=acked, export_claimed_at=None, export_error=None)
    )
    return bool(result.rowcount)
