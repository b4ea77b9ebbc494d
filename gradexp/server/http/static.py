"""Static files: the web UI's assets and the sign-in pages' stylesheet, script and mark.

Caching: the page shell names its assets under a version folder, ``/assets/v<hash>/...``,
where ``<hash>`` digests every asset file. Those URLs are immutable, so a browser fetches
each module once per release, and a new release changes every URL at once: an old page and
new modules never mix. ES module imports are relative (``./chart.js``), so they stay inside
the version folder without a bundler. ``/assets/<path>`` without a version also works
(revalidated each time). Neither route can reach outside its folder.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from gradexp.server.http.errors import HttpError
from gradexp.server.http.shell import ASSETS_DIR, STATIC_DIR
from gradexp.server.http.state import app_state

AUTH_DIR = STATIC_DIR / "auth"
IMMUTABLE = "public, max-age=31536000, immutable"

_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".json": "application/json",
}

routes = web.RouteTableDef()


def _asset_file(rel: str) -> Path:
    """The file under ``assets/`` a URL names; 404 for anything outside it."""
    if not rel or "\\" in rel or "\0" in rel:
        raise HttpError(404, "not_found", "no such asset")
    root = ASSETS_DIR.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HttpError(404, "not_found", f"no such asset: {rel}")
    return path


def _file_response(path: Path, cache_control: str) -> web.FileResponse:
    resp = web.FileResponse(path)
    ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    if ctype:
        resp.content_type = ctype
    resp.headers["Cache-Control"] = cache_control
    return resp


@routes.get(r"/assets/{version:v[0-9a-f]{12}}/{path:.+}")
async def versioned_asset(request: web.Request) -> web.StreamResponse:
    """An asset under the version folder: cached for good when the version is current."""
    path = _asset_file(request.match_info["path"])
    current = request.match_info["version"] == app_state(request).shell.version
    return _file_response(path, IMMUTABLE if current else "no-cache")


@routes.get("/assets/{path:.+}")
async def asset(request: web.Request) -> web.StreamResponse:
    """An asset by its plain path (revalidated on every use)."""
    return _file_response(_asset_file(request.match_info["path"]), "no-cache")


@routes.get(r"/static/auth/{name:[a-z]+\.(?:css|js|svg)}")
async def auth_file(request: web.Request) -> web.StreamResponse:
    """The sign-in pages' stylesheet, script and mark (a fixed folder, names without
    separators: no path traversal possible)."""
    path = AUTH_DIR / request.match_info["name"]
    if not path.is_file():
        raise HttpError(404, "not_found", "no such file")
    return _file_response(path, "no-cache")
