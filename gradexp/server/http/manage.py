"""Changing runs and projects (documented in docs/protocol.md, "Managing runs"):

- ``PATCH /api/v1/runs/{run_id}`` ``{"name"?, "notes"?, "tags"?}``: the run object, changed;
- ``DELETE /api/v1/runs/{run_id}``: delete one run;
- ``POST /api/v1/projects/{owner}/{project}/runs/delete`` ``{"ids": [...]}``: delete several
  runs of a project, all or none;
- ``DELETE /api/v1/projects/{owner}/{project}``: delete a project and all its runs.

A deletion answers once the runs are gone from every read; their storage is reclaimed in
the background (``domain/reclaim.py``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain.bodies import parse_json
from gradexp.server.domain.errors import Invalid
from gradexp.server.domain.manage import (
    delete_project,
    delete_runs,
    update_run,
    validate_changes,
)
from gradexp.server.domain.runs import run_objects
from gradexp.server.http.bodies import read_body
from gradexp.server.http.errors import json_response
from gradexp.server.http.params import owned_project_id
from gradexp.server.http.sessions import USER
from gradexp.server.http.state import app_state, public_url

routes = web.RouteTableDef()

MAX_BODY = 1024 * 1024


async def _json(request: web.Request) -> Any:
    return parse_json(await read_body(request, max_body=MAX_BODY, max_decompressed=MAX_BODY))


@routes.patch(API_PREFIX + "/runs/{run_id}")
async def patch_run(request: web.Request) -> web.Response:
    """Rename a run, or change its notes or tags; open pages see it live."""
    state = app_state(request)
    changes = validate_changes(await _json(request))
    row = await update_run(state.db, request[USER], request.match_info["run_id"], changes)
    state.live.notify(row.project_id, row.pk)
    async with state.db.read() as conn:
        (obj,) = await run_objects(conn, [row], public_url(request), state.settings.crash_after)
    return json_response(obj)


def _deleted(request: web.Request, gone: list[Any]) -> list[str]:
    state = app_state(request)
    for pk, _run_id, project_id in gone:
        state.live.notify(project_id, pk)
    state.reclaimer.wake()
    return [run_id for _pk, run_id, _project_id in gone]


@routes.delete(API_PREFIX + "/runs/{run_id}")
async def delete_run(request: web.Request) -> web.Response:
    """Delete one run."""
    gone = await delete_runs(app_state(request).db, request[USER], [request.match_info["run_id"]])
    return json_response({"deleted": _deleted(request, gone)})


@routes.post(API_PREFIX + "/projects/{owner}/{project}/runs/delete")
async def delete_project_runs(request: web.Request) -> web.Response:
    """Delete several runs of one project (all or none)."""
    state = app_state(request)
    body = await _json(request)
    ids = body.get("ids") if type(body) is dict else None
    if type(ids) is not list or not all(type(i) is str for i in ids):
        raise Invalid('the body must be {"ids": [run id, ...]}')
    async with state.db.read() as conn:
        project_id = await owned_project_id(request, conn)
    gone = await delete_runs(state.db, request[USER], ids, project_id=project_id)
    return json_response({"deleted": _deleted(request, gone)})


@routes.delete(API_PREFIX + "/projects/{owner}/{project}")
async def delete_whole_project(request: web.Request) -> web.Response:
    """Delete a project and every run in it."""
    owner, name = request.match_info["owner"], request.match_info["project"]
    gone = await delete_project(app_state(request).db, request[USER], owner, name)
    return json_response({"deleted": f"{owner}/{name}", "runs": _deleted(request, gone)})
