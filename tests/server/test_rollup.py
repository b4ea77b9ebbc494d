"""The rollup arithmetic: the numpy path equals the pure-Python one, and read plans cover
a step range exactly once."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gradexp.server.domain import rollup
from gradexp.server.domain.history import _plan

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(10**6), max_value=10**6).map(float),
)
points = st.lists(
    st.tuples(st.integers(0, 300_000), values, st.sampled_from([3, 7, 11])),
    min_size=1,
    max_size=400,
)


def _norm(row):
    return tuple("nan" if isinstance(x, float) and math.isnan(x) else x for x in row)


@settings(max_examples=200, deadline=None)
@given(points)
def test_numpy_rollups_equal_python_rollups(pts):
    # Steps in any order (a resumed run may go back), seq in arrival order.
    seqs = list(range(1, len(pts) + 1))
    py = rollup.rows_from_buckets(
        rollup.build(
            [(k, step, seq, float(seq), v) for (step, v, k), seq in zip(pts, seqs, strict=True)]
        )
    )
    vec = rollup.build_columns(
        np.array([p[2] for p in pts], dtype=np.int64),
        np.array([p[0] for p in pts], dtype=np.int64),
        np.array(seqs, dtype=np.int64),
        np.array(seqs, dtype=np.float64),
        np.array([p[1] for p in pts], dtype=np.float64),
    )

    # Sums may differ in the last bits (addition order); everything else is exact.
    by_bucket = {(r[0], r[1], r[2]): _norm(r) for r in py}
    assert sorted(by_bucket) == sorted((r[0], r[1], r[2]) for r in vec)
    for row in vec:
        want, got = by_bucket[(row[0], row[1], row[2])], _norm(row)
        assert got[:5] == want[:5] and got[6:] == want[6:]
        assert math.isclose(got[5], want[5], rel_tol=1e-9, abs_tol=1e-6)


@given(st.integers(0, 2_000_000), st.integers(0, 2_000_000), st.integers(0, 4))
def test_read_plan_covers_the_range_exactly_once(a, b, level):
    lo, hi = min(a, b), max(a, b)
    covered = []
    for lv, first, last in _plan(lo, hi, level):
        if lv == 0:
            covered.append((first, last))
        else:
            shift = rollup.SHIFTS[lv]
            covered.append((first << shift, ((last + 1) << shift) - 1))
    covered.sort()
    assert covered[0][0] == lo and covered[-1][1] == hi
    for (_, end), (start, _) in itertools.pairwise(covered):
        assert start == end + 1
    # Raw rows are only read at the edges: at most 2 * 31 steps.
    assert sum(last - first + 1 for lv, first, last in _plan(lo, hi, level) if lv == 0) <= (
        hi - lo + 1 if level == 0 else 62
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), values, st.sampled_from([3, 7, 11])), min_size=1, max_size=300
    )
)
def test_numpy_rollups_of_ordered_points_equal_python_rollups(deltas):
    # The usual batch: each key's points in sequence order with steps that never go down
    # (build_columns skips its sorts for it). Keys in runs, as ingest passes them.
    by_key: dict[int, list[tuple[int, float]]] = {}
    step = 0
    for delta, v, k in deltas:
        step += delta * 17
        by_key.setdefault(k, []).append((step, v))
    pts = [(k, step, v) for k in sorted(by_key) for step, v in by_key[k]]
    seqs = list(range(1, len(pts) + 1))
    py = rollup.rows_from_buckets(
        rollup.build([(k, s, q, float(q), v) for (k, s, v), q in zip(pts, seqs, strict=True)])
    )
    vec = rollup.build_columns(
        np.array([p[0] for p in pts], dtype=np.int64),
        np.array([p[1] for p in pts], dtype=np.int64),
        np.array(seqs, dtype=np.int64),
        np.array(seqs, dtype=np.float64),
        np.array([p[2] for p in pts], dtype=np.float64),
    )
    by_bucket = {(r[0], r[1], r[2]): _norm(r) for r in py}
    assert sorted(by_bucket) == sorted((r[0], r[1], r[2]) for r in vec)
    for row in vec:
        want, got = by_bucket[(row[0], row[1], row[2])], _norm(row)
        assert got[:5] == want[:5] and got[6:] == want[6:]
        assert math.isclose(got[5], want[5], rel_tol=1e-9, abs_tol=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 300_000),
    st.lists(st.tuples(st.integers(0, 3), values, st.sampled_from([3, 7, 11])), max_size=40),
)
def test_one_bucket_rows_equal_python_rollups(start, deltas):
    # The small batch's shortcut: exactly build's rows (sums included: same order), or
    # None when some key's points are not all finite, within the clamp and in one bucket.
    by_key: dict[int, list[tuple[int, float]]] = {}
    step = start
    for delta, v, k in deltas:
        step += delta
        by_key.setdefault(k, []).append((step, v))
    if not by_key:
        return
    pts = [(k, s, v) for k in sorted(by_key) for s, v in by_key[k]]
    seqs = list(range(1, len(pts) + 1))
    py = rollup.rows_from_buckets(
        rollup.build([(k, s, q, float(q), v) for (k, s, v), q in zip(pts, seqs, strict=True)])
    )
    keyed, i = [], 0
    for k in sorted(by_key):
        n = len(by_key[k])
        keyed.append(
            (
                k,
                [s for s, _ in by_key[k]],
                seqs[i : i + n],
                [float(q) for q in seqs[i : i + n]],
                [v for _, v in by_key[k]],
            )
        )
        i += n
    fast = rollup.one_bucket_rows(keyed)
    simple = all(
        min(steps) >> 5 == max(steps) >> 5
        and all(math.isfinite(v) and abs(v) <= rollup.SUM_CLAMP for v in vals)
        for _, steps, _, _, vals in keyed
    )
    assert (fast is not None) == simple
    if fast is not None:
        assert [_norm(r) for r in fast] == [_norm(r) for r in py]
