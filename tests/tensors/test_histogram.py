"""The stream-side histogram kernel: exactly np.histogram's counts on the edges it reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradexp.protocol.values import decode_value
from gradexp.sdk.values import binning as H


def _check_against_numpy(values: np.ndarray, bins: int, **kwargs: object) -> dict:
    h = decode_value(H.histogram_value(values, bins, **kwargs))
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    edges = np.array(h["bins"])
    assert len(edges) == len(h["counts"]) + 1
    assert np.all(np.diff(edges) >= 0)
    if finite.size:
        assert len(h["counts"]) == bins
        expected, _ = np.histogram(finite, bins=edges)
        assert h["counts"] == expected.tolist()
        assert sum(h["counts"]) == finite.size
        if "range" not in kwargs:
            assert (
                edges[0] == finite.min() and edges[-1] == finite.max()
            ) or finite.min() == finite.max()
    else:  # nothing finite to count: an empty histogram, never made-up edges
        assert (h["counts"], h["bins"]) == ([], [0.0])
    return h


float_arrays = st.one_of(
    hnp.arrays(
        np.float32,
        st.integers(1, 300),
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
    ),
    hnp.arrays(
        np.float64,
        st.integers(1, 300),
        elements=st.floats(allow_nan=False, allow_infinity=False),
    ),
    # few distinct values, clustered: many values sit exactly on or next to edges
    st.builds(
        lambda base, scale, ints, dt: (base + scale * np.asarray(ints, dtype=np.float64)).astype(
            dt
        ),
        st.floats(-1e6, 1e6),
        st.floats(1e-12, 1e3),
        st.lists(st.integers(-100, 100), min_size=1, max_size=300),
        st.sampled_from([np.float32, np.float64, np.float16]),
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=float_arrays, bins=st.integers(1, 512))
def test_counts_equal_numpy_on_the_reported_edges(values, bins):
    values = values[np.isfinite(values)]
    _check_against_numpy(values, bins)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=float_arrays,
    bins=st.integers(1, 512),
    bad=st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), max_size=20),
    data=st.data(),
)
def test_non_finite_values_anywhere(values, bins, bad, data):
    values = values[np.isfinite(values)]
    mixed = values.copy()
    if bad:
        where = data.draw(
            st.lists(st.integers(0, len(values)), min_size=len(bad), max_size=len(bad))
        )
        mixed = np.insert(mixed, where, np.array(bad, dtype=values.dtype))
    original = mixed.copy()
    h = decode_value(H.histogram_value(mixed, bins))
    np.testing.assert_array_equal(mixed, original)  # the array is only read
    clean = decode_value(H.histogram_value(values, bins))
    assert (h["nan"], h["inf"], h["ninf"]) == (
        sum(map(np.isnan, bad)),
        bad.count(np.inf),
        bad.count(-np.inf),
    )
    assert h["count"] == len(mixed)
    for key in ("bins", "counts", "min", "max", "zeros"):
        assert h[key] == clean[key] or (key in ("min", "max") and math.isnan(h[key]))
    scale = float(np.abs(values.astype(np.float64)).max()) if values.size else 0.0
    spread = clean["std"] if values.size and math.isfinite(clean["std"]) else 0.0
    # float32 data are reduced in float32 (deviations from a shift that depends on where
    # the NaNs fall), with sums in double: the documented accuracy is about 1e-7 of the
    # spread (docs/tensors.md), and cancellation leaves errors relative to it.
    tol = 1e-7 * spread + 1e-9 * scale
    for key in ("mean", "std", "norm"):
        assert h[key] == pytest.approx(clean[key], rel=1e-6, abs=tol, nan_ok=True)


@settings(max_examples=100, deadline=None)
@given(
    values=hnp.arrays(
        st.sampled_from([np.int8, np.uint8, np.int32, np.int64, np.uint16]),
        st.integers(1, 200),
    ),
    bins=st.integers(1, 300),
)
def test_integer_arrays(values, bins):
    h = _check_against_numpy(values, bins)
    ref = values.astype(np.float64)
    # small ints are binned as float32: the statistics are float32-exact, summed in double
    assert h["mean"] == pytest.approx(ref.mean(), abs=1e-6 * max(1.0, np.abs(ref).max()))
    assert h["zeros"] == int(np.count_nonzero(values == 0))


def test_large_array_crosses_chunks_and_matches_numpy():
    rng = np.random.default_rng(5)
    values = rng.standard_normal(H._CHUNK * 3 + 7).astype(np.float32)  # odd length: padding
    for bins in (1, 7, 64, 254, 255, 512):
        _check_against_numpy(values, bins)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_values_spread_over_chunks(dtype):
    # chunks with NaN only, with +-inf (their finite min/max need the patched path), one
    # that holds nothing finite, and the first sampled values all NaN
    rng = np.random.default_rng(8)
    c = H._CHUNK
    values = (rng.standard_normal(c * 5 + 3) * 2 + 0.5).astype(dtype)
    values[:: values.size // H._SAMPLE] = np.nan  # every value the shift samples
    values[c + 17] = np.inf
    values[c + 99] = -np.inf
    values[2 * c : 3 * c] = np.nan
    values[4 * c + 5 : 4 * c + 9] = -np.inf
    values[-1] = np.inf
    before = values.copy()
    h = _check_against_numpy(values, 64)
    np.testing.assert_array_equal(values, before)  # only read
    finite = values[np.isfinite(values)].astype(np.float64)
    assert (h["nan"], h["inf"], h["ninf"]) == (
        int(np.isnan(values).sum()),
        int((values == np.inf).sum()),
        int((values == -np.inf).sum()),
    )
    assert (h["min"], h["max"], h["zeros"]) == (finite.min(), finite.max(), 0)
    assert h["mean"] == pytest.approx(finite.mean(), rel=1e-6)
    assert h["std"] == pytest.approx(finite.std(), rel=1e-6)
    assert h["norm"] == pytest.approx(np.linalg.norm(finite), rel=1e-6)


def test_sums_past_float32_fall_back_to_scaled_double():
    # squares of 1e30 overflow float32 (and of 1e300, float64): still exact statistics
    for dtype, big in ((np.float32, 1e30), (np.float64, 1e300)):
        values = np.array([big, -big, big, 0.0, np.nan] * 20_000, dtype=dtype)
        h = _check_against_numpy(values, 16)
        finite = values[np.isfinite(values)].astype(np.float64) / big
        assert h["mean"] / big == pytest.approx(finite.mean(), rel=1e-9)
        assert h["std"] / big == pytest.approx(finite.std(), rel=1e-9)
        assert h["norm"] / big == pytest.approx(np.linalg.norm(finite), rel=1e-9)
        assert (h["nan"], h["zeros"]) == (20_000, 20_000)


def test_statistics_match_numpy_in_double_precision():
    rng = np.random.default_rng(6)
    # a large mean with a small spread: a naive E[x^2] - mean^2 would lose the std entirely
    values = (1000.0 + 1e-3 * rng.standard_normal(200_000)).astype(np.float32)
    h = decode_value(H.histogram_value(values))
    ref = values.astype(np.float64)
    assert h["min"] == ref.min() and h["max"] == ref.max()
    assert h["mean"] == pytest.approx(ref.mean(), rel=1e-9)
    assert h["std"] == pytest.approx(ref.std(), rel=1e-4)
    assert h["norm"] == pytest.approx(np.linalg.norm(ref), rel=1e-7)
    assert h["count"] == 200_000


def test_non_finite_values_are_counted_never_dropped():
    values = np.array([np.nan, np.nan, np.inf, -np.inf, -np.inf, 0.0, -0.0, 1.0, 3.0], np.float32)
    h = decode_value(H.histogram_value(values, 4))
    assert (h["count"], h["nan"], h["inf"], h["ninf"], h["zeros"]) == (9, 2, 1, 2, 2)
    assert sum(h["counts"]) == 4  # the finite ones
    assert (h["min"], h["max"]) == (0.0, 3.0)
    assert h["mean"] == pytest.approx(1.0)
    assert h["norm"] == pytest.approx(math.sqrt(10.0))


def test_all_non_finite_and_empty_arrays_are_recorded_as_empty():
    h = decode_value(H.histogram_value(np.array([np.nan, np.inf]), 8))
    assert (h["counts"], h["bins"], h["count"], h["nan"], h["inf"]) == ([], [0.0], 2, 1, 1)
    assert math.isnan(h["mean"]) and h["norm"] == 0.0
    h = decode_value(H.histogram_value(np.zeros((3, 0), np.float32), 8))
    assert (h["counts"], h["bins"], h["count"]) == ([], [0.0], 0)


def test_a_single_repeated_value_uses_numpys_unit_range():
    values = np.full(10, 2.5, np.float32)
    h = _check_against_numpy(values, 5)
    counts, edges = np.histogram(values, bins=5)
    assert h["bins"] == pytest.approx(edges.tolist())
    assert h["counts"] == counts.tolist()
    assert h["std"] == 0.0


def test_explicit_range_is_numpys_linspace_and_stats_cover_everything():
    values = np.arange(20, dtype=np.float64)
    h = decode_value(H.histogram_value(values, 4, range=(0.0, 8.0)))
    counts, edges = np.histogram(values, bins=4, range=(0.0, 8.0))
    assert h["bins"] == edges.tolist() and h["counts"] == counts.tolist()
    assert (h["min"], h["max"], h["count"]) == (0.0, 19.0, 20)


def test_implicit_zeros_of_a_sparse_tensor_are_values():
    stored = np.array([3.0, 4.0, -5.0], np.float32)
    h = decode_value(H.histogram_value(stored, 4, extra_zeros=97))
    dense = np.zeros(100, np.float32)
    dense[:3] = stored
    expected, _ = np.histogram(dense, bins=np.array(h["bins"]))
    assert h["counts"] == expected.tolist()
    assert (h["count"], h["zeros"], h["min"], h["max"]) == (100, 97, -5.0, 4.0)
    assert h["mean"] == pytest.approx(dense.mean())
    assert h["std"] == pytest.approx(dense.astype(np.float64).std())


def test_bisection_finds_the_same_edges_as_the_walk():
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        values = (rng.standard_normal(1000) * 3 + 0.5).astype(dtype)
        lo, hi = dtype(values.min()), dtype(values.max())
        scale = dtype(64) / (hi - lo)
        walked = H._step_edges(lo, hi, scale, 64)
        bisected = H._bisect_edges(lo, hi, scale, np.arange(1, 64, dtype=dtype))
        assert walked[1:-1].tolist() == bisected.astype(np.float64).tolist()


def test_edges_near_zero_need_bisection_and_still_match():
    # a range straddling zero: edges near 0 are many ulps away from lo + i / scale
    values = np.linspace(-1e5, 2e5, 1001).astype(np.float32)
    values[500] = 1e-30
    _check_against_numpy(values, 512)


@pytest.mark.parametrize("bins", [0, 513, 2.5, True, "64"])
def test_bad_bin_counts_are_rejected(bins):
    with pytest.raises(ValueError, match="bins"):
        H.check_bins(bins)


@pytest.mark.parametrize("dtype", [np.complex64, object, "U3", "datetime64[s]"])
def test_unsupported_dtypes_raise_type_error(dtype):
    with pytest.raises(TypeError, match="cannot log"):
        H.as_float_values(np.zeros(3, dtype=dtype))
