"""Read endpoints the web UI needs beyond the core read API (documented in docs/protocol.md).

- ``GET /api/v1/runs/{run_id}/tensor?path=P&index=0,:,:&max=256``: a 2-D slice of a logged
  ``Tensor`` as JSON, so the browser never downloads (or parses) a large ``.npy``.
- ``GET /api/v1/runs/{run_id}/tensor.npy?path=P``: the tensor as a plain ``.npy`` file
  (decompressed when it was logged with ``compress=True``).
- ``GET /api/v1/projects/{owner}/{project}/columns``: the tags, summary keys and config
  keys used across a project's runs (the runs table's filters and column chooser).

Tensors are read from the object store and parsed in a worker thread (see
``domain/tensors.py``), so a large tensor never stalls the event loop; parsed arrays stay
in the process's ``AppState.arrays`` cache, so moving a slice slider re-slices in memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain.files import find_file
from gradexp.server.domain.projects import project_columns
from gradexp.server.domain.runs import find_run
from gradexp.server.domain.tensors import npy_bytes, parse_index, parse_npy, take_slice
from gradexp.server.http.errors import HttpError, json_response
from gradexp.server.http.params import owned_project_id
from gradexp.server.http.sessions import USER
from gradexp.server.http.state import app_state
from gradexp.server.storage.objects import blob_key

routes = web.RouteTableDef()

DEFAULT_SLICE_SIDE = 256
MAX_SLICE_SIDE = 1024


async def _tensor_file(request: web.Request) -> tuple[Any, Any]:
    """(run row, files row) for ``?path=`` of the caller's run; 404 when either is missing."""
    path = request.query.get("path")
    if not path:
        raise HttpError(400, "bad_request", "pass the tensor's file path: ?path=FILE")
    async with app_state(request).db.read() as conn:
        run = await find_run(conn, request[USER], request.match_info["run_id"])
        entry = await find_file(conn, run, path)
    return run, entry


async def _load(request: web.Request, run: Any, entry: Any) -> bytes:
    data = await app_state(request).objects.get(blob_key(run.project_id, run.id, entry.sha256))
    if data is None:
        raise HttpError(404, "not_found", "the tensor's object is missing from the object store")
    return data


@routes.get(API_PREFIX + "/runs/{run_id}/tensor")
async def tensor_slice(request: web.Request) -> web.Response:
    """A 2-D slice of a logged tensor, as JSON (see the module docstring)."""
    arrays = app_state(request).arrays
    run, entry = await _tensor_file(request)
    try:
        max_side = int(request.query.get("max", DEFAULT_SLICE_SIDE))
    except ValueError:
        raise HttpError(400, "bad_request", "max must be an integer") from None
    max_side = max(1, min(max_side, MAX_SLICE_SIDE))
    arr = arrays.get(entry.sha256)
    if arr is None:
        data = await _load(request, run, entry)
        arr = await asyncio.to_thread(parse_npy, data)
        arrays.put(entry.sha256, arr)
    index = parse_index(request.query.get("index"), arr.ndim)
    body = await asyncio.to_thread(take_slice, arr, index, max_side)
    return json_response(body)


@routes.get(API_PREFIX + "/runs/{run_id}/tensor.npy")
async def tensor_npy(request: web.Request) -> web.Response:
    """The tensor as a plain ``.npy`` download."""
    run, entry = await _tensor_file(request)
    data = await _load(request, run, entry)
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


@routes.get(API_PREFIX + "/projects/{owner}/{project}/columns")
async def get_project_columns(request: web.Request) -> web.Response:
    """Tags, summary keys (logged or set explicitly) and dotted config keys of a project."""
    async with app_state(request).db.read() as conn:
        pid = await owned_project_id(request, conn)
        columns = await project_columns(conn, pid)
    return json_response(columns)
