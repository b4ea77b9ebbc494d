"""Read endpoints the web UI needs beyond the core read API (documented in docs/protocol.md).

- ``GET /api/v1/runs/{run_id}/tensor?path=P&index=0,:,:&max=256``: a 2-D slice of a logged
  ``Tensor`` as JSON, so the browser never downloads (or parses) a large ``.npy``.
- ``GET /api/v1/runs/{run_id}/tensor.npy?path=P``: the tensor as a plain ``.npy`` file
  (decompressed when it was logged with ``compress=True``).
- ``GET /api/v1/projects/{owner}/{project}/columns``: the tags, summary keys and config
  keys used across a project's runs (the runs table's filters and column chooser).

Tensors are read from the object store and parsed with numpy (``allow_pickle=False``) in a
worker thread, so a large tensor never stalls the event loop. Parsed arrays are kept in a
small per-process LRU keyed by content hash, so moving a slice slider re-slices in memory;
being content-addressed, a cached array can never be stale.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import orjson
from aiohttp import web
from sqlalchemy import distinct, select

from gradexp.protocol.values import encode_float
from gradexp.protocol.wire import API_PREFIX, STAT_SEPARATOR
from gradexp.server import schema as s
from gradexp.server.errors import ApiError, json_response
from gradexp.server.objects import blob_key
from gradexp.server.routes_read import owned_project
from gradexp.server.runs import find_run
from gradexp.server.state import AppState

routes = web.RouteTableDef()

MAX_TENSOR_BYTES = 512 * 1024 * 1024  # decompressed; past this, download the .npy instead
CACHE_BYTES = 256 * 1024 * 1024
DEFAULT_SLICE_SIDE = 256
MAX_SLICE_SIDE = 1024
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


_cache = ArrayCache()


def npy_bytes(data: bytes) -> bytes:
    """The plain ``.npy`` bytes of a stored tensor (gunzipped when compressed), bounded."""
    if data[:2] != GZIP_MAGIC:
        return data
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
        while chunk := f.read(1 << 20):
            out.write(chunk)
            if out.tell() > MAX_TENSOR_BYTES:
                raise ApiError(
                    413,
                    "payload_too_large",
                    "this tensor is too large to view in the browser; download its .npy instead",
                )
    return out.getvalue()


def parse_npy(data: bytes) -> np.ndarray:
    """An array from stored tensor bytes; 422 when they are not a numeric ``.npy``."""
    raw = npy_bytes(data)
    try:
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ApiError(422, "unprocessable", f"this file is not a readable .npy: {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise ApiError(422, "unprocessable", "only numeric and boolean tensors can be viewed")
    return arr


def parse_index(raw: str | None, ndim: int) -> list[int | None]:
    """``"0,:,:"`` -> ``[0, None, None]`` (``None`` keeps an axis). Default: the last two
    axes kept, every other axis at 0."""
    if raw is None or raw == "":
        return [0] * max(0, ndim - 2) + [None] * min(ndim, 2)
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) != ndim:
        raise ApiError(
            400, "bad_request", f"index must name {ndim} axes (integers or ':'), got {raw!r}"
        )
    out: list[int | None] = []
    for part in parts:
        if part == ":":
            out.append(None)
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise ApiError(
                400, "bad_request", f"index entries are integers or ':', got {part!r}"
            ) from None
    if sum(p is None for p in out) > 2:
        raise ApiError(400, "bad_request", "index keeps at most two axes (two ':')")
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
            raise ApiError(
                400, "bad_request", f"index {pos} is out of range for axis {axis} (size {size})"
            )
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


async def _tensor_file(request: web.Request) -> tuple[Any, Any]:
    """(run row, files row) for ``?path=`` of the caller's run; 404 when either is missing."""
    state: AppState = request.app["state"]
    path = request.query.get("path")
    if not path:
        raise ApiError(400, "bad_request", "pass the tensor's file path: ?path=FILE")
    f = s.files
    async with state.db.read() as conn:
        run = await find_run(conn, request["user"], request.match_info["run_id"])
        entry = (
            await conn.execute(
                select(f.c.sha256, f.c.size, f.c.content_type).where(
                    f.c.run_pk == run.pk, f.c.path == path
                )
            )
        ).first()
    if entry is None:
        raise ApiError(404, "not_found", f"run {run.id!r} has no file {path!r}")
    return run, entry


async def _load(state: AppState, run: Any, entry: Any) -> bytes:
    data = await state.objects.get(blob_key(run.project_id, run.id, entry.sha256))
    if data is None:
        raise ApiError(404, "not_found", "the tensor's object is missing from the object store")
    return data


@routes.get(API_PREFIX + "/runs/{run_id}/tensor")
async def tensor_slice(request: web.Request) -> web.Response:
    """A 2-D slice of a logged tensor, as JSON (see the module docstring)."""
    state: AppState = request.app["state"]
    run, entry = await _tensor_file(request)
    try:
        max_side = int(request.query.get("max", DEFAULT_SLICE_SIDE))
    except ValueError:
        raise ApiError(400, "bad_request", "max must be an integer") from None
    max_side = max(1, min(max_side, MAX_SLICE_SIDE))
    arr = _cache.get(entry.sha256)
    if arr is None:
        data = await _load(state, run, entry)
        arr = await asyncio.to_thread(parse_npy, data)
        _cache.put(entry.sha256, arr)
    index = parse_index(request.query.get("index"), arr.ndim)
    body = await asyncio.to_thread(take_slice, arr, index, max_side)
    return json_response(body)


@routes.get(API_PREFIX + "/runs/{run_id}/tensor.npy")
async def tensor_npy(request: web.Request) -> web.Response:
    """The tensor as a plain ``.npy`` download."""
    state: AppState = request.app["state"]
    run, entry = await _tensor_file(request)
    data = await _load(state, run, entry)
    raw = await asyncio.to_thread(npy_bytes, data)
    name = request.query.get("name") or entry.sha256[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "tensor"
    if not safe.endswith(".npy"):
        safe += ".npy"
    return web.Response(
        body=raw,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


MAX_COLUMN_KEYS = 2000


@routes.get(API_PREFIX + "/projects/{owner}/{project}/columns")
async def project_columns(request: web.Request) -> web.Response:
    """Tags, summary keys (logged or set explicitly) and dotted config keys of a project."""
    state: AppState = request.app["state"]
    r, k = s.runs, s.run_keys
    async with state.db.read() as conn:
        pid = await owned_project(request, conn)
        runs = (
            await conn.execute(
                select(r.c.tags, r.c.config, r.c.summary).where(r.c.project_id == pid)
            )
        ).all()
        keys = (
            await conn.execute(
                select(distinct(k.c.key_name))
                .select_from(k.join(r, r.c.pk == k.c.run_pk))
                .where(r.c.project_id == pid, k.c.kind.in_(("number", "bool", "string")))
                .limit(MAX_COLUMN_KEYS * 4)
            )
        ).all()
    tags: set[str] = set()
    config_keys: set[str] = set()
    explicit: set[str] = set()  # run.summary[...] = ... keys, which may never be logged
    for tags_text, config_text, summary_text in runs:
        tags.update(t for t in orjson.loads(tags_text) if type(t) is str)
        config = orjson.loads(config_text)
        if type(config) is dict:
            config_keys.update(_flat_keys(config))
        summary = orjson.loads(summary_text)
        if type(summary) is dict:
            explicit.update(
                k for k, v in summary.items() if type(v) is not dict or v.get("_type") == "float"
            )
    summary_keys = sorted({row[0] for row in keys if STAT_SEPARATOR not in row[0]} | explicit)
    return json_response(
        {
            "tags": sorted(tags),
            "summary_keys": summary_keys[:MAX_COLUMN_KEYS],
            "config_keys": sorted(config_keys)[:MAX_COLUMN_KEYS],
        }
    )


def _flat_keys(config: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"a": {"b": 1}, "c": 2}`` -> ``["a.b", "c"]`` (the UI shows nested config dotted)."""
    out: list[str] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if type(value) is dict and value:
            out.extend(_flat_keys(value, name + "."))
        else:
            out.append(name)
    return out


__all__ = ["ArrayCache", "parse_index", "parse_npy", "routes", "take_slice"]
