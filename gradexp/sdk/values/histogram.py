"""``gradexp.Histogram``, and the histogram of any array or tensor.

Who pays what: for numpy arrays and CPU tensors the caller pays one copy, and the
histogram and statistics are computed from that copy on the stream thread
(``gradexp.sdk.values.binning``); CUDA tensors are reduced where they live
(``gradexp.sdk.values.device``); other accelerators (MPS, XPU, ...) are copied to the
host and take the numpy path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gradexp.protocol.values import decode_value
from gradexp.protocol.wire import HISTOGRAM_STATS
from gradexp.sdk.values.base import CapturingValue, HostArray, Memo, as_numpy, torch_of
from gradexp.sdk.values.binning import DEFAULT_BINS, check_bins, histogram_value
from gradexp.sdk.values.device import DeviceHistogram, reduce_on_device, use_device_path

if TYPE_CHECKING:
    from gradexp.protocol.captured import BlobSink

__all__ = ["Histogram", "HostHistogram", "PrecomputedHistogram", "capture_histogram"]


class HostHistogram:
    """A histogram to be computed on the stream thread from a host copy."""

    __slots__ = ("_bins", "_host", "_memo", "_range", "nbytes")

    def __init__(self, host: HostArray, bins: int, range: tuple[float, float] | None) -> None:
        self._host = host
        self._bins = bins
        self._range = range
        self._memo = Memo()
        self.nbytes = host.nbytes

    def _compute(self) -> dict[str, Any]:
        host = self._host
        value = histogram_value(
            host.get(), self._bins, range=self._range, extra_zeros=host.extra_zeros
        )
        host.release()
        return value

    def encode(self, sink: BlobSink | None = None) -> dict[str, Any]:
        return self._memo.get(self._compute)


class PrecomputedHistogram:
    """``Histogram(np_histogram=(counts, edges))``: nothing left to compute."""

    __slots__ = ("_value", "nbytes")

    def __init__(self, counts: Any, edges: Any) -> None:
        c = np.asarray(counts)
        e = np.asarray(edges, dtype=np.float64)
        if c.ndim != 1 or e.ndim != 1 or e.size != c.size + 1:
            raise ValueError(
                "np_histogram must be (counts, edges) with len(edges) == len(counts) + 1, "
                f"got {c.shape} counts and {e.shape} edges"
            )
        check_bins(max(c.size, 1))
        if c.dtype.kind not in "biuf":
            raise TypeError(f"np_histogram counts must be numbers, not {c.dtype}")
        if not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0):
            raise ValueError("np_histogram edges must be finite and non-decreasing")
        if c.dtype.kind == "f" and (not np.all(np.isfinite(c)) or np.any(c < 0)):
            raise ValueError("np_histogram counts must be finite and >= 0")
        if c.dtype.kind in "iu" and np.any(c < 0):
            raise ValueError("np_histogram counts must be >= 0")
        counts_list = (
            c.astype(np.int64) if c.dtype.kind in "biu" else c.astype(np.float64)
        ).tolist()
        # Only what the counts say for sure: their total. min/max/mean/... are unknown,
        # so they are left out rather than guessed from bin centres.
        self._value = {
            "_type": "histogram",
            "bins": e.tolist(),
            "counts": counts_list,
            "count": int(c.sum()) if c.dtype.kind in "biu" else float(c.sum()),
        }
        self.nbytes = 16 * (c.size + e.size)

    def encode(self, sink: BlobSink | None = None) -> dict[str, Any]:
        return self._value


def capture_histogram(
    value: Any,
    bins: int = DEFAULT_BINS,
    range: tuple[float, float] | None = None,
    *,
    on_device: bool | None = None,
) -> HostHistogram | DeviceHistogram:
    """Take the histogram of an array or tensor: a copy, or a reduction on its device.

    ``on_device`` forces (True) or forbids (False) the device reduction; by default CUDA
    tensors use it and everything else is copied. Raises TypeError for what is not an
    array of numbers.
    """
    bins = check_bins(bins)
    range = _check_range(range)
    torch = torch_of(value)
    if torch is not None:
        device_path = use_device_path(value) if on_device is None else on_device
        try:
            if device_path:
                return reduce_on_device(torch, value, bins, range)
            return HostHistogram(HostArray.of_torch(torch, value), bins, range)
        except RuntimeError as exc:
            # e.g. out of device memory: drop this value (log() warns), never the loop
            raise ValueError(
                f"could not take the histogram of a {value.device} tensor: {exc}"
            ) from None
    return HostHistogram(HostArray.of_numpy(as_numpy(value)), bins, range)


def _check_range(range: Any) -> tuple[float, float] | None:
    if range is None:
        return None
    try:
        lo, hi = (float(v) for v in range)
    except (TypeError, ValueError):
        raise ValueError(f"range must be (min, max), got {range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"range must be finite with min < max, got {range!r}")
    return lo, hi


class Histogram(CapturingValue["HostHistogram | DeviceHistogram | PrecomputedHistogram"]):
    """A histogram value: ``gradexp.log({"weights": gradexp.Histogram(w)})``.

    From an array or tensor (``values``), binned into ``bins`` equal-width bins (at most
    512) over ``range`` (default: the finite values' min to max), with the statistics min,
    max, mean, std, L2 norm, count and the counts of NaN, +Inf, -Inf and zeros; or from
    precomputed ``np_histogram=(counts, edges)``, e.g. the result of ``np.histogram``.

    The values are copied (or, for a CUDA tensor, reduced on the device) when the
    Histogram is made; the binning itself happens later, off the training thread. A bad
    argument or value does not raise here: ``log()`` warns about it once and drops it.

    ``counts``, ``bins`` and ``stats`` compute the histogram on first access.
    """

    __slots__ = ()

    def __init__(
        self,
        values: Any = None,
        *,
        bins: int = DEFAULT_BINS,
        range: tuple[float, float] | None = None,
        np_histogram: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        def make() -> HostHistogram | DeviceHistogram | PrecomputedHistogram:
            if np_histogram is not None:
                if values is not None:
                    raise ValueError("give Histogram either values or np_histogram, not both")
                counts, edges = np_histogram
                return PrecomputedHistogram(counts, edges)
            if values is None:
                raise ValueError("Histogram needs values (an array or tensor) or np_histogram")
            return capture_histogram(values, bins, range)

        self._capture(make)

    def _value(self) -> dict[str, Any]:
        return self._gradexp_capture().encode(None)

    @property
    def counts(self) -> list[int | float]:
        """The count of each bin."""
        counts: list[int | float] = self._value()["counts"]
        return counts

    @property
    def bins(self) -> list[float]:
        """The bin edges: ``len(counts) + 1`` numbers, the last edge inclusive."""
        edges: list[float] = self._value()["bins"]
        return edges

    @property
    def stats(self) -> dict[str, float | int]:
        """The statistics (min, max, mean, std, norm, count, nan, inf, ninf, zeros)."""
        value = self._value()
        return {k: decode_value(v) for k, v in value.items() if k in HISTOGRAM_STATS}

    def _describe(self) -> str:
        return f" {type(self._captured).__name__}"
