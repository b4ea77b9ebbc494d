"""Reading history: raw rows by cursor, and downsampled series from the rollups.

A downsampled read never scans JSON for long ranges. For a step range and ``samples`` it
picks the coarsest rollup level that still yields at least ``samples`` buckets, reads the
buckets that lie wholly inside the range at that level, and covers the two partial ends
with finer levels, down to raw rows for the last few steps. The pieces are then merged into
at most ``samples`` output buckets, each keeping min and max so a single spike survives.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np
import orjson
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.protocol.values import encode_float, numeric_value
from gradexp.protocol.wire import STAT_SEPARATOR
from gradexp.server.domain import rollup
from gradexp.server.domain.errors import Invalid, NotFound
from gradexp.server.storage import schema as s

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


async def keys_named(
    conn: AsyncConnection, run_pk: int, names: list[str]
) -> dict[str, dict[str, Any]]:
    """Key-index entries of the named keys only (a run may have thousands of keys)."""
    k = s.run_keys
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(names), 500):
        result = await conn.execute(
            select(
                k.c.key_id, k.c.key_name, k.c.kind, k.c.count, k.c.first_step, k.c.last_step
            ).where(k.c.run_pk == run_pk, k.c.key_name.in_(names[i : i + 500]))
        )
        for r in result:
            out[r.key_name] = {
                "key": r.key_name,
                "kind": r.kind,
                "count": r.count,
                "first_step": r.first_step,
                "last_step": r.last_step,
                "_id": r.key_id,
            }
    return out


def _level_for(span: int, samples: int) -> int:
    """The coarsest level giving at least ``samples`` buckets over ``span`` steps (0: raw).

    Levels are 4x apart, so this reads at most about 4x ``samples`` buckets per key.
    """
    for level in reversed(rollup.LEVELS):
        if span // rollup.WIDTHS[level] >= samples:
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


# Piece columns (one row per rollup bucket or raw point), as float64 for numpy.
_P_KEY, _P_MIN, _P_MAX, _P_COUNT, _P_FLAGS, _P_LAST, _P_CODE, _P_SEQ, _P_STEP, _P_TIME = range(10)
_N_COLS = 10
RAW_READ_FACTOR = 8  # a downsampled read parses at most this many raw rows per sample


async def downsample(
    conn: AsyncConnection,
    run_pk: int,
    keys: list[tuple[str, int]],
    lo: int,
    hi: int,
    samples: int,
) -> dict[str, dict[str, list[Any]]]:
    """Series for ``(key, key_id)`` pairs over steps [lo, hi], at most ``samples`` buckets each.

    The pieces (rollup buckets, plus raw points at the edges) are merged with numpy: each
    piece goes to the output bucket holding its last step; a bucket keeps the min of mins,
    the max of maxes and the last value by sequence number.
    """
    span = hi - lo + 1
    level = _level_for(span, samples)
    if span <= samples or (level == 0 and span <= RAW_READ_FACTOR * samples):
        plan = [(0, lo, hi)]  # few enough rows to read them all
    else:
        # Past RAW_READ_FACTOR x samples steps, raw rows cost too much to parse: the finest
        # rollups answer instead, with fewer points than asked (each keeping its min/max).
        plan = _plan(lo, hi, max(level, 1))
    names = {kid: name for name, kid in keys}
    flat: list[float] = []
    r = s.rollups
    for seg_level, first, last in plan:
        if seg_level == 0:
            await _raw_pieces(conn, run_pk, names, first, last, flat)
            continue
        result = await conn.execute(
            select(
                r.c.key_id,
                func.coalesce(r.c.vmin, 0.0),  # NULL only when vcount == 0, which masks it
                func.coalesce(r.c.vmax, 0.0),
                r.c.vcount,
                r.c.flags,
                func.coalesce(r.c["last"], 0.0),  # NULL only when last_code says non-finite
                r.c.last_code,
                r.c.last_seq,
                r.c.last_step,
                r.c.last_time,
            ).where(
                r.c.run_pk == run_pk,
                r.c.key_id.in_(list(names)),
                r.c.level == seg_level,
                and_(r.c.bucket >= first, r.c.bucket <= last),
            )
        )
        flat.extend(chain.from_iterable(result.all()))
    pieces = np.array(flat, dtype=np.float64).reshape(-1, _N_COLS)
    out: dict[str, dict[str, list[Any]]] = {}
    for kid, name in names.items():
        out[name] = _merge(pieces[pieces[:, _P_KEY] == kid], lo, span, samples)
    return out


def _merge(p: Any, lo: int, span: int, samples: int) -> dict[str, list[Any]]:
    """Merge one key's pieces into at most ``samples`` output buckets."""
    if len(p) == 0:
        return {"step": [], "value": [], "min": [], "max": [], "time": []}
    step = p[:, _P_STEP]
    # One output bucket per step when there are few enough steps.
    index = np.minimum(((step - lo) * samples) // span, samples - 1) if span > samples else step
    order = np.lexsort((p[:, _P_SEQ], index))  # within a bucket, the last has the highest seq
    p, index = p[order], index[order]
    starts = np.flatnonzero(np.concatenate(([True], index[1:] != index[:-1])))
    ends = np.concatenate((starts[1:], [len(index)])) - 1
    count = p[:, _P_COUNT]
    has = count > 0
    vmin = np.minimum.reduceat(np.where(has, p[:, _P_MIN], np.inf), starts)
    vmax = np.maximum.reduceat(np.where(has, p[:, _P_MAX], -np.inf), starts)
    any_finite = np.add.reduceat(count, starts) > 0
    flags = np.bitwise_or.reduceat(p[:, _P_FLAGS].astype(np.int64), starts)
    pos_inf = (flags & rollup.INF_FLAG) != 0
    neg_inf = (flags & rollup.NINF_FLAG) != 0
    out_min = np.where(
        neg_inf, -np.inf, np.where(any_finite, vmin, np.where(pos_inf, np.inf, np.nan))
    )
    out_max = np.where(
        pos_inf, np.inf, np.where(any_finite, vmax, np.where(neg_inf, -np.inf, np.nan))
    )
    code = p[ends, _P_CODE]
    value = np.select(
        [code == 1, code == 2, code == 3], [np.nan, np.inf, -np.inf], p[ends, _P_LAST]
    )
    return {
        "step": p[ends, _P_STEP].astype(np.int64).tolist(),
        "value": _encode_list(value),
        "min": _encode_list(out_min),
        "max": _encode_list(out_max),
        "time": p[ends, _P_TIME].tolist(),
    }


def _encode_list(values: Any) -> list[Any]:
    """Floats for JSON, with non-finite ones in the protocol's encoding."""
    out = values.tolist()
    if not np.isfinite(values).all():
        out = [x if x - x == 0.0 else encode_float(x) for x in out]
    return out


async def _raw_pieces(
    conn: AsyncConnection,
    run_pk: int,
    names: dict[int, str],
    lo: int,
    hi: int,
    flat: list[float],
) -> None:
    """Single-point pieces from raw rows (the ends of a range, or a short range)."""
    h = s.history
    # A derived "K#stat" series reads the statistic out of the typed value under K.
    wanted = [(kid, *name.rpartition(STAT_SEPARATOR)) for kid, name in names.items()]
    result = await conn.execute(
        select(h.c.seq, h.c.step, h.c.time, h.c.row_values).where(
            h.c.run_pk == run_pk, h.c.step >= lo, h.c.step <= hi
        )
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
            if num is None:
                continue
            if num - num == 0.0:
                flat.extend((kid, num, num, 1, 0, num, 0, seq, step, t))
            else:
                flag, code = (
                    (rollup.NAN_FLAG, 1)
                    if num != num
                    else (rollup.INF_FLAG, 2)
                    if num > 0
                    else (rollup.NINF_FLAG, 3)
                )
                flat.extend((kid, 0.0, 0.0, 0, flag, 0.0, code, seq, step, t))


NUMERIC_KINDS = ("number", "bool")
TYPED_KINDS = ("histogram", "tensor", "image", "gallery", "table")


async def series(
    conn: AsyncConnection,
    run_pk: int,
    wanted: list[str] | None,
    min_step: int | None,
    max_step: int | None,
    samples: int,
) -> dict[str, dict[str, list[Any]]]:
    """Downsampled series of the ``wanted`` keys (every numeric key when None), over steps
    [``min_step``, ``max_step``] (default: the keys' whole range); a key the run does not
    have, or that is not numeric, gets empty lists."""
    if wanted is None:
        index = {k["key"]: k for k in await key_index(conn, run_pk)}
        wanted = [k for k, v in index.items() if v["kind"] in NUMERIC_KINDS]
    else:
        index = await keys_named(conn, run_pk, wanted)
    present = [
        (k, index[k]["_id"]) for k in wanted if k in index and index[k]["kind"] in NUMERIC_KINDS
    ]
    out: dict[str, dict[str, list[Any]]] = {
        k: {"step": [], "value": [], "min": [], "max": [], "time": []} for k in wanted
    }
    if present:
        lo = min_step if min_step is not None else min(index[k]["first_step"] for k, _ in present)
        hi = max_step if max_step is not None else max(index[k]["last_step"] for k, _ in present)
        if lo <= hi:
            out.update(await downsample(conn, run_pk, present, lo, hi, samples))
    return out


async def typed_key(conn: AsyncConnection, run: Any, key: str) -> dict[str, Any]:
    """The key-index entry of a histogram, tensor, image or gallery key of the run: NotFound when the
    run has no such key, Invalid when its values are of another kind."""
    info = (await keys_named(conn, run.pk, [key])).get(key)
    if info is None or STAT_SEPARATOR in key:
        raise NotFound(f"run {run.id!r} has no key {key!r}")
    if info["kind"] not in TYPED_KINDS:
        raise Invalid(f"key {key!r} holds {info['kind']} values, not histograms")
    return info


async def histogram_series(
    conn: AsyncConnection, run_pk: int, info: dict[str, Any], lo: int, hi: int, samples: int
) -> dict[str, Any]:
    """A typed key's values over steps [lo, hi], at most ``samples`` of them (a heatmap's):
    ``bins`` and ``counts`` for a histogram, else the values themselves."""
    points = await typed_series(conn, run_pk, info["_id"], lo, hi, samples)
    histogram = info["kind"] == "histogram"
    out: dict[str, Any] = {"key": info["key"], "kind": info["kind"], "step": [], "time": []}
    if histogram:
        out["bins"], out["counts"] = [], []
    else:
        out["values"] = []
    for step, t, value in points:
        if histogram:
            if type(value) is not dict or value.get("_type") != "histogram":
                continue
            out["bins"].append(value["bins"])
            out["counts"].append(value["counts"])
        else:
            out["values"].append(value)
        out["step"].append(step)
        out["time"].append(t)
    return out


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


async def read_row_ranges(
    conn: AsyncConnection, ranges: list[tuple[int, int, int]]
) -> dict[int, list[dict[str, Any]]]:
    """Every row of several runs at once: for each ``(run_pk, after_seq, max_seq)``, the rows
    with ``after_seq < seq <= max_seq`` in sequence order (the caller bounds the ranges).
    One query per :data:`RANGES_PER_QUERY` runs: the live hub's read of what is new."""
    h = s.history
    out: dict[int, list[dict[str, Any]]] = {}
    for i in range(0, len(ranges), RANGES_PER_QUERY):
        part = ranges[i : i + RANGES_PER_QUERY]
        result = await conn.execute(
            select(h.c.run_pk, h.c.seq, h.c.step, h.c.time, h.c.row_values)
            .where(
                or_(*(and_(h.c.run_pk == pk, h.c.seq > lo, h.c.seq <= hi) for pk, lo, hi in part))
            )
            .order_by(h.c.run_pk, h.c.seq)
        )
        for run_pk, seq, step, t, text in result:
            out.setdefault(int(run_pk), []).append(_row_dict(seq, step, t, text, None))
    return out


RANGES_PER_QUERY = 50
