"""Reading request bodies within the protocol's limits (size, ``Content-Encoding``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from gradexp.protocol.wire import MAX_BODY_BYTES, MAX_DECOMPRESSED_BYTES
from gradexp.server.domain.bodies import Inflater
from gradexp.server.http.errors import HttpError

CHUNK_BYTES = 256 * 1024
# Forms and the small JSON APIs: plenty for a user name, a password (1,024 characters at
# most) and a token, and small enough that anonymous posts to /login cost nothing.
SMALL_BODY_BYTES = 64 * 1024


def body_is_gzip(content_encoding: str) -> bool:
    """Whether a body with this ``Content-Encoding`` is gzip'ed; a 415 for anything but
    gzip and no encoding."""
    encoding = content_encoding.strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise HttpError(
            415,
            "unsupported_media_type",
            f"Content-Encoding {content_encoding!r} is not supported: send gzip or no encoding",
        )
    return encoding in ("gzip", "x-gzip")


async def chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, in chunks of up to 256 KiB."""
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        yield chunk


async def read_exactly(request: web.Request, length: int, what: str) -> bytes:
    """A body of exactly ``length`` bytes (a part of an upload), read into one buffer;
    400 for a body of another length."""
    wrong = HttpError(400, "bad_request", f"{what} must be {length} bytes long")
    if request.content_length is not None and request.content_length != length:
        raise wrong
    try:
        data = await request.content.readexactly(length)
    except asyncio.IncompleteReadError:
        raise wrong from None
    if await request.content.read(1):
        raise wrong
    return data


async def read_body(
    request: web.Request,
    *,
    max_body: int = MAX_BODY_BYTES,
    max_decompressed: int = MAX_DECOMPRESSED_BYTES,
    inflate: bool = True,
) -> bytes:
    """Read a request body within the size limits, gunzipping it incrementally.

    The compressed size is checked against ``Content-Length`` before reading and again
    while reading (a chunked body has no length). Decompression is bounded (see
    :class:`~gradexp.server.domain.bodies.Inflater`). ``inflate=False`` returns a gzip'ed
    body as it came (checked for size only), for a decode worker to inflate.
    """
    gzip = body_is_gzip(request.headers.get("Content-Encoding", "")) and inflate
    if request.content_length is not None and request.content_length > max_body:
        raise _too_large(max_body)
    inflater = Inflater(max_decompressed) if gzip else None
    out: list[bytes] = []
    received = 0
    async for chunk in chunks(request):
        received += len(chunk)
        if received > max_body:
            raise _too_large(max_body)
        if inflater is None:
            out.append(chunk)
        else:
            inflater.feed(chunk, out)
    if inflater is not None:
        inflater.finish()
    return b"".join(out)


def _too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        "payload_too_large",
        f"the request body is over {limit // (1024 * 1024)} MiB: send smaller batches",
    )


async def read_small_body(request: web.Request, what: str = "request body") -> bytes:
    """A body of at most :data:`SMALL_BODY_BYTES` (forms, the keys and token APIs): a
    ``Content-Length`` past it is answered 413 before a byte of the body is read, and a
    chunked body is cut off there."""
    limit = SMALL_BODY_BYTES
    too_large = HttpError(
        413, "payload_too_large", f"this {what} is over {limit // 1024} KiB: send less"
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        return await read_body(request, max_body=limit, max_decompressed=limit)
    except HttpError as exc:
        if exc.status == 413:
            raise too_large from None
        raise


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """A small JSON object body (the keys and token APIs); 400 for anything else."""
    try:
        body = orjson.loads(await read_small_body(request))
    except orjson.JSONDecodeError:
        raise HttpError(400, "bad_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "bad_request", "the request body must be a JSON object")
    return body
