"""Reading history: raw rows by cursor, and downsampled series from the rollups.

A downsampled read never scans JSON for long ranges. For a step range and ``samples`` it
picks the coarsest rollup level that still yields at least ``samples / 2`` buckets, reads the
buckets that lie wholly inside the range at that level, and covers the two partial ends
with finer levels, down to raw rows for the last few steps. The pieces are then merged into
at most ``samples`` output buckets, each keeping min and max so a single spike survives.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp._protocol import STAT_SEPARATOR, encode_float, numeric_value
from gradexp.server import rollup
from gradexp.server import schema as s

_loads = orjson.loads
MAX_SAMPLES = 100_000


def _row_dict(
    seq: int, step: int, t: float, values_text: str, keys: set[str] | None
) -> dict[str, Any]:
    values = _loads(values_text)
    if keys is not None:
        values = {k: v for k, v in values.items() if k in keys}
    return {"_seq": seq, "_step": step, "_timestamp": t, **values}


async def read_rows(
    conn: AsyncConnection,
    run_pk: int,
    *,
    after_seq: int = 0,
    max_seq: int | None = None,
    keys: set[str] | None = None,
    min_step: int | None = None,
    max_step: int | None = None,
    limit: int = 10_000,
) -> tuple[list[dict[str, Any]], int | None]:
    """Rows in sequence order after ``after_seq``; returns (rows, next cursor or None).

    With ``keys``, rows holding none of them are skipped, and each row keeps only those keys.
    """
    h = s.history
    cond = [h.c.run_pk == run_pk, h.c.seq > after_seq]
    if max_seq is not None:
        cond.append(h.c.seq <= max_seq)
    if min_step is not None:
        cond.append(h.c.step >= min_step)
    if max_step is not None:
        cond.append(h.c.step <= max_step)
    result = await conn.execute(
        select(h.c.seq, h.c.step, h.c.time, h.c.row_values)
        .where(*cond)
        .order_by(h.c.seq)
        .limit(limit)
    )
    fetched = result.all()
    rows = []
    for seq, step, t, text in fetched:
        row = _row_dict(seq, step, t, text, keys)
        if keys is None or len(row) > 3:
            rows.append(row)
    next_after = int(fetched[-1][0]) if len(fetched) == limit else None
    return rows, next_after


async def key_index(conn: AsyncConnection, run_pk: int) -> list[dict[str, Any]]:
    """The run's keys, in the order they first appeared."""
    k = s.run_keys
    result = await conn.execute(
        select(k.c.key_id, k.c.key_name, k.c.kind, k.c.count, k.c.first_step, k.c.last_step)
        .where(k.c.run_pk == run_pk)
        .order_by(k.c.key_id)
    )
    return [
        {
            "key": r.key_name,
            "kind": r.kind,
            "count": r.count,
            "first_step": r.first_step,
            "last_step": r.last_step,
            "_id": r.key_id,
        }
        for r in result
    ]


def _level_for(span: int, samples: int) -> int:
    """The coarsest level giving at least ``samples / 2`` buckets over ``span`` steps (0: raw).

    Levels are 16x apart, so asking for a full ``samples`` could read up to 16x more rows
    than it returns (100k steps at 421 samples: 6,250 buckets per key instead of 390). Half
    the resolution is still about one point per two pixels for a chart that asks for its
    width, with every spike kept in the buckets' min/max; it bounds a read at 8x samples.
    """
    for level in (4, 3, 2, 1):
        if span // rollup.WIDTHS[level] >= (samples + 1) // 2:
            return level
    return 0


def _plan(lo: int, hi: int, level: int) -> list[tuple[int, int, int]]:
    """Cover steps [lo, hi] with whole buckets: ``[(level, first, last), ...]``.

    For a level > 0, first and last are bucket numbers; for level 0 they are steps.
    """
    if lo > hi:
        return []
    if level == 0:
        return [(0, lo, hi)]
    shift = rollup.SHIFTS[level]
    width = 1 << shift
    first = (lo + width - 1) >> shift  # first bucket starting at or after lo
    last = ((hi + 1) >> shift) - 1  # last bucket ending at or before hi
    if first > last:
        return _plan(lo, hi, level - 1)
    return [
        *_plan(lo, (first << shift) - 1, level - 1),
        (level, first, last),
        *_plan((last + 1) << shift, hi, level - 1),
    ]


def _encode(x: float) -> Any:
    return x if x - x == 0.0 else encode_float(x)


async def downsample(
    conn: AsyncConnection,
    run_pk: int,
    keys: list[tuple[str, int]],
    lo: int,
    hi: int,
    samples: int,
) -> dict[str, dict[str, list[Any]]]:
    """Series for ``(key, key_id)`` pairs over steps [lo, hi], at most ``samples`` buckets each."""
    span = hi - lo + 1
    level = _level_for(span, samples)
    plan = _plan(lo, hi, level) if span > samples else [(0, lo, hi)]
    # pieces[key_id] = list of buckets (rollup list layout), in step order per plan segment.
    pieces: dict[int, list[list[Any]]] = {kid: [] for _, kid in keys}
    names = {kid: name for name, kid in keys}
    r = s.rollups
    for seg_level, first, last in plan:
        if seg_level == 0:
            await _raw_pieces(conn, run_pk, names, first, last, pieces)
            continue
        result = await conn.execute(
            select(
                r.c.key_id,
                r.c.vmin,
                r.c.vmax,
                r.c.vsum,
                r.c.vcount,
                r.c.flags,
                r.c["last"],
                r.c.last_code,
                r.c.last_seq,
                r.c.last_step,
                r.c.last_time,
            )
            .where(
                r.c.run_pk == run_pk,
                r.c.key_id.in_(list(names)),
                r.c.level == seg_level,
                and_(r.c.bucket >= first, r.c.bucket <= last),
            )
            .order_by(r.c.key_id, r.c.bucket)
        )
        for row in result:
            pieces[row[0]].append(list(row[1:]))
    out: dict[str, dict[str, list[Any]]] = {}
    width = span / samples
    for kid, name in names.items():
        buckets = pieces[kid]
        buckets.sort(key=lambda b: b[rollup.LAST_STEP])
        merged: list[list[Any]] = []
        current_index = -1
        for b in buckets:
            index = (
                min(int((b[rollup.LAST_STEP] - lo) / width), samples - 1)
                if span > samples
                else len(merged)
            )
            if merged and index == current_index:
                rollup.merge_into(merged[-1], b)
            else:
                merged.append(list(b))
                current_index = index
        series: dict[str, list[Any]] = {"step": [], "value": [], "min": [], "max": [], "time": []}
        for b in merged:
            series["step"].append(b[rollup.LAST_STEP])
            series["value"].append(_encode(rollup.last_value(b)))
            series["min"].append(_encode(rollup.bucket_min(b)))
            series["max"].append(_encode(rollup.bucket_max(b)))
            series["time"].append(b[rollup.LAST_TIME])
        out[name] = series
    return out


async def _raw_pieces(
    conn: AsyncConnection,
    run_pk: int,
    names: dict[int, str],
    lo: int,
    hi: int,
    pieces: dict[int, list[list[Any]]],
) -> None:
    """Single-point buckets from raw rows (the ends of a range, or a short range)."""
    h = s.history
    # A derived "K#stat" series reads the statistic out of the typed value under K.
    wanted = [(kid, *name.rpartition(STAT_SEPARATOR)) for kid, name in names.items()]
    result = await conn.execute(
        select(h.c.seq, h.c.step, h.c.time, h.c.row_values)
        .where(h.c.run_pk == run_pk, h.c.step >= lo, h.c.step <= hi)
        .order_by(h.c.step, h.c.seq)
    )
    for seq, step, t, text in result:
        values = _loads(text)
        for kid, base, sep, stat in wanted:
            if sep:
                holder = values.get(base)
                value = holder.get(stat) if type(holder) is dict else None
            else:
                value = values.get(stat)
            num = numeric_value(value)
            if num is not None:
                pieces[kid].append(rollup.new_bucket(num, seq, step, t))


def clamp_samples(samples: int | None, default: int = 1000) -> int:
    """A sane ``samples`` value."""
    if samples is None:
        return default
    return max(1, min(int(samples), MAX_SAMPLES))


async def typed_series(
    conn: AsyncConnection, run_pk: int, key_id: int, lo: int, hi: int, samples: int
) -> list[tuple[int, float, Any]]:
    """``(step, time, value)`` of a typed key (histogram, tensor, image), at most
    ``samples`` of them spread evenly over the rows in the range, first and last kept."""
    tv = s.typed_values
    index = (
        await conn.execute(
            select(tv.c.seq)
            .where(tv.c.run_pk == run_pk, tv.c.key_id == key_id, tv.c.step >= lo, tv.c.step <= hi)
            .order_by(tv.c.step, tv.c.seq)
        )
    ).all()
    seqs = [int(r[0]) for r in index]
    if len(seqs) > samples:
        if samples == 1:
            seqs = [seqs[-1]]
        else:
            last = len(seqs) - 1
            seqs = [
                seqs[i] for i in sorted({round(j * last / (samples - 1)) for j in range(samples)})
            ]
    out: list[tuple[int, float, Any]] = []
    for i in range(0, len(seqs), 500):
        rows = await conn.execute(
            select(tv.c.step, tv.c.time, tv.c.value)
            .where(tv.c.run_pk == run_pk, tv.c.key_id == key_id, tv.c.seq.in_(seqs[i : i + 500]))
            .order_by(tv.c.step, tv.c.seq)
        )
        out.extend((int(step), float(t), _loads(value)) for step, t, value in rows)
    return out
