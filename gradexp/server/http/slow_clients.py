"""Clients that send too slowly: deadlines on reading a request's head and its body.

A connection that dribbles its request (a byte of a header now and then, or a body that
never ends) would otherwise hold a socket and a handler for as long as it likes, and enough
of them would hold the whole server (slowloris). Two bounds, both from
``GRADEXP_SERVER_READ_TIMEOUT`` (``read_timeout``, default 30 s):

- **the request head**: aiohttp closes a connection whose request line and headers have not
  all arrived ``read_timeout`` seconds after the connection opened, or after the previous
  response on it (its keep-alive timer, which also closes idle connections then);
- **the body**: :func:`body_deadline_middleware` closes the connection of a request whose
  body falls behind ``read_timeout`` seconds plus one second per :data:`MIN_BODY_RATE`
  bytes received (so a body must keep arriving at 16 KiB/s on average, after a grace of
  ``read_timeout``; a fast upload of any size is never cut).

Once the handler has answered, a body left unread is drained and thrown away for at most
aiohttp's lingering time (10 s) before the connection closes.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web

from gradexp.server.http.errors import Handler
from gradexp.server.http.state import app_state

log = logging.getLogger("gradexp.server")

MIN_BODY_RATE = 16 * 1024  # bytes per second a body must average, after the grace period


@web.middleware
async def body_deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Close the connection of a request whose body arrives slower than the deadline allows
    (see the module's docstring)."""
    if not request.body_exists or request.content.is_eof():
        return await handler(request)
    loop = asyncio.get_running_loop()
    grace = app_state(request).settings.read_timeout
    started = loop.time()
    timer: asyncio.TimerHandle | None = None
    cut_off = False

    def check() -> None:
        nonlocal timer, cut_off
        content = request.content
        if content.is_eof():
            timer = None
            return
        due = started + grace + content.total_bytes / MIN_BODY_RATE
        if loop.time() < due:
            timer = loop.call_at(due, check)
            return
        timer = None
        cut_off = True
        log.info(
            "closed a connection from %s: its %s %s body arrived too slowly (%d bytes in %.0f s)",
            request.remote,
            request.method,
            request.path,
            content.total_bytes,
            loop.time() - started,
        )
        transport = request.transport
        if transport is not None:
            transport.close()  # the handler's read fails, and the socket is free

    timer = loop.call_at(started + grace, check)
    try:
        return await handler(request)
    except (ConnectionResetError, aiohttp.ClientPayloadError):
        if not cut_off:
            raise
        # Our own doing, logged above: no traceback. Nobody is left to read this answer.
        return web.Response(status=408, text="the request body arrived too slowly")
    finally:
        if timer is not None:
            timer.cancel()
