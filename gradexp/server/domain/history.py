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
from gradexp.server.domain.pool import off_loop
from gradexp.server.storage import schema as s

_loads = orjson.loads
MAX_SAMPLES = 100_000
#: Keys one downsampled read may ask for (named, or every numeric key of the run).
MAX_HISTORY_KEYS = 1000
#: Keys x samples one downsampled read may ask for (it reads up to ~4 pieces per point).
MAX_HISTORY_POINTS = 500_000
#: The stored JSON one page of raw rows may hold; a page ends early past it.
MAX_ROWS_BYTES = 32 * 1024 * 1024


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
    fetched, cut = _bounded(result, limit)
    return await off_loop(_rows_page, fetched, keys, cut)


async def read_rows_of_runs(
    conn: AsyncConnection, wants: list[tuple[int, int, int]], *, limit: int = 20_000
) -> tuple[dict[int, list[dict[str, Any]]], set[int]]:
    """Rows of many runs in one read: for each ``(run_pk, after_seq, upto_seq)`` of
    ``wants``, the run's rows with ``after_seq < seq <= upto_seq``, in sequence order.

    Returns the rows by run pk, and the pks whose range was read whole. At most ``limit``
    rows and about :data:`MAX_ROWS_BYTES` of JSON in all, read in run pk order: a run cut
    short (its rows so far are returned) and the runs after it are left out of the set,
    for the caller to read with :func:`read_rows`. A resumed project stream catches up on
    hundreds of runs with a few reads instead of one each.
    """
    if not wants:
        return {}, set()
    h = s.history
    result = await conn.execute(
        select(h.c.run_pk, h.c.seq, h.c.step, h.c.time, h.c.row_values)
        .where(or_(*(and_(h.c.run_pk == pk, h.c.seq > lo, h.c.seq <= hi) for pk, lo, hi in wants)))
        .order_by(h.c.run_pk, h.c.seq)
        .limit(limit)
    )
    fetched, cut = _bounded(result, limit)
    whole = {pk for pk, _lo, _hi in wants}
    if cut:
        last = int(fetched[-1][0])
        whole = {pk for pk in whole if pk < last}
    return await off_loop(_rows_by_run, fetched), whole


def _bounded(result: Any, limit: int) -> tuple[list[Any], bool]:
    """The rows of ``result`` (its last column the row's JSON) up to about
    :data:`MAX_ROWS_BYTES` of JSON: a page holds at most about that much, and ends early
    past it. Whether it was cut short by that or by ``limit``."""
    fetched = []
    size = 0
    for row in result:
        fetched.append(row)
        size += len(row[-1])
        if size > MAX_ROWS_BYTES:
            return fetched, True
    return fetched, len(fetched) >= limit


def _rows_by_run(fetched: list[Any]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for pk, seq, step, t, text in fetched:
        out.setdefault(int(pk), []).append(_row_dict(seq, step, t, text, None))
    return out


def _rows_page(
    fetched: list[Any], keys: set[str] | None, more: bool
) -> tuple[list[dict[str, Any]], int | None]:
    rows = []
    for seq, step, t, text in fetched:
        row = _row_dict(seq, step, t, text, keys)
        if keys is None or len(row) > 3:
            rows.append(row)
    return rows, int(fetched[-1][0]) if more and fetched else None


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
IDS_PER_QUERY = 500  # key ids per ``IN (...)`` (well under every database's bind limit)


async def downsample(
    conn: AsyncConnection,
    run_pk: int,
    keys: list[tuple[str, int]],
    lo: int,
    hi: int,
    samples: int,
) -> dict[str, dict[str, list[Any]]]:
    """Series for ``(key, key_id)`` pairs over steps [lo, hi], at most ``samples`` buckets each.

    The pieces (rollup buckets, plus raw points at the edges) are merged with numpy, all
    keys at once: each piece goes to the output bucket holding its last step; a bucket
    keeps the min of mins, the max of maxes and the last value by sequence number. The
    database reads happen here; parsing raw rows and the merge (CPU) run in the bounded
    pool of :func:`off_loop`, so the event loop keeps serving everyone else. The work is
    linear in the pieces read (and their sort), whatever the number of keys.
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
    ids = sorted(names)
    parts: list[Any] = []  # rollup rows (lists of tuples), and the raw rows' pieces
    raw_rows: list[Any] = []  # (seq, step, time, row_values) of the raw segments
    r = s.rollups
    h = s.history
    for seg_level, first, last in plan:
        if seg_level == 0:
            result = await conn.execute(
                select(h.c.seq, h.c.step, h.c.time, h.c.row_values).where(
                    h.c.run_pk == run_pk, h.c.step >= first, h.c.step <= last
                )
            )
            raw_rows.extend(result.all())
            continue
        for i in range(0, len(ids), IDS_PER_QUERY):
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
                    r.c.key_id.in_(ids[i : i + IDS_PER_QUERY]),
                    r.c.level == seg_level,
                    and_(r.c.bucket >= first, r.c.bucket <= last),
                )
            )
            parts.append(result.all())  # made numpy in the pool, off the event loop
    return await off_loop(_merge_pieces, names, parts, raw_rows, lo, span, samples)


def _merge_pieces(
    names: dict[int, str], parts: list[Any], raw_rows: list[Any], lo: int, span: int, samples: int
) -> dict[str, dict[str, list[Any]]]:
    """(In the pool) the raw rows' pieces, then every key's series in one pass."""
    if raw_rows:
        flat: list[float] = []
        _raw_pieces(raw_rows, names, flat)
        parts.append(np.array(flat, dtype=np.float64).reshape(-1, _N_COLS))
    blocks = [
        part
        if isinstance(part, np.ndarray)
        # rows of the database's tuples: flattened first (numpy is slow at row objects)
        else np.fromiter(chain.from_iterable(part), np.float64, len(part) * _N_COLS)
        for part in parts
    ]
    blocks = [b.reshape(-1, _N_COLS) for b in blocks if len(b)]
    pieces = np.concatenate(blocks) if blocks else np.empty((0, _N_COLS))
    merged = _merge(pieces, lo, span, samples)
    fields = ("step", "value", "min", "max", "time")
    out: dict[str, dict[str, list[Any]]] = {
        name: {f: [] for f in fields} for name in names.values()
    }
    for kid, series in merged.items():
        out[names[kid]] = series
    return out


def _merge(p: Any, lo: int, span: int, samples: int) -> dict[int, dict[str, list[Any]]]:
    """Merge every key's pieces into at most ``samples`` output buckets per key: one sort
    by (key, bucket, seq), one reduction per column, then one split by key."""
    if len(p) == 0:
        return {}
    step = p[:, _P_STEP]
    # One output bucket per step when there are few enough steps.
    index = np.minimum(((step - lo) * samples) // span, samples - 1) if span > samples else step
    # within a (key, bucket), the last has the highest seq
    order = np.lexsort((p[:, _P_SEQ], index, p[:, _P_KEY]))
    p, index = p[order], index[order]
    key = p[:, _P_KEY]
    new_group = np.concatenate(([True], (index[1:] != index[:-1]) | (key[1:] != key[:-1])))
    starts = np.flatnonzero(new_group)
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
    # Lists for all keys at once, then cut per key (each cut is a plain list slice).
    steps = p[ends, _P_STEP].astype(np.int64).tolist()
    values, mins, maxs = _encode_list(value), _encode_list(out_min), _encode_list(out_max)
    times = p[ends, _P_TIME].tolist()
    group_key = key[starts]
    cuts = np.flatnonzero(np.concatenate(([True], group_key[1:] != group_key[:-1]))).tolist()
    cuts.append(len(starts))
    kids = group_key[cuts[:-1]].astype(np.int64).tolist()
    return {
        kid: {
            "step": steps[a:b],
            "value": values[a:b],
            "min": mins[a:b],
            "max": maxs[a:b],
            "time": times[a:b],
        }
        for kid, a, b in zip(kids, cuts[:-1], cuts[1:], strict=True)
    }


def _encode_list(values: Any) -> list[Any]:
    """Floats for JSON, with non-finite ones in the protocol's encoding."""
    out = values.tolist()
    if not np.isfinite(values).all():
        out = [x if x - x == 0.0 else encode_float(x) for x in out]
    return out


def _raw_pieces(rows: list[Any], names: dict[int, str], flat: list[float]) -> None:
    """Single-point pieces from raw rows (the ends of a range, or a short range).

    Each row costs the smaller of its own keys and the keys asked for, never their product.
    """
    # A derived "K#stat" series reads the statistic out of the typed value under K.
    plain: dict[str, int] = {}
    stats: dict[str, list[tuple[int, str]]] = {}
    for kid, name in names.items():
        base, sep, stat = name.rpartition(STAT_SEPARATOR)
        if sep:
            stats.setdefault(base, []).append((kid, stat))
        else:
            plain[stat] = kid
    wanted = len(plain) + len(stats)
    for seq, step, t, text in rows:
        values = _loads(text)
        found: list[tuple[int, Any]] = []
        if len(values) <= wanted:
            for name, value in values.items():
                pkid = plain.get(name)
                if pkid is not None:
                    found.append((pkid, value))
                for skid, stat in stats.get(name, ()):
                    found.append((skid, value.get(stat) if type(value) is dict else None))
        else:
            for name, kid in plain.items():
                if name in values:
                    found.append((kid, values[name]))
            for base, pairs in stats.items():
                holder = values.get(base)
                if type(holder) is dict:
                    found.extend((skid, holder.get(stat)) for skid, stat in pairs)
        for kid, value in found:
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
    have, or that is not numeric, gets empty lists. Invalid past :data:`MAX_HISTORY_KEYS`
    keys or :data:`MAX_HISTORY_POINTS` keys x samples."""
    index: dict[str, dict[str, Any]] | None = None
    if wanted is None:
        rk = s.run_keys
        numeric = (
            await conn.execute(
                select(func.count()).where(rk.c.run_pk == run_pk, rk.c.kind.in_(NUMERIC_KINDS))
            )
        ).scalar_one()
        if numeric > MAX_HISTORY_KEYS:  # counted in SQL: refusing costs no key index
            raise Invalid(
                f"this run has {numeric} numeric keys: name at most {MAX_HISTORY_KEYS} "
                "per request with ?keys=a,b,..."
            )
        index = {k["key"]: k for k in await key_index(conn, run_pk)}
        wanted = [k for k, v in index.items() if v["kind"] in NUMERIC_KINDS]
    else:
        wanted = list(dict.fromkeys(wanted))
        if len(wanted) > MAX_HISTORY_KEYS:
            raise Invalid(f"{len(wanted)} keys asked for: at most {MAX_HISTORY_KEYS} per request")
    if len(wanted) * samples > MAX_HISTORY_POINTS:
        raise Invalid(
            f"{len(wanted)} keys x {samples} samples is over {MAX_HISTORY_POINTS:,} points "
            "per request: ask for fewer keys or samples"
        )
    if index is None:
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
