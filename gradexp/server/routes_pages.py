"""Non-API paths: the health check, and the web UI's pages.

The web UI (a later issue) serves its files from ``gradexp/server/static/``; until that
folder holds an ``index.html``, the page paths answer with a small placeholder.
"""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from gradexp._protocol import VERSION
from gradexp.server.errors import json_response

STATIC_DIR = Path(__file__).resolve().parent / "static"
routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: no auth, no database."""
    return json_response({"ok": True, "version": VERSION})


_PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gradexp</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>gradexp server {version}</h1>
<p>The server is running. The web UI is not installed in this build; the API lives under
<code>/api/v1</code> (see <code>docs/protocol.md</code>). Read your runs from Python with
<code>gradexp.Api()</code>.</p>
<p>Requested page: <code>{path}</code></p>
</body></html>
"""


async def page(request: web.Request) -> web.StreamResponse:
    """A UI page: the single-page app's index.html if present, else the placeholder."""
    index = STATIC_DIR / "index.html"
    if index.is_file():
        return web.FileResponse(index)
    return web.Response(
        text=_PLACEHOLDER.format(version=VERSION, path=html.escape(request.path)),
        content_type="text/html",
    )


for _path in ("/", "/p/{owner}/{project}", "/r/{run_id}", "/r/{run_id}/gradients", "/compare"):
    routes.get(_path)(page)
