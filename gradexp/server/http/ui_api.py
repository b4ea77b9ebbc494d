"""Read endpoints the web UI needs beyond the core read API (documented in docs/protocol.md).

- ``GET /api/v1/runs/{run_id}/tensor?path=P&index=0,:,:&max=256``: a 2-D slice of a logged
  ``Tensor`` as JSON, so the browser never downloads (or parses) a large ``.npy``.
- ``GET /api/v1/runs/{run_id}/tensor.npy?path=P``: the tensor as a plain ``.npy`` file
  (decompressed when it was logged with ``compress=True``).
- ``GET /api/v1/projects/{owner}/{project}/columns``: the tags, summary keys and config
  keys used across a project's runs (the runs table's filters and column chooser).

Tensors are read without holding more than they must: an uncompressed ``.npy`` in a local
store is memory-mapped (a slice reads only its pages, any size); a compressed one, or one
on S3, is inflated chunk by chunk in a worker thread, at most two at a time: up to 64 MiB
into one buffer kept in the cache, beyond that streamed past the slice asked for (memory:
the slice and a chunk), refused with 413 past ``MAX_TENSOR_BYTES`` (512 MiB) before
anything is read. Downloads stream (inflating on the way). A header that does not match the
stored length is refused with 422 up front. Parsed arrays stay in the process's
``AppState.arrays`` cache, so moving a slice slider re-slices in memory.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain.errors import Unprocessable
from gradexp.server.domain.files import find_file
from gradexp.server.domain.projects import project_columns
from gradexp.server.domain.runs import find_run
from gradexp.server.domain.tensors import (
    GZIP_MAGIC,
    ArrayLoader,
    Inflater,
    NpyHeader,
    StreamSlicer,
    check_size,
    check_viewable,
    gunzip_prefix,
    open_npy_mmap,
    parse_index,
    read_header,
    slice_body,
    slice_offsets,
    take_slice,
)
from gradexp.server.http.errors import HttpError, json_response
from gradexp.server.http.params import owned_project_id
from gradexp.server.http.sessions import USER
from gradexp.server.http.state import app_state
from gradexp.server.storage.objects import blob_key

routes = web.RouteTableDef()

DEFAULT_SLICE_SIDE = 256
MAX_SLICE_SIDE = 1024
HEAD_BYTES = 64 * 1024  # read first: an .npy header, or enough .npy.gz to inflate one
# Tensors read at once (compressed, or on S3): into memory (KEEP_BYTES at most each), or
# streamed past a slice (a few MiB each).
_LOADING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _loading() -> asyncio.Semaphore:
    """This event loop's bound on tensors being read (2 at a time)."""
    loop = asyncio.get_running_loop()
    sem = _LOADING.get(loop)
    if sem is None:
        sem = _LOADING[loop] = asyncio.Semaphore(2)
    return sem


# Tensors up to this size (once inflated) are kept in memory after a first view, so a
# slider re-slices at once; larger ones are read again for each slice, in one pass.
KEEP_BYTES = 64 * 1024 * 1024


async def _tensor_file(request: web.Request) -> tuple[Any, Any]:
    """(run row, files row) for ``?path=`` of the caller's run; 404 when either is missing."""
    path = request.query.get("path")
    if not path:
        raise HttpError(400, "bad_request", "pass the tensor's file path: ?path=FILE")
    async with app_state(request).db.read() as conn:
        run = await find_run(conn, request[USER], request.match_info["run_id"])
        entry = await find_file(conn, run, path)
    return run, entry


async def _stored(request: web.Request, key: str) -> tuple[int, bytes]:
    """(size, first bytes) of a tensor's object; 404 when it is missing."""
    objects = app_state(request).objects
    size = await objects.size(key)
    head = await objects.get_range(key, 0, HEAD_BYTES) if size is not None else None
    if size is None or head is None:
        raise HttpError(404, "not_found", "the tensor's object is missing from the object store")
    return size, head


async def _gzip_header(request: web.Request, key: str, size: int, head: bytes) -> NpyHeader:
    """The header of a stored ``.npy.gz``, checked against the length gzip recorded (its
    last 4 bytes: the size modulo 2^32), so a header that lies is refused up front."""
    header = read_header(gunzip_prefix(head))
    if header is None:
        raise Unprocessable("this file is not a readable .npy: no header in its first bytes")
    tail = await app_state(request).objects.get_range(key, max(0, size - 4), size)
    if tail is None or len(tail) != 4:
        raise Unprocessable("this .npy.gz is truncated")
    if int.from_bytes(tail, "little") != header.file_size % 2**32:
        check_size(header, int.from_bytes(tail, "little"))
    return header


@dataclass
class _Streamed:
    """A tensor too large to keep in memory: each slice is gathered as its bytes stream."""

    key: str
    header: NpyHeader
    gzip: bool


async def _npy_header(request: web.Request, key: str) -> tuple[NpyHeader, bool]:
    """The stored tensor's ``.npy`` header, and whether it is stored gzip'ed; 422 when its
    first bytes hold no header or the file is not as long as the header says."""
    size, head = await _stored(request, key)
    if head[:2] == GZIP_MAGIC:
        return await _gzip_header(request, key, size, head), True
    header = read_header(head)
    if header is None:
        raise Unprocessable("this file is not a readable .npy: no header in its first bytes")
    check_size(header, size)
    return header, False


async def _open_array(request: web.Request, run: Any, entry: Any) -> np.ndarray | _Streamed:
    """The tensor: a memory map of an uncompressed ``.npy`` in a local store (any size);
    an array in memory when it is small enough to keep (``KEEP_BYTES``), read at most two
    at a time; else a tensor whose slices are gathered while its bytes stream past (up to
    ``MAX_TENSOR_BYTES``, 413 beyond)."""
    state = app_state(request)
    key = blob_key(run.project_id, run.id, entry.sha256)
    header, gzip = await _npy_header(request, key)
    if not gzip:
        path = state.objects.local_path(key)
        if path is not None:
            return await asyncio.to_thread(open_npy_mmap, str(path), header)
    check_viewable(header)
    if header.nbytes > KEEP_BYTES:
        return _Streamed(key, header, gzip)
    async with _loading():
        loader = ArrayLoader(gzip)
        async for chunk in await _chunks(request, key):
            await asyncio.to_thread(loader.feed, chunk)
        return loader.finish()


async def _chunks(request: web.Request, key: str) -> AsyncIterator[bytes]:
    found = await app_state(request).objects.stream(key)
    if found is None:
        raise HttpError(404, "not_found", "the tensor's object is missing")
    return found[1]


async def _streamed_slice(
    request: web.Request, tensor: _Streamed, index: list[int | None], max_side: int
) -> dict[str, Any]:
    """One slice of a large stored tensor, gathered while it is read (and inflated)."""
    header = tensor.header
    offsets, kept, sr, sc = slice_offsets(header, index, max_side)
    slicer = StreamSlicer(header, offsets)
    inflater = Inflater(header.file_size) if tensor.gzip else None
    skip = header.offset  # the header's bytes come first

    def feed(chunk: bytes) -> None:
        nonlocal skip
        for piece in inflater.pieces(chunk) if inflater is not None else (chunk,):
            if skip:
                piece, skip = piece[skip:], max(0, skip - len(piece))
            slicer.feed(piece)

    async with _loading():
        async for chunk in await _chunks(request, tensor.key):
            await asyncio.to_thread(feed, chunk)
    return await asyncio.to_thread(lambda: slice_body(slicer.finish(), header, index, kept, sr, sc))


@routes.get(API_PREFIX + "/runs/{run_id}/tensor")
async def tensor_slice(request: web.Request) -> web.Response:
    """A 2-D slice of a logged tensor, as JSON (see the module docstring)."""
    arrays = app_state(request).arrays
    run, entry = await _tensor_file(request)
    try:
        max_side = int(request.query.get("max", "")[:12] or DEFAULT_SLICE_SIDE)
    except ValueError:
        raise HttpError(400, "bad_request", "max must be an integer") from None
    max_side = max(1, min(max_side, MAX_SLICE_SIDE))
    arr = arrays.get(entry.sha256)
    if arr is None:
        opened = await _open_array(request, run, entry)
        if isinstance(opened, _Streamed):
            index = parse_index(request.query.get("index"), len(opened.header.shape))
            return json_response(await _streamed_slice(request, opened, index, max_side))
        arr = opened
        if not isinstance(arr, np.memmap):  # a map costs no memory: nothing to keep
            arrays.put(entry.sha256, arr)
    index = parse_index(request.query.get("index"), arr.ndim)
    body = await asyncio.to_thread(take_slice, arr, index, max_side)
    return json_response(body)


@routes.get(API_PREFIX + "/runs/{run_id}/tensor.npy")
async def tensor_npy(request: web.Request) -> web.StreamResponse:
    """The tensor as a plain ``.npy`` download, streamed (inflated on the way when it was
    logged compressed): memory stays at a few MiB whatever the tensor's size."""
    state = app_state(request)
    run, entry = await _tensor_file(request)
    key = blob_key(run.project_id, run.id, entry.sha256)
    header, gzip = await _npy_header(request, key)
    name = request.query.get("name") or entry.sha256[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "tensor"
    if not safe.endswith(".npy"):
        safe += ".npy"
    found = await state.objects.stream(key)
    if found is None:
        raise HttpError(404, "not_found", "the tensor's object is missing")
    resp = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(header.file_size),
            "Content-Disposition": f'attachment; filename="{safe}"',
        }
    )
    await resp.prepare(request)
    inflater = Inflater(header.file_size) if gzip else None
    async for chunk in found[1]:
        if inflater is None:
            await resp.write(chunk)
            continue
        # A damaged stream past this point ends the connection short of Content-Length,
        # which every client reports as a failed download.
        pieces = inflater.pieces(chunk)  # one 1 MiB piece at a time, off the event loop
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            await resp.write(piece)
    if inflater is not None and (not inflater.eof or inflater.produced != header.file_size):
        raise ConnectionResetError("the stored .npy.gz ended early")
    await resp.write_eof()
    return resp


@routes.get(API_PREFIX + "/projects/{owner}/{project}/columns")
async def get_project_columns(request: web.Request) -> web.Response:
    """Tags, summary keys (logged or set explicitly) and dotted config keys of a project."""
    async with app_state(request).db.read() as conn:
        pid = await owned_project_id(request, conn)
        columns = await project_columns(conn, pid)
    return json_response(columns)
