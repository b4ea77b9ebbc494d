"""Live endpoints: Server-Sent Events per run and per project (see ``live.py``)."""

from __future__ import annotations

from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.errors import ApiError
from gradexp.server.live import stream_project, stream_run
from gradexp.server.routes_read import owned_project
from gradexp.server.runs import find_run
from gradexp.server.state import AppState

routes = web.RouteTableDef()


@routes.get(API_PREFIX + "/runs/{run_id}/events")
async def run_events(request: web.Request) -> web.StreamResponse:
    """New rows and state changes of one run; resumable with ``Last-Event-ID``."""
    state: AppState = request.app["state"]
    raw = request.headers.get("Last-Event-ID") or request.query.get("after_seq") or "0"
    try:
        after = int(raw)
    except ValueError:
        raise ApiError(
            400, "bad_request", "Last-Event-ID / after_seq must be a sequence number"
        ) from None
    if after < 0:
        raise ApiError(400, "bad_request", "Last-Event-ID / after_seq must be >= 0")
    async with state.db.read() as conn:
        run = await find_run(conn, request["user"], request.match_info["run_id"])
    return await stream_run(request, run, after)


@routes.get(API_PREFIX + "/projects/{owner}/{project}/events")
async def project_events(request: web.Request) -> web.StreamResponse:
    """Run changes and new rows of every run in a project; resumable with ``Last-Event-ID``.

    ``?rows=0`` sends run events only (a runs table has no use for history rows)."""
    state: AppState = request.app["state"]
    async with state.db.read() as conn:
        project_id = await owned_project(request, conn)
    token = request.headers.get("Last-Event-ID") or request.query.get("cursor")
    rows = request.query.get("rows", "1")
    if rows not in ("0", "1"):
        raise ApiError(400, "bad_request", "rows must be 0 (run events only) or 1 (the default)")
    return await stream_project(request, project_id, token, with_rows=rows == "1")
