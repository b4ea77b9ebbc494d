"""Non-API paths: the health check. (The web UI's pages are in ``routes_ui.py``.)"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gradexp.protocol.wire import VERSION
from gradexp.server.decode_pool import shared_pool
from gradexp.server.errors import json_response

STATIC_DIR = Path(__file__).resolve().parent / "static"
routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: no auth, no database. ``streams``: live (SSE) streams open in this process;
    ``worker_batches``: ingest batches its decode workers have decoded (decode_pool.py)."""
    state = request.app.get("state")
    streams = state.notifier.open_streams if state is not None else 0
    return json_response(
        {
            "ok": True,
            "version": VERSION,
            "streams": streams,
            "worker_batches": shared_pool().decoded_in_workers,
        }
    )
