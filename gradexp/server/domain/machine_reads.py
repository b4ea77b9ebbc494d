"""What the machine did, read back: system series, console lines, the environment, and
the system samples as Parquet.

Every read is bounded: system samples are read in chunks and folded into at most
``samples`` buckets per key on a worker thread (the event loop keeps serving), console
lines come in pages of at most :data:`MAX_LOG_PAGE`, and the whole-log download streams
page by page.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database

__all__ = [
    "console_page",
    "console_since",
    "console_totals",
    "environment",
    "log_text",
    "system_series",
    "system_table",
]

MAX_SYSTEM_SAMPLES = 10_000  # buckets per key a series request may ask for
DEFAULT_SYSTEM_SAMPLES = 1000
MAX_LOG_PAGE = 10_000
CHUNK_ROWS = 20_000
_STREAM_NAMES = ("stdout", "stderr")


# --- system series ------------------------------------------------------------------------


async def system_series(
    db: Database, run_pk: int, rank: int, samples: int | None
) -> dict[str, dict[str, list[float]]]:
    """``{key: {"time", "value", "min", "max"}}``: at most ``samples`` buckets per key, each
    the mean of its samples (time: the bucket's last sample), with min and max kept."""
    samples = max(1, min(samples or DEFAULT_SYSTEM_SAMPLES, MAX_SYSTEM_SAMPLES))
    t = s.system_samples
    async with db.read() as conn:
        count = (
            await conn.execute(select(func.count()).where(t.c.run_pk == run_pk, t.c.rank == rank))
        ).scalar_one()
    per = max(1, math.ceil(count / samples))
    acc = _Buckets(per)
    after = -1
    while True:
        async with db.read() as conn:
            rows = (
                await conn.execute(
                    select(t.c.seq, t.c.time, t.c.sample_values)
                    .where(t.c.run_pk == run_pk, t.c.rank == rank, t.c.seq > after)
                    .order_by(t.c.seq)
                    .limit(CHUNK_ROWS)
                )
            ).all()
        if not rows:
            break
        after = int(rows[-1][0])
        await asyncio.to_thread(acc.add, [(r[1], r[2]) for r in rows])
        if len(rows) < CHUNK_ROWS:
            break
    return acc.result()


class _Buckets:
    """Folds samples into buckets of ``per`` consecutive samples per key (worker thread)."""

    def __init__(self, per: int) -> None:
        self.per = per
        self.n = 0
        self.series: dict[str, dict[str, list[float]]] = {}
        self.open: dict[str, list[float]] = {}  # key -> [sum, count, min, max, time]

    def add(self, rows: list[tuple[float, str]]) -> None:
        for t, text in rows:
            values = orjson.loads(text)
            for key, v in values.items():
                if type(v) not in (int, float):
                    continue
                b = self.open.get(key)
                if b is None:
                    self.open[key] = [v, 1, v, v, t]
                else:
                    b[0] += v
                    b[1] += 1
                    b[2] = min(b[2], v)
                    b[3] = max(b[3], v)
                    b[4] = t
            self.n += 1
            if self.n % self.per == 0:
                self._close()

    def _close(self) -> None:
        for key, (total, count, lo, hi, t) in self.open.items():
            out = self.series.setdefault(key, {"time": [], "value": [], "min": [], "max": []})
            out["time"].append(t)
            out["value"].append(round(total / count, 6))
            out["min"].append(lo)
            out["max"].append(hi)
        self.open = {}

    def result(self) -> dict[str, dict[str, list[float]]]:
        self._close()
        return dict(sorted(self.series.items()))


async def system_table(db: Database, run_pk: int) -> Any:
    """Every system sample of the run as a ``pyarrow.Table``: ``time``, ``rank`` and one
    float64 column per key (keys in order of first appearance; null where a sample
    lacks one)."""
    import pyarrow as pa

    t = s.system_samples
    rows: list[tuple[float, int, dict[str, Any]]] = []
    after: tuple[int, int] = (-1, -1)
    while True:
        async with db.read() as conn:
            chunk = (
                await conn.execute(
                    select(t.c.rank, t.c.seq, t.c.time, t.c.sample_values)
                    .where(
                        t.c.run_pk == run_pk,
                        (t.c.rank > after[0]) | ((t.c.rank == after[0]) & (t.c.seq > after[1])),
                    )
                    .order_by(t.c.rank, t.c.seq)
                    .limit(CHUNK_ROWS)
                )
            ).all()
        if not chunk:
            break
        after = (int(chunk[-1][0]), int(chunk[-1][1]))
        rows.extend((float(r[2]), int(r[0]), orjson.loads(r[3])) for r in chunk)
        if len(chunk) < CHUNK_ROWS:
            break

    def build() -> Any:
        keys: dict[str, None] = {}
        for _, _, values in rows:
            keys.update(dict.fromkeys(values))
        columns = {
            "time": pa.array([r[0] for r in rows], pa.float64()),
            "rank": pa.array([r[1] for r in rows], pa.int32()),
        }
        for key in keys:
            columns[key] = pa.array([r[2].get(key) for r in rows], pa.float64())
        return pa.table(columns)

    return await asyncio.to_thread(build)


# --- console lines ----------------------------------------------------------------------


def _line(row: Any) -> dict[str, Any]:
    line_id, t, stream, text = row
    return {"id": int(line_id), "time": t, "stream": _STREAM_NAMES[stream], "text": text}


async def console_page(
    conn: AsyncConnection,
    run_pk: int,
    rank: int,
    *,
    after_id: int = -1,
    limit: int = 1000,
    q: str | None = None,
    stream: str | None = None,
    tail: bool = False,
) -> tuple[list[dict[str, Any]], int | None]:
    """Lines in id order after ``after_id`` (``tail``: the last ``limit`` lines instead),
    those holding ``q`` (case-insensitive) and of ``stream`` only when given; and the id
    to continue after (None at the end)."""
    c = s.console_lines
    limit = max(1, min(limit, MAX_LOG_PAGE))
    where = [c.c.run_pk == run_pk, c.c.rank == rank]
    if stream is not None:
        where.append(c.c.stream == _STREAM_NAMES.index(stream))
    if q:
        escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(func.lower(c.c.text).like(f"%{escaped}%", escape="\\"))
    query = select(c.c.line_id, c.c.time, c.c.stream, c.c.text).where(*where)
    if tail:
        rows = (await conn.execute(query.order_by(c.c.line_id.desc()).limit(limit))).all()
        return [_line(r) for r in reversed(rows)], None
    rows = (
        await conn.execute(
            query.where(c.c.line_id > after_id).order_by(c.c.line_id).limit(limit + 1)
        )
    ).all()
    more = len(rows) > limit
    lines = [_line(r) for r in rows[:limit]]
    return lines, (lines[-1]["id"] if more and lines else None)


async def console_since(
    conn: AsyncConnection, run_pk: int, after_seq: int, max_seq: int, limit: int, rank: int = 0
) -> list[dict[str, Any]]:
    """Lines of writer ``rank`` written (or replaced) by its records ``after_seq < seq <=
    max_seq``, in seq order, each with its ``seq`` and ``rank`` (the live log's cursor:
    each writer of a distributed run numbers its own records)."""
    c = s.console_lines
    rows = (
        await conn.execute(
            select(c.c.seq, c.c.rank, c.c.line_id, c.c.time, c.c.stream, c.c.text)
            .where(c.c.run_pk == run_pk, c.c.rank == rank, c.c.seq > after_seq, c.c.seq <= max_seq)
            .order_by(c.c.seq, c.c.line_id)
            .limit(limit)
        )
    ).all()
    return [{"seq": int(r[0]), "rank": int(r[1]), **_line(r[2:])} for r in rows]


async def console_totals(conn: AsyncConnection, run_pk: int, rank: int) -> dict[str, int]:
    """``{"lines", "bytes", "dropped_lines", "dropped_bytes"}`` stored for the run's rank."""
    t = s.console_totals
    row = (
        await conn.execute(
            select(t.c.lines, t.c.bytes, t.c.dropped_lines, t.c.dropped_bytes).where(
                t.c.run_pk == run_pk, t.c.rank == rank
            )
        )
    ).first()
    names = ("lines", "bytes", "dropped_lines", "dropped_bytes")
    return dict(zip(names, (int(x) for x in row), strict=True)) if row else dict.fromkeys(names, 0)


async def log_text(db: Database, run_pk: int, rank: int) -> AsyncIterator[bytes]:
    """The whole log as text, page by page (stderr lines as they are: a download is the
    output as the terminal showed it)."""
    after = -1
    while True:
        async with db.read() as conn:
            lines, _ = await console_page(conn, run_pk, rank, after_id=after, limit=MAX_LOG_PAGE)
        if not lines:
            return
        yield "".join(line["text"] + "\n" for line in lines).encode()
        after = lines[-1]["id"]
        if len(lines) < MAX_LOG_PAGE:
            return


# --- environment ------------------------------------------------------------------------


async def environment(conn: AsyncConnection, run_pk: int, rank: int) -> dict[str, Any] | None:
    """The environment the run's ``rank`` recorded (None if it recorded none)."""
    e = s.run_environments
    text = (
        await conn.execute(select(e.c.environment).where(e.c.run_pk == run_pk, e.c.rank == rank))
    ).scalar()
    return orjson.loads(text) if text else None
