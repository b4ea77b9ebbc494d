"""Logged tensors as the web UI views them: ``.npy`` bytes, 2-D slices, a cache of arrays.

Arrays are parsed with numpy (``allow_pickle=False``): callers run :func:`parse_npy` and
:func:`take_slice` in a worker thread, so a large tensor never stalls the event loop.
Parsed arrays are kept in an :class:`ArrayCache` keyed by content hash, so moving a slice
slider re-slices in memory; being content-addressed, a cached array can never be stale.
"""

from __future__ import annotations

import io
import math
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.lib.format as npformat

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


MAX_HEADER_BYTES = 64 * 1024  # an .npy header (numpy writes a few hundred bytes)
INFLATE_STEP = 1024 * 1024


@dataclass(frozen=True)
class NpyHeader:
    """What an ``.npy`` header claims: the array's dtype, shape and order, and where its
    data starts."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    fortran_order: bool
    offset: int

    @property
    def nbytes(self) -> int:
        """The data's size in bytes (a Python int: no overflow, whatever the header says)."""
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def file_size(self) -> int:
        """The size of the whole ``.npy`` file this header describes."""
        return self.offset + self.nbytes


def gunzip_prefix(data: bytes, n: int = MAX_HEADER_BYTES + 12) -> bytes:
    """The first ``n`` bytes (at most) that gzip'ed ``data`` inflates to."""
    try:
        return zlib.decompressobj(wbits=31).decompress(data, n)
    except zlib.error as exc:
        raise Unprocessable(f"this .npy.gz is damaged: {exc}") from None


def read_header(prefix: bytes) -> NpyHeader | None:
    """The header at the start of ``.npy`` bytes; None while ``prefix`` is too short to hold
    it; Unprocessable when it is not a numeric ``.npy`` header."""
    if len(prefix) < 12:
        return None
    f = io.BytesIO(prefix)
    try:
        major, _minor = npformat.read_magic(f)
        if major == 1:
            length = int.from_bytes(prefix[8:10], "little")
            offset = 10 + length
        elif major in (2, 3):
            length = int.from_bytes(prefix[8:12], "little")
            offset = 12 + length
        else:
            raise ValueError(f"unknown .npy version {major}")
        if length > MAX_HEADER_BYTES:
            raise ValueError(f"its header is over {MAX_HEADER_BYTES} bytes")
        if len(prefix) < offset:
            return None
        f.seek(0)
        npformat.read_magic(f)
        if major == 1:
            shape, fortran, dtype = npformat.read_array_header_1_0(f)
        else:
            if major == 3:  # utf-8 header text, else as version 2
                f = io.BytesIO(prefix[:8] + b"\x02\x00" + prefix[10:])
                npformat.read_magic(f)
            shape, fortran, dtype = npformat.read_array_header_2_0(f)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise Unprocessable(f"this file is not a readable .npy: {exc}") from None
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        raise Unprocessable("only numeric and boolean tensors can be viewed")
    return NpyHeader(dtype, tuple(int(d) for d in shape), bool(fortran), offset)


def check_size(header: NpyHeader, actual: int) -> None:
    """Unprocessable unless the ``.npy`` file is exactly as long as its header says."""
    if header.file_size != actual:
        raise Unprocessable(
            f"this .npy is damaged: its header claims {_human(header.nbytes)} of data "
            f"(shape {list(header.shape)}, {header.dtype}) but the file holds "
            f"{_human(max(0, actual - header.offset))}"
        )


def check_viewable(header: NpyHeader, limit: int = MAX_TENSOR_BYTES) -> None:
    """TooLarge when viewing would hold more than ``limit`` bytes in memory."""
    if header.nbytes > limit:
        raise TooLarge(
            f"this tensor holds {_human(header.nbytes)}: a view holds at most "
            f"{_human(limit)} in memory; download its .npy instead"
        )


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError


class Inflater:
    """gunzip in bounded steps (a stored tensor may be ``.npy.gz``): at most
    ``max_output`` bytes in all, ``bad`` (Unprocessable) for anything that is not gzip."""

    def __init__(self, max_output: int) -> None:
        self._z = zlib.decompressobj(wbits=31)
        self.max_output = max_output
        self.produced = 0

    def pieces(self, chunk: bytes) -> Iterator[bytes]:
        """Inflate ``chunk`` one piece (at most 1 MiB) at a time."""
        z, data = self._z, chunk
        while data and not z.eof:
            try:
                piece = z.decompress(data, min(INFLATE_STEP, self.max_output - self.produced + 1))
            except zlib.error as exc:
                raise Unprocessable(f"this .npy.gz is damaged: {exc}") from None
            self.produced += len(piece)
            if self.produced > self.max_output:
                raise Unprocessable("this .npy.gz holds more data than its header says")
            yield piece
            data = z.unconsumed_tail

    @property
    def eof(self) -> bool:
        """Whether the gzip stream ended."""
        return self._z.eof


class ArrayLoader:
    """An ``.npy`` (or ``.npy.gz``) array built from its bytes as they arrive, into one
    buffer allocated once the header is read: memory is the array itself (never the file
    and a copy), and a header claiming more than ``max_bytes`` is refused before anything
    is allocated. ``feed`` each chunk (in a worker thread: inflating costs CPU), then
    ``finish``."""

    def __init__(self, gzip: bool, max_bytes: int = MAX_TENSOR_BYTES) -> None:
        self.max_bytes = max_bytes
        # Until the header is read, a gzip stream may give no more than the largest
        # header and the largest array; then exactly what the header says.
        self._inflater = Inflater(MAX_HEADER_BYTES + 12 + max_bytes) if gzip else None
        self._head = b""
        self.header: NpyHeader | None = None
        self._buf: np.ndarray | None = None
        self._filled = 0

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the stored bytes."""
        pieces = self._inflater.pieces(chunk) if self._inflater is not None else (chunk,)
        for piece in pieces:
            self._take(piece)

    def _take(self, piece: bytes) -> None:
        if self.header is None:
            self._head += piece
            header = read_header(self._head)
            if header is None:
                if len(self._head) > MAX_HEADER_BYTES + 12:
                    raise Unprocessable("this file is not a readable .npy: no header end")
                return
            check_viewable(header, self.max_bytes)
            self.header = header
            if self._inflater is not None:
                self._inflater.max_output = header.file_size
            self._buf = np.empty(header.nbytes, dtype=np.uint8)
            piece, self._head = self._head[header.offset :], b""
        assert self._buf is not None
        end = self._filled + len(piece)
        if end > len(self._buf):
            raise Unprocessable("this .npy holds more data than its header says")
        self._buf[self._filled : end] = np.frombuffer(piece, dtype=np.uint8)
        self._filled = end

    def finish(self) -> np.ndarray:
        """The array; Unprocessable when the bytes ended early."""
        if self.header is None:
            raise Unprocessable("this file is not a readable .npy: it ends inside its header")
        if self._inflater is not None and not self._inflater.eof:
            raise Unprocessable("this .npy.gz is truncated")
        check_size(self.header, self.header.offset + self._filled)
        assert self._buf is not None
        h = self.header
        return self._buf.view(h.dtype).reshape(h.shape, order="F" if h.fortran_order else "C")


def open_npy_mmap(path: str, header: NpyHeader) -> np.ndarray:
    """A read-only memory map of an uncompressed ``.npy`` file of a local store: slicing
    it reads only the pages a slice touches, whatever the array's size."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise Unprocessable(f"this file is not a readable .npy: {exc}") from None
    if arr.dtype != header.dtype or arr.shape != header.shape:
        raise Unprocessable("this .npy changed while it was read")
    return arr


def parse_npy(data: bytes) -> np.ndarray:
    """An array from whole stored tensor bytes (``.npy`` or ``.npy.gz``), bounded as
    :class:`ArrayLoader` bounds it."""
    loader = ArrayLoader(data[:2] == GZIP_MAGIC)
    loader.feed(data)
    return loader.finish()


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


def _positions(shape: tuple[int, ...], index: list[int | None]) -> list[int | None]:
    """``index`` with negative positions resolved; Invalid when one is out of range."""
    out: list[int | None] = []
    for axis, (pos, size) in enumerate(zip(index, shape, strict=True)):
        if pos is not None and not -size <= pos < size:
            raise Invalid(f"index {pos} is out of range for axis {axis} (size {size})")
        out.append(pos if pos is None or pos >= 0 else pos + size)
    return out


def _strides(shape: tuple[int, ...], max_side: int, kept: list[int]) -> tuple[int, int]:
    dims = [shape[a] for a in kept]
    rows, cols = (1, *dims)[-2:] if dims else (1, 1)
    return max(1, math.ceil(rows / max_side)), max(1, math.ceil(cols / max_side))


def take_slice(arr: np.ndarray, index: list[int | None], max_side: int) -> dict[str, Any]:
    """The 2-D slice of ``arr`` that ``index`` names, strided down to ``max_side`` per axis."""
    positions = _positions(arr.shape, index)
    kept = [axis for axis, pos in enumerate(index) if pos is None]
    sr, sc = _strides(arr.shape, max_side, kept)
    steps = {a: s for a, s in zip(kept, (sr, sc) if len(kept) == 2 else (sc,), strict=False)}
    selector = tuple(
        slice(None, None, steps[a]) if p is None else p for a, p in enumerate(positions)
    )
    plane = np.asarray(arr[selector])
    return _slice_body(plane, arr.shape, arr.dtype, index, kept, sr, sc)


def slice_offsets(
    header: NpyHeader, index: list[int | None], max_side: int
) -> tuple[Any, list[int], int, int]:
    """Where the elements of a strided 2-D slice lie in the data of an ``.npy`` (element
    numbers, rows x cols, C or Fortran order): (offsets, kept axes, row stride, col stride).
    """
    shape = header.shape
    positions = _positions(shape, index)
    kept = [axis for axis, pos in enumerate(index) if pos is None]
    sr, sc = _strides(shape, max_side, kept)
    n = len(shape)
    axes = range(n - 1, -1, -1) if not header.fortran_order else range(n)
    strides = [0] * n
    step = 1
    for a in axes:
        strides[a] = step
        step *= shape[a]
    base = sum(p * strides[a] for a, p in enumerate(positions) if p is not None)
    row_axis = kept[0] if len(kept) == 2 else None
    col_axis = kept[-1] if kept else None
    rows = np.arange(0, shape[row_axis], sr) * strides[row_axis] if row_axis is not None else [0]
    cols = np.arange(0, shape[col_axis], sc) * strides[col_axis] if col_axis is not None else [0]
    offsets = base + np.asarray(rows, dtype=np.int64)[:, None] + np.asarray(cols, dtype=np.int64)
    return offsets, kept, sr, sc


class StreamSlicer:
    """A strided 2-D slice gathered from an ``.npy``'s bytes as they stream past (inflated
    on the way for ``.npy.gz``): memory is the slice and one chunk, whatever the tensor's
    size. ``feed`` the data bytes after the header, then ``finish``."""

    def __init__(self, header: NpyHeader, offsets: Any) -> None:
        self.header = header
        self.shape = offsets.shape
        flat = offsets.ravel()
        self._order = np.argsort(flat, kind="stable")
        self._sorted = flat[self._order]
        self._values = np.empty(flat.size, dtype=header.dtype)
        self._done = 0  # how many of the sorted offsets are filled
        self._buf = b""
        self._element = 0  # the element number at the start of _buf

    def feed(self, data: bytes) -> None:
        """The next data bytes."""
        size = self.header.dtype.itemsize
        buf = self._buf + data if self._buf else data
        whole = len(buf) // size
        end = self._element + whole
        stop = int(np.searchsorted(self._sorted, end, side="left"))
        if stop > self._done:
            elements = np.frombuffer(buf, dtype=self.header.dtype, count=whole)
            picks = self._sorted[self._done : stop] - self._element
            self._values[self._done : stop] = elements[picks]
            self._done = stop
        self._buf = bytes(buf[whole * size :])
        self._element = end

    def finish(self) -> np.ndarray:
        """The slice, rows x cols; Unprocessable if the data ended early."""
        if self._done < len(self._sorted):
            raise Unprocessable("this .npy ends before the data its header describes")
        out = np.empty_like(self._values)
        out[self._order] = self._values
        return out.reshape(self.shape)


def slice_body(
    plane: np.ndarray, header: NpyHeader, index: list[int | None], kept: list[int], sr: int, sc: int
) -> dict[str, Any]:
    """The JSON of a slice gathered by :class:`StreamSlicer`."""
    return _slice_body(plane, header.shape, header.dtype, index, kept, sr, sc)


def _slice_body(
    plane: np.ndarray,
    shape: tuple[int, ...],
    dtype: Any,
    index: list[int | None],
    kept: list[int],
    sr: int,
    sc: int,
) -> dict[str, Any]:
    if plane.ndim == 0:
        plane = plane.reshape(1, 1)
    elif plane.ndim == 1:
        plane = plane.reshape(1, -1)
    values = plane.astype(np.float64, copy=False).ravel()
    finite = values[np.isfinite(values)]
    encoded: list[Any] = values.tolist()
    if finite.size != values.size:
        encoded = [encode_float(v) for v in encoded]
    return {
        "shape": list(shape),
        "dtype": str(dtype),
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
