"""What every captured value is built on: host copies, the buffer pool, the base class.

A rich value is *captured* on the caller's thread (the caller may mutate the array as
soon as ``log()`` returns) and *finished* by ``encode(sink)`` on the stream thread (the
``Captured`` protocol, ``gradexp.protocol.captured``). This module holds the pieces the
value types share:

- :class:`HostArray`: a host copy of an array or tensor, possibly still arriving from a
  device (a CUDA copy is queued non-blocking into pinned memory; the stream thread waits
  for it). Copies land in buffers recycled through :class:`BufferPool` (warm pages, no
  allocator churn).
- :class:`CapturingValue`: the base of ``Histogram``, ``Tensor`` and ``Image``. Nothing
  raises into a training loop for a bad value: ``TypeError`` / ``ValueError`` (device
  errors included) become the SDK's once-per-key warning.
- :class:`Scalar` (a one-element array, logged as its number) and :class:`Memo`.

torch is never imported here: a tensor is recognised with ``isinstance`` against the torch
module in ``sys.modules`` (if nothing imported torch, no tensor can exist).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from gradexp.protocol.values import encode_float
from gradexp.sdk.values.binning import unsupported_dtype_message

if TYPE_CHECKING:
    from gradexp.protocol.captured import BlobSink

__all__ = [
    "POOL",
    "BufferPool",
    "CapturingValue",
    "HostArray",
    "Memo",
    "Scalar",
    "as_numpy",
    "check_numeric_dtype",
    "check_torch_dtype",
    "sparse_values",
    "torch_of",
]


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


def check_numeric_dtype(dtype: np.dtype) -> None:
    """TypeError unless ``dtype`` holds numbers we can bin (bool, int, float)."""
    if dtype.kind not in "biuf":
        raise TypeError(unsupported_dtype_message(str(dtype)))


def check_torch_dtype(torch: Any, t: Any) -> None:
    """TypeError for tensors we cannot read: complex ones, and those on the meta device."""
    if t.is_complex():
        raise TypeError(unsupported_dtype_message(str(t.dtype).removeprefix("torch.")))
    if t.device.type == "meta":
        raise TypeError("cannot log a tensor on the meta device: it holds no data")


def as_numpy(value: Any) -> np.ndarray:
    """A numpy array of an array-like (TypeError, in one line, for anything else)."""
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
        check_numeric_dtype(value.dtype)
        array, buffer = _pooled_like(value.shape, value.size, value.dtype)
        np.copyto(array, value, casting="no")
        return cls(array, buffer=buffer)

    @classmethod
    def of_torch(cls, torch: Any, t: Any) -> HostArray:
        """Copy a tensor to the host: a plain copy on CPU, non-blocking from CUDA."""
        t = t.detach()
        check_torch_dtype(torch, t)
        shape = tuple(t.shape)
        extra = 0
        if t.layout != torch.strided:
            t, extra = sparse_values(torch, t)
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


def sparse_values(torch: Any, t: Any) -> tuple[Any, int]:
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


class Memo:
    """Compute-once for values that ``watch`` also reads (for its norm scalars).

    ``encode`` runs on the stream thread; a user may also read ``Histogram.counts`` on
    their own thread, so the computation is guarded by a lock (uncontended in practice).
    """

    __slots__ = ("_lock", "_result")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._result: dict[str, Any] | None = None

    def get(self, compute: Any) -> dict[str, Any]:
        """``compute()``'s result, computed on the first call only."""
        result = self._result
        if result is None:
            with self._lock:
                result = self._result
                if result is None:
                    result = self._result = compute()
        return result


# --- the public value types' base ---------------------------------------------------------------

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
