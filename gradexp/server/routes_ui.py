"""The web UI's pages, its static assets, and the security headers every response carries.

The UI is a set of plain ES modules under ``static/assets/`` (no build step). Every page
path answers with the same small HTML shell (``static/index.html``); the JavaScript reads
the path and draws the page from the read API.

Caching: the shell is never cached (``no-cache``), and it names its assets under a
version folder, ``/assets/v<hash>/...``, where ``<hash>`` digests every asset file. Those
URLs are immutable, so a browser fetches each module once per release, and a new release
changes every URL at once: an old page and new modules never mix. ES module imports are
relative (``./chart.js``), so they stay inside the version folder without a bundler.
``/assets/<path>`` without a version also works (revalidated each time).

Security headers are added in one place (``on_response_prepare``) so no route can forget
them: pages get a Content-Security-Policy that allows only this origin's scripts and
styles (no inline script, no ``unsafe-inline`` or ``unsafe-eval``); everything else (API
replies, run files) gets ``sandbox`` and ``default-src 'none'``, so a file a user logged
as ``text/html`` can never run script on this origin, even if opened directly.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import os
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from gradexp.protocol.names import RUN_ID_RE
from gradexp.protocol.wire import API_PREFIX
from gradexp.server.errors import ApiError
from gradexp.server.routes_auth import page_redirect

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS_DIR = STATIC_DIR / "assets"
INDEX_FILE = STATIC_DIR / "index.html"

PAGE_PATHS = ("/", "/p/{owner}/{project}", "/r/{run_id}", "/r/{run_id}/gradients", "/compare")

# Where a notebook may embed the pages (``run.display()``): this origin and any local
# Jupyter. Operators widen or narrow it with GRADEXP_SERVER_FRAME_ANCESTORS.
DEFAULT_FRAME_ANCESTORS = "'self' http://localhost:* http://127.0.0.1:* https://localhost:*"

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors {ancestors}"
)
# For every non-page response: nothing may load or run if someone opens it as a document.
OTHER_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"

IMMUTABLE = "public, max-age=31536000, immutable"

routes = web.RouteTableDef()


def _asset_version(root: Path) -> str:
    """A short digest of every asset's path and bytes: the cache-busting folder name."""
    digest = hashlib.sha256()
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
    return "v" + digest.hexdigest()[:12]


class Shell:
    """The page shell with the asset URLs filled in, computed once per process."""

    def __init__(self, index: Path = INDEX_FILE, assets: Path = ASSETS_DIR) -> None:
        self.version = _asset_version(assets)
        base = f"/assets/{self.version}"
        # Every module is announced up front, so the browser fetches them all at once
        # instead of discovering the import graph one level per round trip.
        modules = sorted(p.relative_to(assets).as_posix() for p in assets.rglob("*.js"))
        preload = "\n".join(f'<link rel="modulepreload" href="{base}/{m}">' for m in modules)
        template = index.read_text(encoding="utf-8")
        self.template = template.replace("{{modulepreload}}", preload).replace("{{assets}}", base)

    def render(self, fetches: list[str]) -> bytes:
        """The shell, with ``<link rel=preload>`` for API reads the page is about to make."""
        links = "\n".join(
            f'<link rel="preload" as="fetch" crossorigin="use-credentials" href="{html.escape(u)}">'
            for u in fetches
        )
        return self.template.replace("{{preload}}", links).encode()


_shell: Shell | None = None


def shell() -> Shell:
    """The process's shell (read lazily so importing this module touches no files)."""
    global _shell
    if _shell is None:
        _shell = Shell()
    return _shell


def frame_ancestors() -> str:
    """The CSP ``frame-ancestors`` sources for pages."""
    return os.environ.get("GRADEXP_SERVER_FRAME_ANCESTORS", DEFAULT_FRAME_ANCESTORS).strip()


async def page(request: web.Request) -> web.StreamResponse:
    """Any UI page: the shell; the scripts draw the page named by the path.

    A signed-out visitor is sent to sign-in first (``routes_auth.page_redirect``). An
    embedded page (``?embed=1``, a notebook's iframe) is not: the sign-in page refuses to be
    framed, so the embedded page itself offers a link that signs in in a new tab.
    """
    if request.query.get("embed") != "1":
        redirect = await page_redirect(request)
        if redirect is not None:
            return redirect
    resp = web.Response(body=shell().render(preloads(request)), content_type="text/html")
    resp.charset = "utf-8"
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def preloads(request: web.Request) -> list[str]:
    """API reads the page will make first, so the browser starts them while it is still
    fetching the modules: the viewer (top bar); the projects; a run page's run and keys; a
    runs table's column list and (with no filters in the URL) its first page, exactly as
    ``pages/runs.js`` asks for it."""
    urls = [f"{API_PREFIX}/viewer"]  # the top bar's "signed in as"
    if request.path == "/":
        return [f"{API_PREFIX}/projects", *urls]
    run_id = request.match_info.get("run_id")
    if run_id is not None:
        if not RUN_ID_RE.fullmatch(run_id):
            return urls
        return [f"{API_PREFIX}/runs/{run_id}", f"{API_PREFIX}/runs/{run_id}/keys", *urls]
    owner, project = request.match_info.get("owner"), request.match_info.get("project")
    if owner is None or project is None:
        return urls
    base = f"{API_PREFIX}/projects/{quote(owner, safe='')}/{quote(project, safe='')}"
    urls.append(f"{base}/columns")
    if not request.query:
        urls.append(f"{base}/runs?order=-started_at&limit=50")
    return urls


for _path in PAGE_PATHS:
    routes.get(_path)(page)


def _asset_file(rel: str) -> Path:
    """The file under ``assets/`` a URL names; 404 for anything outside it."""
    if not rel or "\\" in rel or "\0" in rel:
        raise ApiError(404, "not_found", "no such asset")
    root = ASSETS_DIR.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "not_found", f"no such asset: {rel}")
    return path


_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".json": "application/json",
}


def _asset_response(path: Path, cache_control: str) -> web.FileResponse:
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
    current = request.match_info["version"] == shell().version
    return _asset_response(path, IMMUTABLE if current else "no-cache")


@routes.get("/assets/{path:.+}")
async def asset(request: web.Request) -> web.StreamResponse:
    """An asset by its plain path (revalidated on every use)."""
    return _asset_response(_asset_file(request.match_info["path"]), "no-cache")


def _is_page(request: web.Request, response: web.StreamResponse) -> bool:
    ctype = response.headers.get("Content-Type", "")
    return ctype.startswith("text/html") and not request.path.startswith("/api/")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the CSP and friends, unless a route set its own."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if "Content-Security-Policy" in headers:
        return
    if _is_page(request, response):
        headers["Content-Security-Policy"] = PAGE_CSP.format(ancestors=frame_ancestors())
    elif not request.path.startswith("/assets/"):
        headers["Content-Security-Policy"] = OTHER_CSP


def setup(app: web.Application) -> None:
    """Add the UI's routes and headers to the app."""
    from gradexp.server import routes_ui_api

    app.add_routes(routes)
    app.add_routes(routes_ui_api.routes)
    app.on_response_prepare.append(add_security_headers)


__all__ = ["PAGE_PATHS", "STATIC_DIR", "add_security_headers", "page", "routes", "setup", "shell"]
