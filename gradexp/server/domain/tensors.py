"""Logged tensors as the web UI views them: ``.npy`` bytes, 2-D slices, a cache of arrays.

Arrays are parsed with numpy (``allow_pickle=False``): callers run :func:`parse_npy` and
:func:`take_slice` in a worker thread, so a large tensor never stalls the event loop.
Parsed arrays are kept in an :class:`ArrayCache` keyed by content hash, so moving a slice
slider re-slices in memory; being content-addressed, a cached array can never be stale.
"""

from __future__ import annotations

import gzip
import io
import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from gradexp.protocol.values import encode_float
from gradexp.server.domain.errors import Invalid, TooLarge, Unprocessable

MAX_TENSOR_BYTES = 512 * 1024 * 1024  # decompressed; past this, download the .npy instead
CACHE_BYTES = 256 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


class ArrayCache:
    """A byte-bounded LRU of parsed arrays, by sha256.

    Touched from the event loop and from worker threads (``asyncio.to_thread``), hence
    the lock; it is held only around dict operations, never while parsing.
    """

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, sha: str) -> np.ndarray | None:
        """The cached array, marked as recently used."""
        with self._lock:
            arr = self._items.get(sha)
            if arr is not None:
                self._items.move_to_end(sha)
            return arr

    def put(self, sha: str, arr: np.ndarray) -> None:
        """Keep an array (unless it alone is larger than the cache)."""
        if arr.nbytes > self.max_bytes:
            return
        with self._lock:
            if sha in self._items:
                return
            self._items[sha] = arr
            self._bytes += arr.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes


def npy_bytes(data: bytes) -> bytes:
    """The plain ``.npy`` bytes of a stored tensor (gunzipped when compressed), bounded."""
    if data[:2] != GZIP_MAGIC:
        return data
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
        while chunk := f.read(1 << 20):
            out.write(chunk)
            if out.tell() > MAX_TENSOR_BYTES:
                raise TooLarge(
                    "this tensor is too large to view in the browser; download its .npy instead"
                )
    return out.getvalue()


def parse_npy(data: bytes) -> np.ndarray:
    """An array from stored tensor bytes; Unprocessable when they are not a numeric ``.npy``."""
    raw = npy_bytes(data)
    try:
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise Unprocessable(f"this file is not a readable .npy: {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise Unprocessable("only numeric and boolean tensors can be viewed")
    return arr


def parse_index(raw: str | None, ndim: int) -> list[int | None]:
    """``"0,:,:"`` -> ``[0, None, None]`` (``None`` keeps an axis). Default: the last two
    axes kept, every other axis at 0."""
    if raw is None or raw == "":
        return [0] * max(0, ndim - 2) + [None] * min(ndim, 2)
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) != ndim:
        raise Invalid(f"index must name {ndim} axes (integers or ':'), got {raw!r}")
    out: list[int | None] = []
    for part in parts:
        if part == ":":
            out.append(None)
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise Invalid(f"index entries are integers or ':', got {part!r}") from None
    if sum(p is None for p in out) > 2:
        raise Invalid("index keeps at most two axes (two ':')")
    return out


def take_slice(arr: np.ndarray, index: list[int | None], max_side: int) -> dict[str, Any]:
    """The 2-D slice of ``arr`` that ``index`` names, strided down to ``max_side`` per axis."""
    selector: list[Any] = []
    for axis, (pos, size) in enumerate(zip(index, arr.shape, strict=True)):
        if pos is None:
            selector.append(slice(None))
        elif -size <= pos < size:
            selector.append(pos)
        else:
            raise Invalid(f"index {pos} is out of range for axis {axis} (size {size})")
    kept = [axis for axis, pos in enumerate(index) if pos is None]
    plane = arr[tuple(selector)]
    if plane.ndim == 0:
        plane = plane.reshape(1, 1)
    elif plane.ndim == 1:
        plane = plane.reshape(1, -1)
    rows, cols = plane.shape
    sr, sc = max(1, math.ceil(rows / max_side)), max(1, math.ceil(cols / max_side))
    plane = plane[::sr, ::sc]
    values = plane.astype(np.float64, copy=False).ravel()
    finite = values[np.isfinite(values)]
    encoded: list[Any] = values.tolist()
    if finite.size != values.size:
        encoded = [encode_float(v) for v in encoded]
    return {
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "index": [":" if p is None else p for p in index],
        "row_axis": kept[0] if len(kept) == 2 else None,
        "col_axis": kept[-1] if kept else None,
        "rows": int(plane.shape[0]),
        "cols": int(plane.shape[1]),
        "stride": [sr, sc],
        "values": encoded,
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
    }
