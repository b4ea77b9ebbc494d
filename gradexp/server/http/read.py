"""Read endpoints: the caller, projects, runs, history, histograms, files, Parquet."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain import files, history, teams
from gradexp.server.domain.alerts import list_alerts
from gradexp.server.domain.export import temporary_export
from gradexp.server.domain.projects import list_projects
from gradexp.server.domain.run_listing import RunFilter, list_runs, parse_order
from gradexp.server.domain.runs import find_run, find_run_role, run_objects
from gradexp.server.domain.writers import find_writer, object_run_id
from gradexp.server.http.downloads import stream_file, stream_object
from gradexp.server.http.errors import HttpError, json_response
from gradexp.server.http.params import int_param, keys_param, page_offset, project_id_role
from gradexp.server.http.sessions import USER
from gradexp.server.http.state import app_state, public_url
from gradexp.server.storage.objects import blob_key, export_key

routes = web.RouteTableDef()


@routes.get(API_PREFIX + "/viewer")
async def viewer(request: web.Request) -> web.Response:
    """The caller and the key they used."""
    user = request[USER]
    if user.share is not None:  # a share link's visitor: nobody
        return json_response({"user": None, "key": None, "teams": [], "shared": True})
    key = {"name": user.key_name, "prefix": user.key_prefix} if user.key_id is not None else None
    async with app_state(request).db.read() as conn:
        user_teams = await teams.user_teams(conn, user)
    return json_response(
        {"user": {"id": user.id, "name": user.name}, "key": key, "teams": user_teams}
    )


@routes.get(API_PREFIX + "/projects")
async def get_projects(request: web.Request) -> web.Response:
    """The projects the caller reaches (own, teams', shared with signed-in users), most
    recently active first, each with the caller's ``role``."""
    async with app_state(request).db.read() as conn:
        projects = await list_projects(conn, request[USER])
    return json_response({"projects": projects})


@routes.get(API_PREFIX + "/projects/{owner}/{project}/runs")
async def get_runs(request: web.Request) -> web.Response:
    """A project's runs, filtered, sorted and paginated."""
    state = app_state(request)
    order = parse_order(request.query.get("order", "-started_at"))
    limit = min(int_param(request, "limit", 50, minimum=1) or 50, 1000)
    offset = page_offset(request.query.get("cursor"))
    filters = RunFilter(
        state=request.query.get("state"),
        q=request.query.get("q"),
        tag=request.query.get("tag"),
        group=request.query.get("group"),
    )
    crash_after = state.settings.crash_after
    async with state.db.read() as conn:
        pid, role = await project_id_role(request, conn)
        rows, total = await list_runs(
            conn,
            state.db.kind,
            pid,
            filters,
            order=order,
            limit=limit,
            offset=offset,
            crash_after=crash_after,
        )
        objs = await run_objects(conn, rows, public_url(request), crash_after)
    next_cursor = str(offset + limit) if offset + limit < total else None
    return json_response(
        {"runs": objs, "next_cursor": next_cursor, "total": total, "role": role.label}
    )


@routes.get(API_PREFIX + "/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    """One run object."""
    state = app_state(request)
    async with state.db.read() as conn:
        row, role = await find_run_role(conn, request[USER], request.match_info["run_id"])
        (obj,) = await run_objects(conn, [row], public_url(request), state.settings.crash_after)
    return json_response({**obj, "role": role.label})


async def _rank_run(request: web.Request, conn: Any) -> Any:
    """The caller's run, or with ``?rank=N`` (N > 0) its writer of that rank: the history,
    keys, files and alerts that rank logged (docs/protocol.md, "Writers")."""
    rank = int_param(request, "rank", 0, minimum=0) or 0
    return await find_writer(conn, request[USER], request.match_info["run_id"], rank)


@routes.get(API_PREFIX + "/runs/{run_id}/keys")
async def get_keys(request: web.Request) -> web.Response:
    """The run's key index."""
    async with app_state(request).db.read() as conn:
        row = await _rank_run(request, conn)
        keys = await history.key_index(conn, row.pk)
    for k in keys:
        del k["_id"]
    return json_response({"keys": keys})


@routes.get(API_PREFIX + "/runs/{run_id}/history")
async def get_history(request: web.Request) -> web.Response:
    """Downsampled series for chosen keys (all numeric keys if none are named)."""
    wanted = keys_param(request)
    samples = history.clamp_samples(int_param(request, "samples", None, minimum=1))
    min_step = int_param(request, "min_step", None, minimum=0)
    max_step = int_param(request, "max_step", None, minimum=0)
    async with app_state(request).db.read() as conn:
        row = await _rank_run(request, conn)
        series = await history.series(conn, row.pk, wanted, min_step, max_step, samples)
    return json_response({"series": series})


@routes.get(API_PREFIX + "/runs/{run_id}/history/rows")
async def get_history_rows(request: web.Request) -> web.Response:
    """Every row, in sequence order, paginated by ``after_seq``."""
    wanted = keys_param(request)
    limit = min(int_param(request, "limit", 10_000, minimum=1) or 10_000, 100_000)
    async with app_state(request).db.read() as conn:
        row = await _rank_run(request, conn)
        rows, next_after = await history.read_rows(
            conn,
            row.pk,
            after_seq=int_param(request, "after_seq", 0, minimum=0) or 0,
            max_seq=row.acked_seq,
            keys=set(wanted) if wanted is not None else None,
            min_step=int_param(request, "min_step", None, minimum=0),
            max_step=int_param(request, "max_step", None, minimum=0),
            limit=limit,
        )
    return json_response({"rows": rows, "next_after_seq": next_after})


@routes.get(API_PREFIX + "/runs/{run_id}/histograms")
async def get_histograms(request: web.Request) -> web.Response:
    """One histogram key's values over steps, at most ``samples`` rows (for a heatmap)."""
    key = request.query.get("key")
    if not key:
        raise HttpError(400, "bad_request", "pass the histogram's key: ?key=NAME")
    samples = history.clamp_samples(int_param(request, "samples", None, minimum=1), default=200)
    async with app_state(request).db.read() as conn:
        row = await _rank_run(request, conn)
        info = await history.typed_key(conn, row, key)
        lo = int_param(request, "min_step", info["first_step"], minimum=0)
        hi = int_param(request, "max_step", info["last_step"], minimum=0)
        out = await history.histogram_series(
            conn, row.pk, info, lo or 0, hi if hi is not None else 0, samples
        )
    return json_response(out)


@routes.get(API_PREFIX + "/runs/{run_id}/alerts")
async def get_alerts(request: web.Request) -> web.Response:
    """The run's alerts (the latest 1,000), oldest first."""
    async with app_state(request).db.read() as conn:
        row = await _rank_run(request, conn)
        listing = await list_alerts(conn, row.pk)
    return json_response({"alerts": listing})


@routes.get(API_PREFIX + "/runs/{run_id}/files")
async def get_files(request: web.Request) -> web.Response:
    """The run's file index."""
    async with app_state(request).db.read() as conn:
        row = await _rank_run(request, conn)
        listing = await files.list_files(conn, row.pk)
    return json_response({"files": listing})


@routes.get(API_PREFIX + "/runs/{run_id}/files/{path:.+}")
async def get_file(request: web.Request) -> web.StreamResponse:
    """A run file's bytes (looked up in the index: the path never touches the filesystem)."""
    async with app_state(request).db.read() as conn:
        row = await _rank_run(request, conn)
        entry = await files.find_file(conn, row, request.match_info["path"])
    return await stream_object(
        request, blob_key(row.project_id, object_run_id(row), entry.sha256), entry.content_type
    )


@routes.get(API_PREFIX + "/runs/{run_id}/history.parquet")
async def get_parquet(request: web.Request) -> web.StreamResponse:
    """The run's history as Parquet: the stored export when current, else made now."""
    state = app_state(request)
    async with state.db.read() as conn:
        row = await find_run(conn, request[USER], request.match_info["run_id"])
    key = export_key(row.project_id, row.id)
    filename = f"{row.id}-history.parquet"
    if (
        row.exported_seq is not None
        and row.exported_seq >= row.acked_seq
        and await state.objects.exists(key)
    ):
        return await stream_object(request, key, "application/vnd.apache.parquet", filename)
    async with temporary_export(state.db, row.pk) as path:
        return await stream_file(request, path, "application/vnd.apache.parquet", filename)
