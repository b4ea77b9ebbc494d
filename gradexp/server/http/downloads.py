"""Sending an object from the store as a response, without holding it in memory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiohttp import web

from gradexp.server.http.errors import HttpError
from gradexp.server.http.state import app_state


async def stream_object(
    request: web.Request, key: str, content_type: str, filename: str | None = None
) -> web.StreamResponse:
    """Send object ``key`` (as an attachment named ``filename``, if given)."""
    found = await app_state(request).objects.stream(key)
    if found is None:
        raise HttpError(404, "not_found", "the object is missing from the object store")
    size, chunks = found
    resp = web.StreamResponse(headers={"Content-Type": content_type, "Content-Length": str(size)})
    if filename:
        resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    await resp.prepare(request)
    async for chunk in chunks:
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def stream_file(
    request: web.Request, path: Path, content_type: str, filename: str
) -> web.StreamResponse:
    """Send a local file as an attachment, 1 MiB at a time (read off the event loop)."""
    with open(path, "rb") as f:  # noqa: ASYNC230 - reads below go through a thread
        size = os.fstat(f.fileno()).st_size
        resp = web.StreamResponse(
            headers={
                "Content-Type": content_type,
                "Content-Length": str(size),
                "Content-Disposition": f'attachment; filename="{filename}"',
            }
        )
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(f.read, 1024 * 1024):
            await resp.write(chunk)
    await resp.write_eof()
    return resp
