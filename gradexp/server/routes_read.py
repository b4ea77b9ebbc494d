"""Read endpoints: who am I, projects, runs, keys, history, histograms, files, exports."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import and_, func, or_, select

from gradexp.protocol.wire import API_PREFIX, STAT_SEPARATOR
from gradexp.server import schema as s
from gradexp.server.errors import ApiError, json_response
from gradexp.server.history import (
    clamp_samples,
    downsample,
    key_index,
    keys_named,
    read_rows,
    typed_series,
)
from gradexp.server.objects import export_key
from gradexp.server.routes_ingest import stream_object
from gradexp.server.runs import (
    VALUE_ORDER_PREFIXES,
    find_run,
    run_objects,
    run_query,
    value_order,
)
from gradexp.server.state import AppState, base_url

routes = web.RouteTableDef()


def _int_param(
    request: web.Request, name: str, default: int | None = None, minimum: int | None = None
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400, "bad_request", f"query parameter {name} must be an integer, got {raw!r}"
        ) from None
    if minimum is not None and value < minimum:
        raise ApiError(400, "bad_request", f"query parameter {name} must be >= {minimum}")
    return value


def _keys_param(request: web.Request) -> list[str] | None:
    raw = request.query.get("keys")
    if raw is None or raw == "":
        return None
    return [k for k in raw.split(",") if k]


@routes.get(API_PREFIX + "/viewer")
async def viewer(request: web.Request) -> web.Response:
    """The caller and the key they used."""
    user = request["user"]
    key = {"name": user.key_name, "prefix": user.key_prefix} if user.key_id is not None else None
    return json_response({"user": {"id": user.id, "name": user.name}, "key": key})


@routes.get(API_PREFIX + "/projects")
async def list_projects(request: web.Request) -> web.Response:
    """The caller's projects, most recently active first."""
    state: AppState = request.app["state"]
    user = request["user"]
    p, r = s.projects, s.runs
    async with state.db.read() as conn:
        result = await conn.execute(
            select(
                p.c.name,
                p.c.created_at,
                func.count(r.c.pk).label("run_count"),
                func.max(r.c.started_at).label("last_run_at"),
            )
            .select_from(p.outerjoin(r, r.c.project_id == p.c.id))
            .where(p.c.owner_id == user.id)
            .group_by(p.c.id, p.c.name, p.c.created_at)
        )
        rows = result.all()
    projects = [
        {
            "owner": user.name,
            "name": row.name,
            "run_count": row.run_count,
            "last_run_at": row.last_run_at,
            "created_at": row.created_at,
        }
        for row in rows
    ]
    projects.sort(key=lambda x: -(x["last_run_at"] or x["created_at"]))
    return json_response({"projects": projects})


async def owned_project(request: web.Request, conn: Any) -> int:
    """The id of ``{owner}/{project}`` if the caller may see it, else 404."""
    user = request["user"]
    owner, name = request.match_info["owner"], request.match_info["project"]
    pid = None
    if owner == user.name:
        pid = (
            await conn.execute(
                select(s.projects.c.id).where(
                    s.projects.c.owner_id == user.id, s.projects.c.name == name
                )
            )
        ).scalar()
    if pid is None:
        raise ApiError(404, "project_not_found", f"project {owner}/{name} not found")
    return int(pid)


_ORDERS = {
    "started_at": s.runs.c.started_at,
    "name": s.runs.c.name,
    "state": s.runs.c.state,
    "last_step": s.runs.c.last_step,
    "heartbeat_at": s.runs.c.heartbeat_at,
    "finished_at": s.runs.c.finished_at,
}


def _decode_cursor(raw: str | None) -> int:
    if not raw:
        return 0
    try:
        return max(0, int(raw))
    except ValueError:
        raise ApiError(
            400, "bad_request", "invalid cursor: pass next_cursor from the previous page"
        ) from None


@routes.get(API_PREFIX + "/projects/{owner}/{project}/runs")
async def list_runs(request: web.Request) -> web.Response:
    """A project's runs, filtered, sorted and paginated."""
    state: AppState = request.app["state"]
    order = request.query.get("order", "-started_at")
    desc = order.startswith("-")
    field = order[1:] if order[:1] in "-+" and order else order
    column = _ORDERS.get(field)
    by_value = field.startswith(VALUE_ORDER_PREFIXES) and len(field.partition(":")[2]) > 0
    if column is None and not by_value:
        raise ApiError(
            400,
            "bad_request",
            f"cannot order by {order!r}; use one of {', '.join(sorted(_ORDERS))}, "
            "summary:KEY or config:KEY (prefix - for descending)",
        )
    limit = _int_param(request, "limit", 50, minimum=1) or 50
    limit = min(limit, 1000)
    offset = _decode_cursor(request.query.get("cursor"))
    async with state.db.read() as conn:
        pid = await owned_project(request, conn)
        cond: list[Any] = [s.runs.c.project_id == pid]
        wanted_state = request.query.get("state")
        crash_cutoff = time.time() - state.settings.crash_after
        if wanted_state == "crashed":
            cond += [s.runs.c.state == "running", s.runs.c.heartbeat_at < crash_cutoff]
        elif wanted_state == "running":
            cond += [s.runs.c.state == "running", s.runs.c.heartbeat_at >= crash_cutoff]
        elif wanted_state:
            cond.append(s.runs.c.state == wanted_state)
        q = request.query.get("q")
        if q:
            like = f"%{q.replace('%', '').replace('_', '')}%"
            cond.append(or_(s.runs.c.name.like(like), s.runs.c.id.like(like)))
        tag = request.query.get("tag")
        if tag:
            # tags are a JSON list of strings; the quoted form matches exactly one tag.
            cond.append(s.runs.c.tags.contains(orjson.dumps(tag).decode()))
        group = request.query.get("group")
        if group:
            cond.append(s.runs.c.group_name == group)
        total = (
            await conn.execute(select(func.count()).select_from(s.runs).where(and_(*cond)))
        ).scalar_one()
        if column is not None:
            ordering = [column.desc() if desc else column.asc()]
        else:
            ordering = value_order(state.db.kind, field, desc)
        ordering.append(s.runs.c.pk.desc() if desc else s.runs.c.pk.asc())
        rows = (
            await conn.execute(
                run_query().where(*cond).order_by(*ordering).limit(limit).offset(offset)
            )
        ).all()
        objs = await run_objects(conn, list(rows), base_url(request), state.settings.crash_after)
    next_cursor = str(offset + limit) if offset + limit < total else None
    return json_response({"runs": objs, "next_cursor": next_cursor, "total": total})


@routes.get(API_PREFIX + "/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    """One run object."""
    state: AppState = request.app["state"]
    async with state.db.read() as conn:
        row = await find_run(conn, request["user"], request.match_info["run_id"])
        (obj,) = await run_objects(conn, [row], base_url(request), state.settings.crash_after)
    return json_response(obj)


@routes.get(API_PREFIX + "/runs/{run_id}/keys")
async def get_keys(request: web.Request) -> web.Response:
    """The run's key index."""
    state: AppState = request.app["state"]
    async with state.db.read() as conn:
        row = await find_run(conn, request["user"], request.match_info["run_id"])
        keys = await key_index(conn, row.pk)
    for k in keys:
        del k["_id"]
    return json_response({"keys": keys})


@routes.get(API_PREFIX + "/runs/{run_id}/history")
async def get_history(request: web.Request) -> web.Response:
    """Downsampled series for chosen keys (all numeric keys if none are named)."""
    state: AppState = request.app["state"]
    wanted = _keys_param(request)
    samples = clamp_samples(_int_param(request, "samples", None, minimum=1))
    min_step = _int_param(request, "min_step", None, minimum=0)
    max_step = _int_param(request, "max_step", None, minimum=0)
    async with state.db.read() as conn:
        row = await find_run(conn, request["user"], request.match_info["run_id"])
        if wanted is None:
            index = {k["key"]: k for k in await key_index(conn, row.pk)}
            wanted = [k for k, v in index.items() if v["kind"] in ("number", "bool")]
        else:
            index = await keys_named(conn, row.pk, wanted)
        present = [
            (k, index[k]["_id"])
            for k in wanted
            if k in index and index[k]["kind"] in ("number", "bool")
        ]
        series: dict[str, Any] = {
            k: {"step": [], "value": [], "min": [], "max": [], "time": []} for k in wanted
        }
        if present:
            lo = (
                min_step
                if min_step is not None
                else min(index[k]["first_step"] for k, _ in present)
            )
            hi = (
                max_step if max_step is not None else max(index[k]["last_step"] for k, _ in present)
            )
            if lo <= hi:
                series.update(await downsample(conn, row.pk, present, lo, hi, samples))
    return json_response({"series": series})


@routes.get(API_PREFIX + "/runs/{run_id}/history/rows")
async def get_history_rows(request: web.Request) -> web.Response:
    """Every row, in sequence order, paginated by ``after_seq``."""
    state: AppState = request.app["state"]
    wanted = _keys_param(request)
    limit = min(_int_param(request, "limit", 10_000, minimum=1) or 10_000, 100_000)
    async with state.db.read() as conn:
        row = await find_run(conn, request["user"], request.match_info["run_id"])
        rows, next_after = await read_rows(
            conn,
            row.pk,
            after_seq=_int_param(request, "after_seq", 0, minimum=0) or 0,
            max_seq=row.acked_seq,
            keys=set(wanted) if wanted is not None else None,
            min_step=_int_param(request, "min_step", None, minimum=0),
            max_step=_int_param(request, "max_step", None, minimum=0),
            limit=limit,
        )
    return json_response({"rows": rows, "next_after_seq": next_after})


@routes.get(API_PREFIX + "/runs/{run_id}/histograms")
async def get_histograms(request: web.Request) -> web.Response:
    """One histogram key's values over steps, at most ``samples`` rows (for a heatmap)."""
    state: AppState = request.app["state"]
    key = request.query.get("key")
    if not key:
        raise ApiError(400, "bad_request", "pass the histogram's key: ?key=NAME")
    samples = clamp_samples(_int_param(request, "samples", None, minimum=1), default=200)
    async with state.db.read() as conn:
        row = await find_run(conn, request["user"], request.match_info["run_id"])
        info = (await keys_named(conn, row.pk, [key])).get(key)
        if info is None or STAT_SEPARATOR in key:
            raise ApiError(404, "not_found", f"run {row.id!r} has no key {key!r}")
        if info["kind"] not in ("histogram", "tensor", "image"):
            raise ApiError(
                400, "bad_request", f"key {key!r} holds {info['kind']} values, not histograms"
            )
        lo = _int_param(request, "min_step", info["first_step"], minimum=0)
        hi = _int_param(request, "max_step", info["last_step"], minimum=0)
        points = await typed_series(
            conn, row.pk, info["_id"], lo or 0, hi if hi is not None else 0, samples
        )
    out: dict[str, Any] = {"key": key, "kind": info["kind"], "step": [], "time": []}
    if info["kind"] == "histogram":
        out["bins"], out["counts"] = [], []
    else:
        out["values"] = []
    for step, t, value in points:
        if info["kind"] == "histogram":
            if type(value) is not dict or value.get("_type") != "histogram":
                continue
            out["bins"].append(value["bins"])
            out["counts"].append(value["counts"])
        else:
            out["values"].append(value)
        out["step"].append(step)
        out["time"].append(t)
    return json_response(out)


@routes.get(API_PREFIX + "/runs/{run_id}/files")
async def list_files(request: web.Request) -> web.Response:
    """The run's file index."""
    state: AppState = request.app["state"]
    f = s.files
    async with state.db.read() as conn:
        row = await find_run(conn, request["user"], request.match_info["run_id"])
        result = await conn.execute(
            select(f.c.path, f.c.sha256, f.c.size, f.c.content_type, f.c.created_at)
            .where(f.c.run_pk == row.pk)
            .order_by(f.c.path)
        )
        files = [
            {"path": p, "sha256": sha, "size": size, "content_type": ctype, "created_at": created}
            for p, sha, size, ctype, created in result
        ]
    return json_response({"files": files})


@routes.get(API_PREFIX + "/runs/{run_id}/files/{path:.+}")
async def get_file(request: web.Request) -> web.StreamResponse:
    """A run file's bytes (looked up in the index: the path never touches the filesystem)."""
    from gradexp.server.objects import blob_key

    state: AppState = request.app["state"]
    path = request.match_info["path"]
    f = s.files
    async with state.db.read() as conn:
        row = await find_run(conn, request["user"], request.match_info["run_id"])
        entry = (
            await conn.execute(
                select(f.c.sha256, f.c.content_type).where(f.c.run_pk == row.pk, f.c.path == path)
            )
        ).first()
    if entry is None:
        raise ApiError(404, "not_found", f"run {row.id!r} has no file {path!r}")
    return await stream_object(
        request, blob_key(row.project_id, row.id, entry.sha256), entry.content_type
    )


@routes.get(API_PREFIX + "/runs/{run_id}/history.parquet")
async def get_parquet(request: web.Request) -> web.StreamResponse:
    """The run's history as Parquet: the stored export when current, else made now."""
    from gradexp.server.export import write_export

    state: AppState = request.app["state"]
    async with state.db.read() as conn:
        row = await find_run(conn, request["user"], request.match_info["run_id"])
    key = export_key(row.project_id, row.id)
    filename = f"{row.id}-history.parquet"
    if (
        row.exported_seq is not None
        and row.exported_seq >= row.acked_seq
        and await state.objects.exists(key)
    ):
        return await stream_object(request, key, "application/vnd.apache.parquet", filename)
    data = await write_export(state.db, row.pk)
    return web.Response(
        body=data,
        content_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
