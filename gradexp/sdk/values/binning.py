"""The stream-side histogram and statistics of a numpy array (the ``histogram`` value).

This runs on the stream thread, never on the caller's: ``log()`` only copies the array
(see ``gradexp.sdk.values.histogram``). It is written to beat ``np.histogram(bins=64)`` by
a wide margin while giving *exactly* the counts ``np.histogram(values, bins=edges)`` gives
for the edges it reports:

- one pass for the statistics, chunk by chunk while each chunk is in cache: min and max
  (which also reveal NaN and +-inf: only chunks that hold some pay for finding them), the
  deviations from a shift near the mean (sum and sum of squares, so no cancellation), and
  the zeros;
- each value is mapped to ``trunc((x - lo) * scale)`` with the subtraction and the product
  rounded in the working dtype (float32 for float32 data). That map is monotonic, so it cuts
  the data into contiguous bins; the reported edges are the exact points where it steps
  (found by a short ``nextafter`` walk from the ideal ``lo + i * width``), not the ideal
  ones, so no per-value correction pass is needed, and the last edge is inclusive like
  numpy's;
- the bin indices fit in a byte (bins <= 255), so pairs of them are counted at once as one
  ``uint16`` per pair: a ``bincount`` of half as many items into 65,536 slots, folded back.

Everything is processed in cache-sized chunks so the temporaries stay small whatever the
array's size, and the array itself is only read (the caller's copy needs no second one).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from gradexp.protocol.values import encode_float
from gradexp.protocol.wire import MAX_HISTOGRAM_BINS

__all__ = [
    "DEFAULT_BINS",
    "EMPTY_EDGES",
    "as_float_values",
    "check_bins",
    "histogram_value",
    "statistics",
]

DEFAULT_BINS = 64
# An array with no finite value has no bins: zero counts and, as the protocol wants n + 1
# edges for n counts, one edge.
EMPTY_EDGES: list[float] = [0.0]
_CHUNK = 1 << 16  # elements per chunk: a 256 KiB float32 scratch stays in L2
_WALK_STEPS = 4  # nextafter steps tried before an edge is bisected instead (rare)


# Scratch arrays are kept per thread (in practice: the stream thread) and reused from call
# to call, so binning the same shapes every step touches warm pages instead of freshly
# mapped ones. Arrays above _KEEP_BYTES are not kept: a one-off huge array should not pin
# its scratch memory forever.
_KEEP_BYTES = 16 << 20
_local = threading.local()


def _workspace(name: str, size: int, dtype: Any) -> np.ndarray:
    """A per-thread scratch array of ``size`` elements (contents undefined)."""
    dtype = np.dtype(dtype)
    cache: dict[tuple[str, np.dtype], np.ndarray] | None = getattr(_local, "arrays", None)
    if cache is None:
        cache = _local.arrays = {}
    array = cache.get((name, dtype))
    if array is None or array.size < size:
        array = np.empty(size, dtype=dtype)
        if array.nbytes <= _KEEP_BYTES:
            cache[(name, dtype)] = array
    return array[:size]


def _ones(size: int, dtype: Any) -> np.ndarray:
    """``size`` ones (at most a chunk's worth), filled once per thread and dtype."""
    dtype = np.dtype(dtype)
    cache: dict[np.dtype, np.ndarray] | None = getattr(_local, "ones", None)
    if cache is None:
        cache = _local.ones = {}
    ones = cache.get(dtype)
    if ones is None or ones.size < size:
        ones = cache[dtype] = np.ones(max(size, _CHUNK), dtype=dtype)
    return ones[:size]


def check_bins(bins: object) -> int:
    """Validate a bin count (an int in 1..512) and return it; ValueError otherwise."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)):
        raise ValueError(f"bins must be an int between 1 and {MAX_HISTOGRAM_BINS}, got {bins!r}")
    if not 1 <= int(bins) <= MAX_HISTOGRAM_BINS:
        raise ValueError(f"bins must be between 1 and {MAX_HISTOGRAM_BINS}, got {bins}")
    return int(bins)


def as_float_values(values: np.ndarray) -> np.ndarray:
    """A flat float view or copy of ``values`` that the kernel can work on.

    float32 stays float32 (the fast path); small ints, bool and float16 widen exactly to
    float32; wider ints and float64 (and longdouble) go to float64. Raises TypeError for
    dtypes that have no meaningful histogram (complex, object, strings, dates).
    """
    dtype = values.dtype
    flat = values.reshape(-1)
    if dtype == np.float32:
        return flat
    if dtype == np.float64:
        return flat
    if dtype.kind == "b":
        return flat.view(np.uint8).astype(np.float32)
    if dtype.kind in "iu":
        return flat.astype(np.float32 if dtype.itemsize <= 2 else np.float64)
    if dtype.kind == "f":
        return flat.astype(np.float32 if dtype.itemsize <= 4 else np.float64)
    raise TypeError(unsupported_dtype_message(str(dtype)))


def unsupported_dtype_message(dtype: str) -> str:
    """The one-line error for an array whose dtype gradexp does not chart."""
    if "complex" in dtype:
        return (
            f"cannot log a {dtype} array: complex values are not supported; "
            "log its .real and .imag (or abs()) instead"
        )
    return (
        f"cannot log an array of dtype {dtype}: only bool, integer and floating-point "
        "arrays (and torch bfloat16) become histograms"
    )


class _Reduction:
    """Everything one pass over the values yields: the statistics, and what the histogram
    needs (the values, their finite range, and which chunks hold non-finite values).

    The pass works through the array in cache-sized chunks and does all its work on a chunk
    while the chunk is in cache: min and max (which also detect NaN and +-inf: both are
    finite only if every value is), then the deviations from a shift ``m`` near the mean
    (their sum and sum of squares give the mean and the spread without cancellation), and
    the zeros.

    A chunk that holds non-finite values (rare) has them found and counted; their deviations are set to 0, as if they were ``m`` (which lies inside the
    finite range), and the chunk's min and max are taken over its finite values. Their
    positions are kept (``bad_chunks``) so the binning pass leaves them out too. The
    caller's array is never written to.

    The implicit zeros of sparse tensors are added afterwards as "plus ``extra_zeros``
    occurrences of 0".
    """

    __slots__ = (
        "bad_chunks",
        "count",
        "extra_zeros",
        "hi",
        "inf",
        "lo",
        "mean",
        "n_finite",
        "nan",
        "ninf",
        "norm",
        "std",
        "values",
        "zeros",
    )

    def __init__(self, values: np.ndarray, extra_zeros: int) -> None:
        x = as_float_values(values)
        self.values = x
        self.extra_zeros = extra_zeros
        self.count = int(x.size) + extra_zeros
        # (chunk start, offsets of its non-finite values), for the chunks that have any
        self.bad_chunks: list[tuple[int, np.ndarray]] = []
        nan = inf = ninf = zeros = 0
        total = squares = 0.0
        lo, hi = math.inf, -math.inf
        m = x.dtype.type(_shift(x))
        if x.size:
            size = min(x.size, _CHUNK)
            scratch = _workspace("deviations", size, x.dtype)
            ones = _ones(size, x.dtype)
            hits = _workspace("hits", size, np.bool_)
            isfinite = math.isfinite
            minimum, maximum = np.minimum.reduce, np.maximum.reduce
            with np.errstate(over="ignore", invalid="ignore"):
                for start in range(0, x.size, _CHUNK):
                    chunk = x[start : start + _CHUNK]
                    n = chunk.size
                    cmin, cmax = float(minimum(chunk)), float(maximum(chunk))
                    d = scratch[:n]
                    np.subtract(chunk, m, out=d)
                    if not (isfinite(cmin) and isfinite(cmax)):  # only such chunks pay
                        where = np.flatnonzero(~np.isfinite(chunk))
                        bad = chunk[where]
                        k_nan = int(np.count_nonzero(np.isnan(bad)))
                        k_inf = int(np.count_nonzero(bad == np.inf))
                        nan += k_nan
                        inf += k_inf
                        ninf += where.size - k_nan - k_inf
                        self.bad_chunks.append((start, where))
                        if where.size == n:
                            continue
                        # as if they were ``m``: a deviation of exactly 0, inside the range
                        d[where] = 0
                        cmin, cmax = float(np.fmin.reduce(chunk)), float(np.fmax.reduce(chunk))
                        if not (isfinite(cmin) and isfinite(cmax)):  # infinities: patch
                            patched = _workspace("patched", size, x.dtype)[:n]
                            np.copyto(patched, chunk)
                            patched[where] = m
                            cmin, cmax = float(minimum(patched)), float(maximum(patched))
                    lo, hi = min(lo, cmin), max(hi, cmax)
                    # float32 dot products over one chunk, accumulated in Python floats
                    # (doubles): float32 speed, double-precision totals
                    total += float(np.dot(d, ones[:n]))
                    squares += float(np.dot(d, d))
                    if cmin <= 0.0 <= cmax:
                        h = hits[:n]
                        np.equal(chunk, 0, out=h)  # NaN and inf are not zeros: no fix-up
                        zeros += int(np.count_nonzero(h))
        self.nan, self.inf, self.ninf = nan, inf, ninf
        self.n_finite = n_finite = self.count - nan - inf - ninf
        if extra_zeros:  # sparse tensors: implicit zeros are values like any other
            lo, hi = min(lo, 0.0), max(hi, 0.0)
            dz = -float(m)
            total += extra_zeros * dz
            squares += extra_zeros * dz * dz
            zeros += extra_zeros
        self.zeros = zeros
        self.mean, self.std, self.norm = math.nan, math.nan, 0.0
        if n_finite == 0:
            self.lo = self.hi = math.nan
            return
        self.lo, self.hi = lo, hi
        shift = total / n_finite
        squares -= n_finite * shift * shift  # deviations from the shift -> from the mean
        if math.isfinite(shift) and math.isfinite(squares):
            self.mean = float(m) + shift
            self.std = math.sqrt(max(squares, 0.0) / n_finite)
            self.norm = math.hypot(
                self.std * math.sqrt(n_finite), math.sqrt(n_finite) * abs(self.mean)
            )
        else:  # sums past the working dtype's range: values near its limits (rare)
            self.mean, self.std, self.norm = _scaled_moments(self.finite_values(), extra_zeros)

    def finite_values(self) -> np.ndarray:
        """The stored finite values (a filtered copy only if some chunk needs it)."""
        x = self.values
        return x[np.isfinite(x)] if self.bad_chunks else x

    def stats(self) -> dict[str, Any]:
        return {
            "min": encode_float(self.lo),
            "max": encode_float(self.hi),
            "mean": encode_float(self.mean),
            "std": encode_float(self.std),
            "norm": encode_float(self.norm),
            "count": self.count,
            "nan": self.nan,
            "inf": self.inf,
            "ninf": self.ninf,
            "zeros": self.zeros,
        }


_SAMPLE = 1024  # values in the sample whose mean is the deviations' shift


def _shift(x: np.ndarray) -> float:
    """A finite value of ``x``'s finite range, near their mean; 0 if there is none.

    The mean of about ``_SAMPLE`` evenly spaced finite values (their middle value if that
    mean overflows), clamped to their range. The statistics are sums of deviations from
    this shift: any shift gives the exact mean, and one within a few standard deviations
    of it keeps the sum of squares free of cancellation. A sample's mean is that close
    unless a few huge outliers dominate the data, and even then it costs well under one
    digit of the double-precision totals. For float32 data it is representable in float32.
    """
    if not x.size:
        return 0.0
    sample = x[:: max(1, x.size // _SAMPLE)].astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if not sample.size:  # a sample of NaN/inf only (rare): take the first finite value
        first = int(np.argmax(np.isfinite(x)))
        return float(x[first]) if math.isfinite(x[first]) else 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(np.add.reduce(sample)) / sample.size
    if not math.isfinite(mean):  # a middle value: no arithmetic, so no overflow
        middle = sample.size // 2
        mean = float(np.partition(sample, middle)[middle])
    return min(max(mean, float(sample.min())), float(sample.max()))


_SCALE = 2.0**-600  # exact: brings float64 values near 1e308 far from overflow when squared


def _scaled_moments(finite: np.ndarray, extra_zeros: int) -> tuple[float, float, float]:
    """Mean, std and L2 norm for values so large their sums overflow (rare: |x| ~ 1e308,
    or float32 data beyond 1e19 whose squares overflow float32).

    Computed in float64 on ``x * 2**-600`` (exact), the implicit zeros added, then scaled
    back once: a norm past the float64 range is inf, which is what it is.
    """
    n = finite.size + extra_zeros
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        y = finite.astype(np.float64) * _SCALE
        mean = float(np.add.reduce(y)) / n
        d = y - mean
        squares = float(np.dot(d, d)) + extra_zeros * mean * mean
    big = 1.0 / _SCALE
    std = math.sqrt(squares / n) * big
    norm = math.hypot(math.sqrt(squares), math.sqrt(n) * abs(mean)) * big
    return mean * big, std, norm


def statistics(values: np.ndarray, *, extra_zeros: int = 0) -> dict[str, Any]:
    """The statistics fields (``HISTOGRAM_STATS``) of ``values``, JSON-ready.

    ``count`` is every element (``extra_zeros`` included: a sparse tensor's implicit zeros);
    ``nan``, ``inf`` and ``ninf`` count the non-finite ones; ``min``, ``max``, ``mean``,
    ``std`` (population, like ``np.std``), ``norm`` (L2) and ``zeros`` cover the finite ones.
    """
    return _Reduction(values, extra_zeros).stats()


def histogram_value(
    values: np.ndarray,
    bins: int = DEFAULT_BINS,
    *,
    range: tuple[float, float] | None = None,
    extra_zeros: int = 0,
) -> dict[str, Any]:
    """The protocol's ``histogram`` value of ``values``: edges, counts and statistics.

    With ``range`` the edges are ``np.linspace(lo, hi, bins + 1)`` and values outside it are
    left out of the counts (as ``np.histogram`` does); the statistics still cover every
    value. Without it the edges span the finite values (see the module docstring).
    ``values`` is only read, never written.
    """
    red = _Reduction(values, extra_zeros)
    stats = red.stats()
    if red.n_finite == 0:
        return {"_type": "histogram", "bins": EMPTY_EDGES[:], "counts": [], **stats}
    if range is not None:
        counts, edges = np.histogram(red.finite_values(), bins=bins, range=range)
    else:
        counts, edges = _auto_histogram(red, bins)
    if extra_zeros:
        _add_at_value(counts, edges, 0.0, extra_zeros, inside_only=range is not None)
    return {
        "_type": "histogram",
        "bins": edges.tolist(),
        "counts": counts.tolist(),
        **stats,
    }


def _add_at_value(
    counts: np.ndarray, edges: np.ndarray, value: float, n: int, *, inside_only: bool
) -> None:
    """Add ``n`` occurrences of ``value`` to the bin ``np.histogram`` would put it in."""
    if inside_only and not edges[0] <= value <= edges[-1]:
        return
    index = int(np.searchsorted(edges, value, side="right")) - 1
    counts[min(max(index, 0), len(counts) - 1)] += n


def _auto_histogram(red: _Reduction, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts (of the stored finite values) and edges over ``[red.lo, red.hi]``, the finite
    range (widened to 0 for a sparse tensor's implicit zeros)."""
    x, lo, hi = red.values, red.lo, red.hi
    if lo == hi:
        # numpy's rule for a single value: the range becomes [v - 0.5, v + 0.5]
        edges = np.linspace(lo - 0.5, hi + 0.5, bins + 1)
        counts = np.zeros(bins, dtype=np.int64)
        stored = red.n_finite - red.extra_zeros
        if stored:  # every finite value is ``lo``: wherever numpy puts one, it puts all
            counts += np.histogram(np.array([lo]), bins=edges)[0] * stored
        return counts, edges
    wdt = x.dtype.type
    lo_w, hi_w = wdt(lo), wdt(hi)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        span = hi_w - lo_w
        scale = wdt(bins) / span if span > 0 else wdt(math.inf)
    # The map below needs a finite, normal span and scale in the working dtype. float32
    # data that spans more than float32 can express moves to float64; past that (a span
    # over 1.8e308, or a subnormal one) a plain binary search does it: exact, just slower.
    if not (np.isfinite(span) and np.isfinite(scale) and scale > 0 and _is_normal(span)):
        if wdt is np.float32:
            finite = red.finite_values().astype(np.float64)
            wide = _Reduction.__new__(_Reduction)
            wide.values, wide.bad_chunks = finite, []
            wide.lo, wide.hi, wide.n_finite, wide.extra_zeros = (
                lo,
                hi,
                red.n_finite,
                red.extra_zeros,
            )
            return _auto_histogram(wide, bins)
        return _searched_histogram(red.finite_values(), bins, lo, hi)
    edges = _step_edges(lo_w, hi_w, scale, bins)
    return _count_bins(x, lo_w, scale, bins, red.bad_chunks), edges


def _searched_histogram(
    x: np.ndarray, bins: int, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-width-ish edges computed without overflow, and np.histogram's own rule
    (``searchsorted(edges, x, "right") - 1``, the last edge inclusive) to count."""
    t = np.arange(bins + 1, dtype=np.float64) / bins
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        edges = lo * (1.0 - t) + hi * t  # never past max(|lo|, |hi|): no overflow
    edges = np.clip(np.maximum.accumulate(edges), lo, hi)
    edges[0], edges[-1] = lo, hi
    index = np.searchsorted(edges, x, side="right") - 1
    counts = np.bincount(np.clip(index, 0, bins - 1), minlength=bins).astype(np.int64)
    return counts, edges


def _is_normal(v: np.floating) -> bool:
    return bool(abs(v) >= np.finfo(type(v)).tiny)


def _bin_position(c: np.ndarray, lo: np.floating, scale: np.floating) -> np.ndarray:
    """``(c - lo) * scale`` rounded step by step exactly as ``_count_bins`` does it."""
    t = np.subtract(c, lo)
    np.multiply(t, scale, out=t)
    return t


def _step_edges(lo: np.floating, hi: np.floating, scale: np.floating, bins: int) -> np.ndarray:
    """The exact edges of the map ``min(trunc((x - lo) * scale), bins - 1)``.

    Edge ``i`` (0 < i < bins) is the smallest value ``c`` of the working dtype that maps to a
    bin ``>= i``. The map is monotonic, so values in ``[edge[i], edge[i+1])`` are exactly
    the ones it puts in bin ``i`` (and the last bin holds ``hi`` itself).

    Found in two steps, each monotonic: ``D``, the smallest float with ``D * scale`` rounding
    to ``>= i`` (a step or two from ``i / scale``); then the smallest ``c`` with ``c - lo``
    rounding to ``>= D``, i.e. ``c >= lo + (prev(D) + D) / 2``, summed in extended precision.
    Each edge is then checked against the map itself; the rare one that does not check out
    is walked a step or two, or bisected over the ordered floats.
    """
    wdt = type(lo)
    target = np.arange(1, bins, dtype=wdt)
    up, down = wdt(np.inf), wdt(-np.inf)
    d = target / scale
    for _ in range(_WALK_STEPS):
        low = d * scale < target
        if not low.any():
            break
        d[low] = np.nextafter(d[low], up)
    for _ in range(_WALK_STEPS):
        below = np.nextafter(d, down)
        still = below * scale >= target
        if not still.any():
            break
        d[still] = below[still]
    ext = np.longdouble
    exact = ext(lo) + np.nextafter(d, down).astype(ext) / 2 + d.astype(ext) / 2
    c = exact.astype(wdt)
    c = np.where(c < exact, np.nextafter(c, up), c)
    c = np.clip(c, lo, hi)
    for _ in range(_WALK_STEPS):  # up until c maps to a bin >= i
        low = _bin_position(c, lo, scale) < target
        if not low.any():
            break
        c[low] = np.nextafter(c[low], up)
    for _ in range(_WALK_STEPS):  # down while the float just below also maps to >= i
        below = np.nextafter(c, down)
        still = (_bin_position(below, lo, scale) >= target) & (below >= lo)
        if not still.any():
            break
        c[still] = below[still]
    below = np.nextafter(c, down)
    settled = (_bin_position(c, lo, scale) >= target) & (
        (_bin_position(below, lo, scale) < target) | (below < lo)
    )
    if not settled.all():
        todo = ~settled
        c[todo] = _bisect_edges(lo, hi, scale, target[todo])
    edges = np.empty(bins + 1, dtype=np.float64)
    edges[0], edges[1:-1], edges[-1] = float(lo), c, float(hi)
    return edges


def _bisect_edges(
    lo: np.floating, hi: np.floating, scale: np.floating, target: np.ndarray
) -> np.ndarray:
    """For each ``target`` bin, the smallest float in ``[lo, hi]`` whose position reaches it.

    Bisection over the floats' order-preserving integer keys (``_float_key``), so each step
    halves the number of floats left, not the value range: at most 32 steps for float32 and
    64 for float64, all edges at once.
    """
    wdt = type(lo)
    # invariant: position(key lo_k) < target <= position(key hi_k)
    lo_k = np.full(target.shape, _float_key(np.array([lo]))[0], dtype=np.int64)
    hi_k = np.full(target.shape, _float_key(np.array([hi]))[0], dtype=np.int64)
    for _ in range(8 * np.dtype(wdt).itemsize + 2):
        open_ = hi_k - 1 > lo_k  # (not hi_k - lo_k: that can overflow int64)
        if not open_.any():
            break
        mid = (lo_k >> 1) + (hi_k >> 1) + (lo_k & hi_k & 1)  # no overflow near +-2**63
        reached = _bin_position(_key_float(mid, wdt), lo, scale) >= target
        hi_k = np.where(open_ & reached, mid, hi_k)
        lo_k = np.where(open_ & ~reached, mid, lo_k)
    return _key_float(hi_k, wdt)


def _float_key(values: np.ndarray) -> np.ndarray:
    """int64 keys ordered like the floats ``values`` (float32 or float64); -0.0 < +0.0."""
    bits = values.view(np.int32 if values.dtype == np.float32 else np.int64).astype(np.int64)
    magnitude = bits & (0x7FFFFFFF if values.dtype == np.float32 else 0x7FFFFFFFFFFFFFFF)
    return np.where(bits >= 0, bits, -magnitude - 1)


def _key_float(keys: np.ndarray, wdt: type) -> np.ndarray:
    """The inverse of ``_float_key``."""
    if wdt is np.float32:
        sign, unsigned, width = np.uint64(1 << 31), np.uint32, 32
    else:
        sign, unsigned, width = np.uint64(1 << 63), np.uint64, 64
    negative = keys < 0
    magnitude = np.where(negative, -(keys + 1), keys).astype(np.uint64)
    bits = np.where(negative, magnitude | sign, magnitude)
    out: np.ndarray = bits.astype(unsigned).view(np.float32 if width == 32 else np.float64)
    return out


def _count_bins(
    x: np.ndarray,
    lo: np.floating,
    scale: np.floating,
    bins: int,
    bad_chunks: list[tuple[int, np.ndarray]],
) -> np.ndarray:
    """Per-bin counts of ``min(trunc((x - lo) * scale), bins - 1)`` over the finite ``x``.

    ``bad_chunks``: where the non-finite values are (from the reduction). Their indices
    (whatever the cast made of NaN) are overwritten with a slot that is not a bin.
    """
    # Indices run 0..bins (``bins`` itself only for x == hi); below 255 they fit in a byte
    # and leave 255 free: the slot for padding and for non-finite values.
    small = bins < 255
    unused = 255 if small else bins + 1
    index = _workspace("index", x.size + 1, np.uint8 if small else np.intp)
    scratch = _workspace("positions", min(x.size, _CHUNK), x.dtype)
    with np.errstate(invalid="ignore"):
        for start in range(0, x.size, _CHUNK):
            chunk = x[start : start + _CHUNK]
            t = scratch[: chunk.size]
            np.subtract(chunk, lo, out=t)
            # the product is >= 0 and <= bins (+ rounding), so the cast truncates exactly
            np.multiply(t, scale, out=index[start : start + chunk.size], casting="unsafe")
    for start, where in bad_chunks:
        index[start + where] = unused
    size = x.size
    if small:
        if size & 1:
            index[size] = unused  # pad to an even length
            size += 1
        # count two indices at a time: each uint16 is (low byte, high byte) of a pair
        pairs = np.bincount(index[:size].view(np.uint16), minlength=1 << 16)
        pairs = pairs.reshape(256, 256)
        counts = pairs.sum(axis=0) + pairs.sum(axis=1)
    else:
        counts = np.bincount(index[:size], minlength=bins + 2)
    out = counts[:bins].astype(np.int64)
    out[bins - 1] += counts[bins]  # x == hi lands on index ``bins``: numpy's inclusive edge
    return out
