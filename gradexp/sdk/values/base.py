"""Arrays and tensors as values: ``Histogram``, ``Tensor``, and bare numpy/torch values.

The SDK (``gradexp.sdk.values.normalize``) hands every non-scalar value it does not know to
:func:`capture`, and turns objects with a ``_gradexp_capture()`` method (``Histogram``,
``Tensor``, ``Image``) into what that returns. Both yield a ``Captured``: taken on the
caller's thread, finished by ``encode(sink)`` on the stream thread.

Who pays what (the point of this module):

- **numpy arrays and CPU tensors**: the caller pays one copy (the caller may mutate the
  array as soon as ``log()`` returns); the histogram and statistics are computed from that
  copy on the stream thread (``gradexp.sdk.values.binning``).
- **CUDA tensors**: reduced where they live. The caller's thread queues a handful of
  kernels (min/max, sums, ``bucketize`` + ``histc``), never waits for them, and queues a
  non-blocking copy of the small result (a few hundred numbers) into pinned host memory;
  the stream thread waits for that copy in ``encode``. A 100M-element gradient never
  crosses to the host. The same code runs on CPU tensors (tests force it there).
- Other accelerators (MPS, XPU, ...) are copied to the host and take the numpy path.

Copies land in buffers recycled through :class:`BufferPool` (warm pages, no allocator
churn). Nothing here raises into a training loop for a bad value: ``TypeError`` /
``ValueError`` (device errors included) become the SDK's once-per-key warning.

torch is never imported here: a tensor is recognised with ``isinstance`` against the torch
module in ``sys.modules`` (if nothing imported torch, no tensor can exist).
"""

from __future__ import annotations

import gzip
import io
import math
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from gradexp.protocol.values import decode_value, encode_float
from gradexp.protocol.wire import HISTOGRAM_STATS
from gradexp.sdk.values.binning import (
    DEFAULT_BINS,
    EMPTY_EDGES,
    check_bins,
    histogram_value,
    statistics,
    unsupported_dtype_message,
)

if TYPE_CHECKING:
    from gradexp.sdk.values.normalize import BlobSink

__all__ = ["Histogram", "Tensor", "capture", "capture_histogram"]

# Device reductions work through the tensor in chunks of this many elements, so their
# temporaries (float64 copies, bin indices) stay bounded whatever the tensor's size.
DEVICE_CHUNK = 1 << 23
# gzip level for Tensor(compress=True): float data gains little past level 1, and the
# stream thread pays the time. mtime=0 keeps equal tensors byte-identical (one blob).
GZIP_LEVEL = 1


# --- what a value is ------------------------------------------------------------------------


def torch_of(value: Any) -> Any:
    """The torch module if ``value`` is a torch tensor, else None (never imports torch).

    If no code has imported torch, no tensor can exist; if one has, ``isinstance`` against
    the loaded module covers ``Parameter`` and every other subclass.
    """
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        return None
    return torch


def _is_pil_image(value: Any) -> bool:
    return type(value).__module__.startswith("PIL") and hasattr(value, "tobytes")


def _check_numeric_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise TypeError(unsupported_dtype_message(str(dtype)))


def _check_torch_dtype(torch: Any, t: Any) -> None:
    if t.is_complex():
        raise TypeError(unsupported_dtype_message(str(t.dtype).removeprefix("torch.")))
    if t.device.type == "meta":
        raise TypeError("cannot log a tensor on the meta device: it holds no data")


# --- host copies -------------------------------------------------------------------------------


class BufferPool:
    """Host buffers recycled between captured copies.

    A training loop logs the same shapes again and again; reusing the buffer a copy used
    last time (once the stream thread has reduced it) means the next copy writes to warm,
    already-mapped pages instead of fresh ones the OS must fault in, which is most of a
    large copy's cost on some machines (VMs, sandboxes). ``take`` runs on the caller's
    thread and ``give`` on the stream thread, hence the lock (held for a dict lookup).
    Idle buffers are capped at ``limit`` bytes; small copies are not pooled at all.
    """

    MIN_BYTES = 1 << 16

    def __init__(self, limit: int = 128 << 20) -> None:
        self.limit = limit
        self._free: dict[int, list[np.ndarray]] = {}
        self._idle = 0
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> np.ndarray:
        """A uint8 buffer of exactly ``nbytes`` (recycled if one is free)."""
        if nbytes >= self.MIN_BYTES:
            with self._lock:
                free = self._free.get(nbytes)
                if free:
                    self._idle -= nbytes
                    return free.pop()
        return np.empty(nbytes, dtype=np.uint8)

    def give(self, buffer: np.ndarray) -> None:
        """Return a buffer nobody reads any more (dropped if the pool is full)."""
        nbytes = buffer.nbytes
        if nbytes < self.MIN_BYTES:
            return
        with self._lock:
            if self._idle + nbytes <= self.limit:
                self._free.setdefault(nbytes, []).append(buffer)
                self._idle += nbytes


POOL = BufferPool()


def _pooled_like(
    shape: tuple[int, ...], size: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """An uninitialised C-order array of ``size`` elements from the pool, and the buffer to
    give back."""
    buffer = POOL.take(size * dtype.itemsize)
    return buffer.view(dtype).reshape(shape), buffer


class HostArray:
    """A host copy of an array or tensor, possibly still arriving from a device.

    Made on the caller's thread; :meth:`get` (stream thread) waits for the copy if it is
    in flight and returns the numpy array. ``extra_zeros`` counts the implicit zeros of a
    sparse tensor (its stored values are what is copied).
    """

    __slots__ = (
        "_array",
        "_buffer",
        "_event",
        "_tensor",
        "extra_zeros",
        "nbytes",
        "shape",
    )

    def __init__(
        self,
        array: np.ndarray | None = None,
        *,
        tensor: Any = None,
        event: Any = None,
        extra_zeros: int = 0,
        shape: tuple[int, ...] | None = None,
        buffer: np.ndarray | None = None,
    ) -> None:
        self._array = array
        self._buffer = buffer  # the pool's buffer under ``array``, given back on release
        self._tensor = tensor
        self._event = event
        self.extra_zeros = extra_zeros
        self.nbytes = int(array.nbytes if array is not None else tensor.nbytes)
        self.shape = (
            shape if shape is not None else tuple((array if array is not None else tensor).shape)
        )

    @classmethod
    def of_numpy(cls, value: np.ndarray) -> HostArray:
        """Copy a numpy array now (C order, so the stream side works on contiguous data)."""
        if isinstance(value, np.ma.MaskedArray):
            value = value.compressed()  # masked entries are not values
        _check_numeric_dtype(value.dtype)
        array, buffer = _pooled_like(value.shape, value.size, value.dtype)
        np.copyto(array, value, casting="no")
        return cls(array, buffer=buffer)

    @classmethod
    def of_torch(cls, torch: Any, t: Any) -> HostArray:
        """Copy a tensor to the host: a plain copy on CPU, non-blocking from CUDA."""
        t = t.detach()
        _check_torch_dtype(torch, t)
        shape = tuple(t.shape)
        extra = 0
        if t.layout != torch.strided:
            t, extra = _sparse_values(torch, t)
        if t.is_quantized:
            t = t.dequantize()
        t = t.resolve_neg().resolve_conj()
        if t.device.type == "cpu":
            dtype = _host_dtype(torch, t.dtype)
            if dtype is None:  # bfloat16, float8: torch widens them to float32, exactly
                array, buffer = _pooled_like(tuple(t.shape), t.numel(), np.dtype(np.float32))
                torch.from_numpy(array).copy_(t)
            else:
                # numpy's copy of the tensor's memory (a memcpy when contiguous; the GIL is
                # released). Not torch's copy_: that one is a parallel region on torch's
                # intra-op threads, which measured 4-20x slower than one memcpy on a busy
                # machine (a region waits for its slowest thread), and no faster otherwise.
                array, buffer = _pooled_like(tuple(t.shape), t.numel(), dtype)
                np.copyto(array, t.numpy(), casting="no")
            return cls(array, extra_zeros=extra, shape=shape, buffer=buffer)
        if t.device.type == "cuda":
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            host.copy_(t, non_blocking=True)  # queued after whatever produced t
            event = torch.cuda.Event()
            event.record()
            return cls(tensor=host, event=event, extra_zeros=extra, shape=shape)
        # Other accelerators: a plain (synchronous) copy; correct, if not free.
        return cls.of_torch(torch, t.to("cpu"))._with(shape=shape)

    def _with(self, *, shape: tuple[int, ...]) -> HostArray:
        self.shape = shape
        return self

    def get(self) -> np.ndarray:
        """The numpy array (stream thread: waits for a device copy still in flight)."""
        if self._array is None:
            if self._event is not None:
                self._event.synchronize()
            t = self._tensor
            torch = sys.modules["torch"]
            self._array = (t.float() if t.dtype in _widened_dtypes(torch) else t).numpy()
            self._tensor = self._event = None
        return self._array

    def release(self) -> None:
        """Drop the copy once it has been reduced: a pooled buffer goes back to the pool
        (the caller guarantees nothing reads the array any more)."""
        if self._buffer is not None:
            POOL.give(self._buffer)
        self._array = self._tensor = self._event = self._buffer = None


# torch dtype -> the numpy dtype a CPU copy of it has, or None for dtypes numpy lacks
# (widened to float32). Filled once per dtype; a dict read or write is atomic.
_HOST_DTYPES: dict[Any, np.dtype | None] = {}


def _host_dtype(torch: Any, dtype: Any) -> np.dtype | None:
    """The numpy dtype of a CPU copy of a ``dtype`` tensor (None: widened to float32)."""
    try:
        return _HOST_DTYPES[dtype]
    except KeyError:
        pass
    host = None if dtype in _widened_dtypes(torch) else torch.empty(0, dtype=dtype).numpy().dtype
    _HOST_DTYPES[dtype] = host
    return host


def _widened_dtypes(torch: Any) -> tuple[Any, ...]:
    """torch dtypes numpy cannot hold, stored as float32 (exactly: they are narrower)."""
    names = ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
    return tuple(getattr(torch, n) for n in names if hasattr(torch, n))


def _sparse_values(torch: Any, t: Any) -> tuple[Any, int]:
    """A sparse tensor's stored values, and how many implicit zeros it has."""
    if t.layout == torch.sparse_coo:
        t = t.coalesce()  # duplicate indices are summed, as the dense tensor would have them
    values = t.values()
    return values, int(t.numel()) - int(values.numel())


# --- captured values ---------------------------------------------------------------------------


class Scalar:
    """A one-element array or tensor: logged as the number it holds."""

    __slots__ = ("_host", "_value", "nbytes")

    def __init__(self, value: Any = None, host: HostArray | None = None) -> None:
        self._value = value
        self._host = host
        self.nbytes = 0 if host is None else host.nbytes

    def encode(self, sink: BlobSink | None = None) -> Any:
        if self._host is not None:
            self._value = self._host.get().reshape(-1)[0].item()
            self._host = None
        value = self._value
        return encode_float(value) if type(value) is float else value


class _Memo:
    """Compute-once for values that ``watch`` also reads (for its norm scalars).

    ``encode`` runs on the stream thread; a user may also read ``Histogram.counts`` on
    their own thread, so the computation is guarded by a lock (uncontended in practice).
    """

    __slots__ = ("_lock", "_result")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._result: dict[str, Any] | None = None

    def get(self, compute: Any) -> dict[str, Any]:
        result = self._result
        if result is None:
            with self._lock:
                result = self._result
                if result is None:
                    result = self._result = compute()
        return result


class HostHistogram:
    """A histogram to be computed on the stream thread from a host copy."""

    __slots__ = ("_bins", "_host", "_memo", "_range", "nbytes")

    def __init__(self, host: HostArray, bins: int, range: tuple[float, float] | None) -> None:
        self._host = host
        self._bins = bins
        self._range = range
        self._memo = _Memo()
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
        self._memo = _Memo()
        self.nbytes = result.nbytes

    def _compute(self) -> dict[str, Any]:
        packed = self._result.get().astype(np.float64)
        self._result.release()
        return _unpack_device_result(packed, self._bins, self._count, self._extra, self._explicit)

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


# --- the device reduction -----------------------------------------------------------------------

# Layout of the packed result tensor (float64): these scalars, then counts, then edges.
_N_FINITE, _N_POSINF, _N_NEGINF, _N_ZEROS, _LO, _HI, _SUM, _SQDEV = range(8)
_HEAD = 8


def _use_device_path(t: Any) -> bool:
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
        _check_torch_dtype(torch, t)
        count = int(t.numel())
        extra = 0
        if t.layout != torch.strided:
            t, extra = _sparse_values(torch, t)
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


# --- capture -------------------------------------------------------------------------------------


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
        device_path = _use_device_path(value) if on_device is None else on_device
        try:
            if device_path:
                return reduce_on_device(torch, value, bins, range)
            return HostHistogram(HostArray.of_torch(torch, value), bins, range)
        except RuntimeError as exc:
            # e.g. out of device memory: drop this value (log() warns), never the loop
            raise ValueError(
                f"could not take the histogram of a {value.device} tensor: {exc}"
            ) from None
    return HostHistogram(HostArray.of_numpy(_as_numpy(value)), bins, range)


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)) or (
        hasattr(value, "__array__") and hasattr(value, "shape")
    ):
        try:
            array = np.asarray(value)
        except Exception as exc:  # any array-like's conversion error, in one clear line
            raise TypeError(f"cannot convert {type(value).__name__} to an array: {exc}") from None
        return array
    raise TypeError(
        f"expected a numpy array or a torch tensor, not {type(value).__module__}.{type(value).__qualname__}"
    )


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


def capture(value: Any) -> Any:
    """A ``Captured`` for a bare non-scalar value, or None if it is not ours to handle.

    numpy arrays, torch tensors and other array-likes (anything with ``__array__`` and a
    ``shape``) with more than one element become histograms with statistics; one element
    becomes its number; an empty one an empty histogram. A PIL image becomes an ``Image``.
    Raises TypeError for arrays of unsupported dtypes (complex, object, strings, ...).
    """
    torch = torch_of(value)
    if torch is not None:
        if value.layout == torch.strided and value.numel() == 1:
            t = value.detach()
            _check_torch_dtype(torch, t)
            if t.device.type == "cpu":
                return Scalar(t.reshape(()).item())
            try:
                return Scalar(host=HostArray.of_torch(torch, t.reshape(())))
            except RuntimeError as exc:
                raise ValueError(f"could not read a {t.device} tensor: {exc}") from None
        return capture_histogram(value)
    if isinstance(value, np.ndarray) or (
        hasattr(value, "__array__") and hasattr(value, "shape") and hasattr(value, "dtype")
    ):
        array = _as_numpy(value)
        if array.size == 1 and not isinstance(array, np.ma.MaskedArray):
            _check_numeric_dtype(array.dtype)
            return Scalar(array.reshape(-1)[0].item())
        return HostHistogram(HostArray.of_numpy(array), DEFAULT_BINS, None)
    if _is_pil_image(value):
        from gradexp.sdk.values.image import Image

        return Image(value)._gradexp_capture()
    return None


# --- the public value types --------------------------------------------------------------------

_C = TypeVar("_C")


class CapturingValue(Generic[_C]):
    """Base of the public value types (``Histogram``, ``Tensor``, ``Image``).

    The data is captured when the value is made (a copy, or a reduction on its device),
    since the caller may change it right after. A bad value does not raise there: its
    error is kept, and ``log()`` warns about it once and drops it (``_gradexp_capture``
    raises it).
    """

    __slots__ = ("_captured", "_error")

    def _capture(self, make: Callable[[], _C], failure: str | None = None) -> None:
        """Capture ``make()``; keep a TypeError/ValueError (and, given ``failure``, a
        RuntimeError such as a device error, reworded) instead of raising it."""
        self._captured: _C | None = None
        self._error: Exception | None = None
        try:
            self._captured = make()
        except (TypeError, ValueError) as exc:
            self._error = exc
        except RuntimeError as exc:
            if failure is None:
                raise
            self._error = ValueError(f"{failure}: {exc}")

    def _gradexp_capture(self) -> _C:
        if self._error is not None:
            raise self._error
        assert self._captured is not None
        return self._captured

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        name = f"gradexp.{type(self).__name__}"
        if self._error is not None:
            return f"<{name} invalid: {self._error}>"
        return f"<{name}{self._describe()}>"


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


class TensorValue:
    """``Tensor``'s captured form: a host copy, written as ``.npy`` on the stream thread."""

    __slots__ = ("_compress", "_host", "_memo", "nbytes")

    def __init__(self, host: HostArray, compress: bool) -> None:
        self._host = host
        self._compress = compress
        self._memo = _Memo()
        self.nbytes = host.nbytes

    def encode(self, sink: BlobSink | None = None) -> dict[str, Any]:
        if sink is None:
            raise ValueError("a Tensor needs a run to store its file in")
        return self._memo.get(lambda: self._write(sink))

    def _write(self, sink: BlobSink) -> dict[str, Any]:
        host = self._host
        array = host.get().reshape(host.shape)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        data = buf.getvalue()
        if self._compress:
            data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
            ref = sink.add_file(data, suffix=".npy.gz", content_type="application/gzip")
        else:
            ref = sink.add_file(data, suffix=".npy", content_type="application/octet-stream")
        stats = statistics(array)
        host.release()
        return {
            "_type": "tensor",
            "path": ref["path"],
            "sha256": ref["sha256"],
            "size": ref["size"],
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "compressed": bool(self._compress),
            **stats,
        }


class Tensor(CapturingValue[TensorValue]):
    """A whole tensor kept as a file: ``gradexp.log({"attn": gradexp.Tensor(a)})``.

    The array (numpy, or a torch tensor on any device) is copied when the Tensor is made
    and written on the stream thread as a ``.npy`` file (``.npy.gz``, gzip, when
    ``compress=True``) in the run's ``files/``, uploaded by content hash and referenced
    from the history row with its shape, dtype and statistics. torch dtypes numpy lacks
    (bfloat16, float8) are stored as float32, which holds them exactly.
    """

    __slots__ = ()

    def __init__(self, value: Any, *, compress: bool = True) -> None:
        def make() -> TensorValue:
            torch = torch_of(value)
            if torch is not None:
                dense = value.to_dense() if value.layout != torch.strided else value
                return TensorValue(HostArray.of_torch(torch, dense), bool(compress))
            return TensorValue(HostArray.of_numpy(_as_numpy(value)), bool(compress))

        # A RuntimeError: out of memory copying off the device, say.
        self._capture(make, failure="could not copy the tensor")

    def _describe(self) -> str:
        assert self._captured is not None
        return f" shape={self._captured._host.shape}"
