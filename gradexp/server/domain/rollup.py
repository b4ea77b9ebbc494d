"""Precomputed downsampling ("rollups") of numeric series.

Every numeric point is folded, at ingest, into one bucket per level: level L holds buckets
``WIDTHS[L]`` steps wide. A bucket keeps the min, max, sum and count of its finite values,
flags for the non-finite ones it saw, and its last value by sequence number. Buckets merge
exactly (min of mins, last of lasts...), which is what lets ingest fold batches that arrive
in any order, and lets reads combine coarse buckets with finer ones at the edges of a range.
"""

from __future__ import annotations

import math
from typing import Any

# Level -> bucket width in steps (level 0 is the raw rows): 32 to 131,072, 4x apart.
# - 4x apart: a read at the coarsest level that still gives the requested number of points
#   fetches at most ~4x that many buckets (levels 16x apart read up to 16x: 6,250 rows per
#   key for 421 points over 100k steps).
# - 32 steps at the finest: ingest upserts ~1/32 of a row per point per level-1 bucket
#   instead of 1/16 (rollup rows cost more than history rows: each is an upsert), and the
#   raw rows a read needs at the two ends of a range stay under 64.
SHIFTS: dict[int, int] = {1: 5, 2: 7, 3: 9, 4: 11, 5: 13, 6: 15, 7: 17}
WIDTHS: dict[int, int] = {level: 1 << shift for level, shift in SHIFTS.items()}
LEVELS: tuple[int, ...] = tuple(sorted(SHIFTS))
LEVEL_RATIO_SHIFT = 2  # log2 of the width ratio between consecutive levels

NAN_FLAG, INF_FLAG, NINF_FLAG = 1, 2, 4
# last_code: how to read ``last``: 0 the number itself, else NaN, +inf, -inf.
LAST_CODES = {0: None, 1: math.nan, 2: math.inf, 3: -math.inf}

# A point adds at most this much (in absolute value) to a bucket's sum, so sums can never
# overflow to infinity in any database (MySQL refuses to store or compute one). Values this
# large have no meaningful mean anyway.
SUM_CLAMP = 1e290

# A bucket under construction, as a list for speed:
# [vmin, vmax, vsum, vcount, flags, last, last_code, last_seq, last_step, last_time]
MIN, MAX, SUM, COUNT, FLAGS, LAST, LAST_CODE, LAST_SEQ, LAST_STEP, LAST_TIME = range(10)


def new_bucket(value: float, seq: int, step: int, time: float) -> list[Any]:
    """A bucket holding one point."""
    if value - value == 0.0:
        part = value if -SUM_CLAMP <= value <= SUM_CLAMP else math.copysign(SUM_CLAMP, value)
        return [value, value, part, 1, 0, value, 0, seq, step, time]
    if value != value:
        return [None, None, 0.0, 0, NAN_FLAG, None, 1, seq, step, time]
    if value > 0:
        return [None, None, 0.0, 0, INF_FLAG, None, 2, seq, step, time]
    return [None, None, 0.0, 0, NINF_FLAG, None, 3, seq, step, time]


def add_point(b: list[Any], value: float, seq: int, step: int, time: float) -> None:
    """Fold one point into a bucket."""
    if value - value == 0.0:
        if b[COUNT]:
            if value < b[MIN]:
                b[MIN] = value
            elif value > b[MAX]:
                b[MAX] = value
        else:
            b[MIN] = b[MAX] = value
        b[SUM] += value if -SUM_CLAMP <= value <= SUM_CLAMP else math.copysign(SUM_CLAMP, value)
        b[COUNT] += 1
        code = 0
    elif value != value:
        b[FLAGS] |= NAN_FLAG
        code = 1
    elif value > 0:
        b[FLAGS] |= INF_FLAG
        code = 2
    else:
        b[FLAGS] |= NINF_FLAG
        code = 3
    if seq > b[LAST_SEQ]:
        b[LAST] = value if code == 0 else None
        b[LAST_CODE] = code
        b[LAST_SEQ] = seq
        b[LAST_STEP] = step
        b[LAST_TIME] = time


def merge_into(a: list[Any], b: list[Any]) -> None:
    """Fold bucket ``b`` into bucket ``a``."""
    if b[COUNT]:
        if a[COUNT]:
            if b[MIN] < a[MIN]:
                a[MIN] = b[MIN]
            if b[MAX] > a[MAX]:
                a[MAX] = b[MAX]
        else:
            a[MIN], a[MAX] = b[MIN], b[MAX]
        a[SUM] += b[SUM]
        a[COUNT] += b[COUNT]
    a[FLAGS] |= b[FLAGS]
    if b[LAST_SEQ] > a[LAST_SEQ]:
        a[LAST], a[LAST_CODE], a[LAST_SEQ], a[LAST_STEP], a[LAST_TIME] = (
            b[LAST],
            b[LAST_CODE],
            b[LAST_SEQ],
            b[LAST_STEP],
            b[LAST_TIME],
        )


def last_value(b: list[Any]) -> float:
    """The bucket's last value as a float (NaN/inf restored)."""
    code = b[LAST_CODE]
    return float(b[LAST]) if code == 0 else LAST_CODES[code]  # type: ignore[return-value]


def bucket_min(b: list[Any]) -> float:
    """The smallest value the bucket saw, -inf and NaN included."""
    if b[FLAGS] & NINF_FLAG:
        return -math.inf
    if b[COUNT]:
        return float(b[MIN])
    return math.inf if b[FLAGS] & INF_FLAG else math.nan


def bucket_max(b: list[Any]) -> float:
    """The largest value the bucket saw, +inf and NaN included."""
    if b[FLAGS] & INF_FLAG:
        return math.inf
    if b[COUNT]:
        return float(b[MAX])
    return -math.inf if b[FLAGS] & NINF_FLAG else math.nan


def build(
    points: list[tuple[int, int, int, float, float]],
) -> dict[tuple[int, int, int], list[Any]]:
    """Buckets at every level for a batch's points ``(key_id, step, seq, time, value)``.

    Returns ``{(key_id, level, bucket): bucket}``. Level 1 is built from the points; each
    coarser level from the one below it, so the per-point work is done once.
    """
    top = LEVELS[-1]
    level1_shift = SHIFTS[LEVELS[0]]
    level1: dict[tuple[int, int], list[Any]] = {}
    get = level1.get
    for key_id, step, seq, time, value in points:
        k = (key_id, step >> level1_shift)
        b = get(k)
        if b is None:
            level1[k] = new_bucket(value, seq, step, time)
        else:
            add_point(b, value, seq, step, time)
    out: dict[tuple[int, int, int], list[Any]] = {}
    current: dict[tuple[int, int], list[Any]] = level1
    for level in LEVELS:
        for (key_id, bucket), b in current.items():
            out[(key_id, level, bucket)] = b
        if level == top:
            break
        coarser: dict[tuple[int, int], list[Any]] = {}
        for (key_id, bucket), b in current.items():
            k = (key_id, bucket >> LEVEL_RATIO_SHIFT)
            c = coarser.get(k)
            if c is None:
                coarser[k] = list(b)
            else:
                merge_into(c, b)
        current = coarser
    return out


# A rollup row as written to the database:
# (key_id, level, bucket, vmin, vmax, vsum, vcount, flags, last, last_code, last_seq, last_step, last_time)
RollupRow = tuple[int, int, int, Any, Any, float, int, int, Any, int, int, int, float]

# Below this many points a key's buckets are built in pure Python; numpy's per-call cost
# only pays off for longer columns.
NUMPY_MIN_POINTS = 48


def rows_from_buckets(buckets: dict[tuple[int, int, int], list[Any]]) -> list[RollupRow]:
    """Database rows from ``build``'s buckets."""
    return [(k, lv, bk, *b) for (k, lv, bk), b in buckets.items()]


def one_bucket_rows(
    keys: list[tuple[int, list[int], list[int], list[float], list[float]]],
) -> list[RollupRow] | None:
    """``rows_from_buckets(build(...))`` for the usual small batch, or None.

    ``keys``: per key id (ascending), its points as lists ``(key_id, steps, seqs, times,
    values)``, in sequence order. When every key's points are finite, within
    ``SUM_CLAMP`` and in one level-1 bucket (a second's worth of consecutive steps), each
    key has one bucket per level, all alike: built once here, with no per-point call.
    Same rows, in the same order, as ``build`` (the sum added in the same order).
    """
    first = SHIFTS[LEVELS[0]]
    buckets = []
    for key_id, steps, seqs, times, values in keys:
        bucket = min(steps) >> first
        if max(steps) >> first != bucket or not all(map(math.isfinite, values)):
            return None
        vmin, vmax = min(values), max(values)
        if vmin < -SUM_CLAMP or vmax > SUM_CLAMP:
            return None
        total = values[0]
        for v in values[1:]:
            total += v
        i = seqs.index(max(seqs))
        buckets.append(
            (
                key_id,
                bucket,
                (vmin, vmax, total, len(values), 0, values[i], 0, seqs[i], steps[i], times[i]),
            )
        )
    return [
        (key_id, level, bucket >> (SHIFTS[level] - first), *b)
        for level in LEVELS
        for key_id, bucket, b in buckets
    ]


def build_column(key_id: int, steps: Any, seqs: Any, times: Any, values: Any) -> list[RollupRow]:
    """Rollup rows at every level for one key's points (see ``build_columns``)."""
    import numpy as np

    return build_columns(np.full(len(steps), key_id, dtype=np.int64), steps, seqs, times, values)


def build_columns(keys: Any, steps: Any, seqs: Any, times: Any, values: Any) -> list[RollupRow]:
    """Rollup rows at every level for many keys' points at once, vectorised with numpy.

    ``keys``, ``steps``, ``seqs``, ``times`` and ``values`` are equal-length numpy arrays
    (int64, int64, int64, float64, float64) in any order. Gives exactly what ``build`` gives.
    Two rounds of numpy calls serve every key and level: the points are folded into level-1
    buckets, then copies of those buckets, one per coarser level, are folded together. So
    the cost per batch hardly grows with the number of keys, and numpy's per-call cost is
    paid twice, not once per level.
    """
    import numpy as np

    nan_mask = np.isnan(values)
    inf_mask = np.isposinf(values)
    ninf_mask = np.isneginf(values)
    finite = ~(nan_mask | inf_mask | ninf_mask)
    # Per-point aggregates; non-finite points add nothing to min/max/sum/count.
    agg = [
        np.where(finite, values, np.inf),  # MIN
        np.where(finite, values, -np.inf),  # MAX
        np.clip(np.where(finite, values, 0.0), -SUM_CLAMP, SUM_CLAMP),  # SUM
        finite.astype(np.int64),  # COUNT
        nan_mask * NAN_FLAG + inf_mask * INF_FLAG + ninf_mask * NINF_FLAG,  # FLAGS
        np.where(finite, values, 0.0),  # LAST
        nan_mask * 1 + inf_mask * 2 + ninf_mask * 3,  # LAST_CODE
        seqs,  # LAST_SEQ
        steps,  # LAST_STEP
        times,  # LAST_TIME
    ]
    # The usual input needs no sorting at all: keys in runs, each key's points in sequence
    # order with steps that never go down. Then (key, bucket) groups are contiguous at
    # every level and each group's last element has its highest sequence number.
    presorted = bool(
        np.all(keys[1:] >= keys[:-1])
        and np.all((keys[1:] != keys[:-1]) | ((seqs[1:] > seqs[:-1]) & (steps[1:] >= steps[:-1])))
    )
    keys1, buckets1, agg1 = _fold([keys, steps >> SHIFTS[1]], agg, presorted)
    # Every coarser level at once: one copy of the level-1 buckets per level, renumbered.
    coarser = LEVELS[1:]
    m = len(buckets1)
    levels = np.repeat(np.array(coarser, dtype=np.int64), m)
    shifts = np.repeat(np.array([SHIFTS[lv] - SHIFTS[1] for lv in coarser], dtype=np.int64), m)
    copies = len(coarser)
    keys2, buckets2, agg2 = _fold(
        [levels, np.tile(keys1[0], copies), np.tile(buckets1, copies) >> shifts],
        [np.tile(a, copies) for a in agg1],
        presorted,
    )
    all_levels = np.concatenate((np.full(m, LEVELS[0], dtype=np.int64), keys2[0]))
    all_keys = np.concatenate((keys1[0], keys2[1]))
    all_buckets = np.concatenate((buckets1, buckets2))
    a = [np.concatenate((x, y)) for x, y in zip(agg1, agg2, strict=True)]
    has = (a[COUNT] > 0).tolist()
    codes = a[LAST_CODE].tolist()
    return list(
        zip(
            all_keys.tolist(),
            all_levels.tolist(),
            all_buckets.tolist(),
            [x if h else None for x, h in zip(a[MIN].tolist(), has, strict=True)],
            [x if h else None for x, h in zip(a[MAX].tolist(), has, strict=True)],
            a[SUM].tolist(),
            a[COUNT].tolist(),
            a[FLAGS].tolist(),
            [x if c == 0 else None for x, c in zip(a[LAST].tolist(), codes, strict=True)],
            codes,
            a[LAST_SEQ].tolist(),
            a[LAST_STEP].tolist(),
            a[LAST_TIME].tolist(),
            strict=True,
        )
    )


def _fold(group: list[Any], agg: list[Any], presorted: bool) -> tuple[list[Any], Any, list[Any]]:
    """Fold rows that share ``group``'s values (major to minor; the last is the bucket)
    into one bucket each. Returns the groups' leading columns, their buckets, and their
    aggregates (the ``agg`` layout: MIN, MAX, SUM, COUNT, FLAGS, LAST ... LAST_TIME).

    ``presorted``: equal groups are already contiguous, each in sequence order.
    Otherwise the rows are sorted first, by group and then by sequence number, so a
    group's last row holds its "last" value.
    """
    import numpy as np

    if not presorted:
        order = np.lexsort((agg[LAST_SEQ], *reversed(group)))
        group = [g[order] for g in group]
        agg = [x[order] for x in agg]
    n = len(group[-1])
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for g in group:
        change[1:] |= g[1:] != g[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n) - 1
    folded = [
        np.minimum.reduceat(agg[MIN], starts),
        np.maximum.reduceat(agg[MAX], starts),
        np.add.reduceat(agg[SUM], starts),
        np.add.reduceat(agg[COUNT], starts),
        np.bitwise_or.reduceat(agg[FLAGS], starts),
        *(x[ends] for x in agg[LAST:]),
    ]
    return [g[starts] for g in group[:-1]], group[-1][starts], folded
