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

# Level -> bucket width in steps. Level 0 is the raw rows.
WIDTHS: dict[int, int] = {1: 16, 2: 256, 3: 4096, 4: 65536}
SHIFTS: dict[int, int] = {1: 4, 2: 8, 3: 12, 4: 16}

NAN_FLAG, INF_FLAG, NINF_FLAG = 1, 2, 4
# last_code: how to read ``last``: 0 the number itself, else NaN, +inf, -inf.
LAST_CODES = {0: None, 1: math.nan, 2: math.inf, 3: -math.inf}

# A bucket under construction, as a list for speed:
# [vmin, vmax, vsum, vcount, flags, last, last_code, last_seq, last_step, last_time]
MIN, MAX, SUM, COUNT, FLAGS, LAST, LAST_CODE, LAST_SEQ, LAST_STEP, LAST_TIME = range(10)


def new_bucket(value: float, seq: int, step: int, time: float) -> list[Any]:
    """A bucket holding one point."""
    if value - value == 0.0:
        return [value, value, value, 1, 0, value, 0, seq, step, time]
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
        b[SUM] += value
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
    level1: dict[tuple[int, int], list[Any]] = {}
    get = level1.get
    for key_id, step, seq, time, value in points:
        k = (key_id, step >> 4)
        b = get(k)
        if b is None:
            level1[k] = new_bucket(value, seq, step, time)
        else:
            add_point(b, value, seq, step, time)
    out: dict[tuple[int, int, int], list[Any]] = {}
    current: dict[tuple[int, int], list[Any]] = level1
    for level in (1, 2, 3, 4):
        for (key_id, bucket), b in current.items():
            out[(key_id, level, bucket)] = b
        if level == 4:
            break
        coarser: dict[tuple[int, int], list[Any]] = {}
        for (key_id, bucket), b in current.items():
            k = (key_id, bucket >> 4)
            c = coarser.get(k)
            if c is None:
                coarser[k] = list(b)
            else:
                merge_into(c, b)
        current = coarser
    return out
