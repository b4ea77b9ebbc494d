"""Histograms of tensors reduced on their own device (CUDA), never copied to the host.

The caller's thread queues a handful of kernels (min/max, sums, ``bucketize`` +
``histc``), never waits for them, and queues a non-blocking copy of the small result (a
few hundred numbers) into pinned host memory; the stream thread waits for that copy in
:meth:`DeviceHistogram.encode`. A 100M-element gradient never crosses to the host. The
same code runs on CPU tensors (tests force it there). torch is passed in, never imported.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from gradexp.protocol.values import encode_float
from gradexp.sdk.values.base import HostArray, Memo, check_torch_dtype, sparse_values
from gradexp.sdk.values.binning import DEFAULT_BINS, EMPTY_EDGES

if TYPE_CHECKING:
    from gradexp.protocol.captured import BlobSink

__all__ = ["DEVICE_CHUNK", "DeviceHistogram", "reduce_on_device"]

# Device reductions work through the tensor in chunks of this many elements, so their
# temporaries (float64 copies, bin indices) stay bounded whatever the tensor's size.
DEVICE_CHUNK = 1 << 23


class DeviceHistogram:
    """A histogram reduced on the tensor's device; the small result is copied back
    non-blocking, and ``encode`` (stream thread) waits for it and lays it out."""

    __slots__ = ("_bins", "_count", "_explicit", "_extra", "_memo", "_result", "nbytes")

    def __init__(
        self, result: HostArray, bins: int, count: int, extra: int, explicit: bool
    ) -> None:
        self._result = result
        self._bins = bins
        self._count = count
        self._extra = extra
        self._explicit = explicit
        self._memo = Memo()
        self.nbytes = result.nbytes

    def _compute(self) -> dict[str, Any]:
        packed = self._result.get().astype(np.float64)
        self._result.release()
        return _unpack_device_result(packed, self._bins, self._count, self._extra, self._explicit)

    def encode(self, sink: BlobSink | None = None) -> dict[str, Any]:
        return self._memo.get(self._compute)


# Layout of the packed result tensor (float64): these scalars, then counts, then edges.
_N_FINITE, _N_POSINF, _N_NEGINF, _N_ZEROS, _LO, _HI, _SUM, _SQDEV = range(8)
_HEAD = 8


def use_device_path(t: Any) -> bool:
    """Whether a tensor is reduced on its device by default (CUDA) rather than copied."""
    return bool(t.device.type == "cuda")


def reduce_on_device(
    torch: Any, t: Any, bins: int = DEFAULT_BINS, range: tuple[float, float] | None = None
) -> DeviceHistogram:
    """Queue the histogram and statistics of ``t`` on its own device; return at once.

    Two passes over ``t`` in chunks of ``DEVICE_CHUNK`` elements, in float64 (exact for
    every float and for ints below 2**53), none of which waits for the device:

    1. counts of finite, +inf, -inf and zero values; min and max of the finite ones; sum;
    2. with the mean and range from pass 1 (still on the device): the sum of squared
       deviations, then ``bucketize`` against the edges (the same comparisons as
       ``np.histogram``) and ``histc`` of ``bin + 0.5`` to count them. ``histc`` takes its
       range as host numbers, ``bincount`` would read its size back from the device: this
       pair needs neither. (Under ``torch.use_deterministic_algorithms`` CUDA's ``histc``
       is refused, so ``bincount`` is used, at the cost of one wait; on every device,
       so the path is tested on CPU too.)

    The results (8 numbers, ``bins`` counts, ``bins + 1`` edges) are packed into one small
    tensor and copied to pinned host memory without blocking.
    """
    with torch.no_grad():
        t = t.detach()
        check_torch_dtype(torch, t)
        count = int(t.numel())
        extra = 0
        if t.layout != torch.strided:
            t, extra = sparse_values(torch, t)
        if t.is_quantized:
            t = t.dequantize()
        x = t.reshape(-1)
        n = int(x.numel())
        dev = x.device
        f64 = torch.float64
        zero = torch.zeros((), dtype=f64, device=dev)
        n_fin = torch.zeros((), dtype=torch.int64, device=dev)
        n_pinf, n_ninf, n_zero = n_fin.clone(), n_fin.clone(), n_fin.clone()
        lo = torch.full((), math.inf, dtype=f64, device=dev)
        hi = torch.full((), -math.inf, dtype=f64, device=dev)
        total = zero.clone()
        for start in _chunks(n):
            c = x[start : start + DEVICE_CHUNK].to(f64)
            fin = torch.isfinite(c)
            n_fin += fin.sum()
            n_pinf += (c == math.inf).sum()
            n_ninf += (c == -math.inf).sum()
            n_zero += (c == 0).sum()
            lo = torch.minimum(lo, torch.where(fin, c, math.inf).amin())
            hi = torch.maximum(hi, torch.where(fin, c, -math.inf).amax())
            total += torch.where(fin, c, 0.0).sum()
        if extra:  # implicit zeros of a sparse tensor are values too
            lo = torch.minimum(lo, zero)
            hi = torch.maximum(hi, zero)
        mean = total / (n_fin + extra).clamp(min=1)
        edges = _device_edges(torch, lo, hi, bins, range)
        counts = torch.zeros(bins, dtype=f64, device=dev)
        sqdev = zero.clone()
        deterministic = torch.are_deterministic_algorithms_enabled()
        e_lo, e_hi = edges[0], edges[-1]
        for start in _chunks(n):
            c = x[start : start + DEVICE_CHUNK].to(f64)
            fin = torch.isfinite(c)
            d = torch.where(fin, c - mean, 0.0)
            sqdev += torch.dot(d, d)
            # bucketize(right=True) - 1 is np.searchsorted(edges, c, "right") - 1: the bin
            # np.histogram uses; the last edge is inclusive, so ``bins`` folds into bins-1.
            index = (torch.bucketize(c, edges, right=True) - 1).clamp_(max=bins - 1)
            valid = fin if range is None else fin & (c >= e_lo) & (c <= e_hi)
            if deterministic:
                index = torch.where(valid, index, bins)
                counts += torch.bincount(index, minlength=bins + 1)[:bins].to(f64)
            else:
                position = torch.where(valid, index.to(f64) + 0.5, -1.0)
                counts += torch.histc(position, bins=bins, min=0, max=bins)
        sqdev += extra * mean * mean
        head = torch.stack(
            [
                n_fin.to(f64),
                n_pinf.to(f64),
                n_ninf.to(f64),
                n_zero.to(f64),
                lo,
                hi,
                total,
                sqdev,
            ]
        )
        packed = torch.cat([head, counts, edges])
        result = (
            HostArray.of_torch(torch, packed) if dev.type != "cpu" else HostArray(packed.numpy())
        )
    return DeviceHistogram(result, bins, count, extra, range is not None)


def _chunks(n: int) -> range:
    return range(0, n, DEVICE_CHUNK)


def _device_edges(
    torch: Any, lo: Any, hi: Any, bins: int, range: tuple[float, float] | None
) -> Any:
    """``bins + 1`` edges from ``lo`` to ``hi`` (0-d device tensors), computed on the device.

    A single value v gets numpy's range ``[v - 0.5, v + 0.5]``. The last edge is set to
    ``hi`` exactly (``lo + (hi - lo)`` may round below it) and the others clamped inside,
    so the edges always cover every finite value and never decrease.
    """
    f64 = torch.float64
    if range is not None:
        lo = torch.full((), float(range[0]), dtype=f64, device=lo.device)
        hi = torch.full((), float(range[1]), dtype=f64, device=lo.device)
    else:
        single = hi <= lo
        lo, hi = torch.where(single, lo - 0.5, lo), torch.where(single, hi + 0.5, hi)
    steps = torch.arange(bins, dtype=f64, device=lo.device)
    inner = (lo + (hi - lo) * steps / bins).clamp(min=lo, max=hi)
    return torch.cat([inner, hi.reshape(1)])


def _unpack_device_result(
    packed: np.ndarray, bins: int, count: int, extra: int, explicit: bool
) -> dict[str, Any]:
    """The protocol's histogram value from a device reduction's packed result."""
    n_fin = int(packed[_N_FINITE])
    n_pinf, n_ninf = int(packed[_N_POSINF]), int(packed[_N_NEGINF])
    stored = count - extra  # the elements actually reduced
    nan = stored - n_fin - n_pinf - n_ninf
    finite = n_fin + extra
    mean = float(packed[_SUM]) / finite if finite else math.nan
    sqdev = float(packed[_SQDEV])
    stats: dict[str, Any] = {
        "min": encode_float(float(packed[_LO]) if finite else math.nan),
        "max": encode_float(float(packed[_HI]) if finite else math.nan),
        "mean": encode_float(mean),
        "std": encode_float(math.sqrt(sqdev / finite) if finite else math.nan),
        "norm": encode_float(math.sqrt(sqdev + finite * mean * mean) if finite else 0.0),
        "count": count,
        "nan": nan,
        "inf": n_pinf,
        "ninf": n_ninf,
        "zeros": int(packed[_N_ZEROS]) + extra,
    }
    counts = packed[_HEAD : _HEAD + bins].astype(np.int64)
    edges = packed[_HEAD + bins :]
    if not finite:
        return {"_type": "histogram", "bins": EMPTY_EDGES[:], "counts": [], **stats}
    if extra:
        inside = edges[0] <= 0.0 <= edges[-1]
        if inside or not explicit:
            index = int(np.searchsorted(edges, 0.0, side="right")) - 1
            counts[min(max(index, 0), bins - 1)] += extra
    if not np.all(np.isfinite(edges)):
        # a float64 range wider than float64 can express: one honest bin
        lo, hi = float(packed[_LO]), float(packed[_HI])
        return {"_type": "histogram", "bins": [lo, hi], "counts": [finite], **stats}
    return {"_type": "histogram", "bins": edges.tolist(), "counts": counts.tolist(), **stats}
