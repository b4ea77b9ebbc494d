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
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import distinct, select

from gradexp._protocol import API_PREFIX, STAT_SEPARATOR
from gradexp.server.domain.runs import find_run
from gradexp.server.domain.tensors import ArrayCache, npy_bytes, parse_index, parse_npy, take_slice
from gradexp.server.http.errors import HttpError, json_response
from gradexp.server.http.read import owned_project
from gradexp.server.http.state import AppState
from gradexp.server.storage import schema as s
from gradexp.server.storage.objects import blob_key

routes = web.RouteTableDef()

DEFAULT_SLICE_SIDE = 256
MAX_SLICE_SIDE = 1024

_cache = ArrayCache()


async def _tensor_file(request: web.Request) -> tuple[Any, Any]:
    """(run row, files row) for ``?path=`` of the caller's run; 404 when either is missing."""
    state: AppState = request.app["state"]
    path = request.query.get("path")
    if not path:
        raise HttpError(400, "bad_request", "pass the tensor's file path: ?path=FILE")
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
        raise HttpError(404, "not_found", f"run {run.id!r} has no file {path!r}")
    return run, entry


async def _load(state: AppState, run: Any, entry: Any) -> bytes:
    data = await state.objects.get(blob_key(run.project_id, run.id, entry.sha256))
    if data is None:
        raise HttpError(404, "not_found", "the tensor's object is missing from the object store")
    return data


@routes.get(API_PREFIX + "/runs/{run_id}/tensor")
async def tensor_slice(request: web.Request) -> web.Response:
    """A 2-D slice of a logged tensor, as JSON (see the module docstring)."""
    state: AppState = request.app["state"]
    run, entry = await _tensor_file(request)
    try:
        max_side = int(request.query.get("max", DEFAULT_SLICE_SIDE))
    except ValueError:
        raise HttpError(400, "bad_request", "max must be an integer") from None
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


__all__ = ["routes"]
