"""The health check: ``GET /healthz`` (no auth, no database)."""

from __future__ import annotations

from aiohttp import web

from gradexp.protocol.wire import VERSION
from gradexp.server.http.errors import json_response
from gradexp.server.http.state import app_state

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness. ``streams``: live (SSE) streams open in this process; ``worker_batches``:
    ingest batches its decode workers have decoded (domain/decode_pool.py)."""
    state = app_state(request)
    return json_response(
        {
            "ok": True,
            "version": VERSION,
            "streams": state.live.open_streams,
            "worker_batches": state.decode_pool.decoded_in_workers,
        }
    )
