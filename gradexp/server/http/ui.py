"""The web UI's pages: every page path answers with the shell (``http/shell.py``).

The UI is a set of plain ES modules under ``static/assets/`` (no build step), served by
``http/static.py``; the JavaScript reads the path and draws the page from the read API.
The shell is never cached (``no-cache``).
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain.names import run_id_problem
from gradexp.server.http.sessions import page_redirect
from gradexp.server.http.state import app_state

PAGE_PATHS = (
    "/",
    "/p/{owner}/{project}",
    "/p/{owner}/{project}/artifacts",
    "/r/{run_id}",
    "/r/{run_id}/gradients",
    "/compare",
    "/t/{team}",
)

routes = web.RouteTableDef()


async def page(request: web.Request) -> web.StreamResponse:
    """Any UI page: the shell; the scripts draw the page named by the path.

    A signed-out visitor is sent to sign-in first (``sessions.page_redirect``). An
    embedded page (``?embed=1``, a notebook's iframe) is not: the sign-in page refuses to be
    framed, so the embedded page itself offers a link that signs in in a new tab.
    """
    if request.query.get("embed") != "1":
        redirect = await page_redirect(request)
        if redirect is not None:
            return redirect
    shell = app_state(request).shell
    resp = web.Response(body=shell.render(preloads(request)), content_type="text/html")
    resp.charset = "utf-8"
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def preloads(request: web.Request) -> list[str]:
    """API reads the page will make first, so the browser starts them while it is still
    fetching the modules: the viewer (top bar); the projects; a run page's run, keys and
    alerts; a runs table's column list and (with no filters in the URL) its first page,
    exactly as ``pages/runs.js`` asks for it."""
    urls = [f"{API_PREFIX}/viewer"]  # the top bar's "signed in as"
    if request.path == "/":
        return [f"{API_PREFIX}/projects", *urls]
    run_id = request.match_info.get("run_id")
    if run_id is not None:
        if run_id_problem(run_id) is not None:
            return urls
        run_urls = [f"{API_PREFIX}/runs/{run_id}", f"{API_PREFIX}/runs/{run_id}/keys"]
        if not request.path.endswith("/gradients"):
            run_urls.append(f"{API_PREFIX}/runs/{run_id}/alerts")  # the run page's alerts
        return [*run_urls, *urls]
    owner, project = request.match_info.get("owner"), request.match_info.get("project")
    if owner is None or project is None:
        return urls
    base = f"{API_PREFIX}/projects/{quote(owner, safe='')}/{quote(project, safe='')}"
    urls.append(f"{base}/columns")
    if request.path.endswith("/artifacts"):
        return [f"{base}/artifacts", *urls]
    if not request.query:
        urls.append(f"{base}/runs?order=-started_at&limit=50")
    return urls


for _path in PAGE_PATHS:
    routes.get(_path)(page)


@routes.get(r"/s/{token:[A-Za-z0-9_-]{40,64}}")
async def shared_page(request: web.Request) -> web.StreamResponse:
    """A share link's page: the shell, for anyone (the API checks the token)."""
    resp = web.Response(body=app_state(request).shell.render([]), content_type="text/html")
    resp.charset = "utf-8"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return resp
