"""Artifact endpoints: the bytes a run uploads (missing, chunks) and the project's reads."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gradexp.protocol.names import SHA256_RE
from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain import artifacts
from gradexp.server.domain.access import Role
from gradexp.server.domain.artifact_uploads import missing, receive_chunk
from gradexp.server.domain.bodies import parse_json
from gradexp.server.domain.runs import find_run
from gradexp.server.http.bodies import chunks, read_body
from gradexp.server.http.downloads import stream_object
from gradexp.server.http.errors import HttpError, json_response
from gradexp.server.http.params import int_param, owned_project_id
from gradexp.server.http.sessions import USER
from gradexp.server.http.state import app_state
from gradexp.server.storage.objects import artifact_blob_key

routes = web.RouteTableDef()

MAX_ASK = 1000  # files asked about in one "missing" request


def _sha(value: Any) -> str:
    if type(value) is not str or not SHA256_RE.fullmatch(value):
        raise HttpError(400, "bad_request", "a file is named by its sha256: 64 lowercase hex")
    return value


async def _run(request: web.Request, at_least: Role = Role.MEMBER) -> Any:
    """The run, if the caller may log to it (``at_least``: may read it, for reads)."""
    async with app_state(request).db.read() as conn:
        return await find_run(conn, request[USER], request.match_info["run_id"], at_least=at_least)


@routes.post(API_PREFIX + "/runs/{run_id}/artifact-blobs/missing")
async def post_missing(request: web.Request) -> web.Response:
    """Which of ``{"blobs": [{"sha256", "size"}]}`` the run's project lacks, and how much
    of each it already received: ``{"missing": [{"sha256", "received"}]}``."""
    state = app_state(request)
    run = await _run(request)
    body = parse_json(await read_body(request, max_body=1024 * 1024))
    blobs = body.get("blobs") if isinstance(body, dict) else None
    if type(blobs) is not list or len(blobs) > MAX_ASK:
        raise HttpError(400, "bad_request", f"send {{'blobs': [...]}} with at most {MAX_ASK} files")
    asked = []
    for blob in blobs:
        size = blob.get("size") if isinstance(blob, dict) else None
        if type(size) is not int or size < 0:
            raise HttpError(400, "bad_request", "each blob needs its sha256 and size")
        asked.append({"sha256": _sha(blob.get("sha256")), "size": size})
    lacking = await missing(state.db, state.objects, run.project_id, asked)
    return json_response({"missing": lacking})


@routes.put(API_PREFIX + "/runs/{run_id}/artifact-blobs/{sha256}")
async def put_chunk(request: web.Request) -> web.Response:
    """One chunk of a file at ``?offset=N`` (``&size=S``: the whole file's size)."""
    state = app_state(request)
    sha = _sha(request.match_info["sha256"])
    offset = int_param(request, "offset", 0, minimum=0) or 0
    size = int_param(request, "size", None, minimum=0)
    if size is None:
        raise HttpError(400, "bad_request", "say the file's size: ?size=BYTES")
    if request.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        raise HttpError(415, "unsupported_media_type", "send files without Content-Encoding")
    run = await _run(request)
    reply = await receive_chunk(
        state.db,
        state.objects,
        run.project_id,
        sha,
        offset,
        size,
        request.content_length,
        chunks(request),
    )
    return json_response(reply)


@routes.get(API_PREFIX + "/projects/{owner}/{project}/artifacts")
async def get_artifacts(request: web.Request) -> web.Response:
    """The project's artifacts (``?type=``; ``?versions=all`` adds every version)."""
    state = app_state(request)
    async with state.db.read() as conn:
        pid = await owned_project_id(request, conn)
        doc = await artifacts.list_artifacts(
            conn,
            pid,
            request.query.get("type") or None,
            request.query.get("versions") == "all",
        )
    return json_response(doc)


@routes.get(API_PREFIX + "/projects/{owner}/{project}/artifacts/{name}")
async def get_artifact_versions(request: web.Request) -> web.Response:
    """Every version of one artifact, newest first."""
    state = app_state(request)
    name = request.match_info["name"]
    async with state.db.read() as conn:
        pid = await owned_project_id(request, conn)
        versions = await artifacts.list_versions(conn, pid, name)
    return json_response({"name": name, "versions": versions})


@routes.get(API_PREFIX + "/projects/{owner}/{project}/artifacts/{name}/{which}")
async def get_artifact(request: web.Request) -> web.Response:
    """One version (an alias, ``vN`` or a manifest digest), with files and lineage."""
    state = app_state(request)
    async with state.db.read() as conn:
        pid = await owned_project_id(request, conn)
        doc = await artifacts.find_version(
            conn, pid, request.match_info["name"], request.match_info["which"]
        )
    return json_response(doc)


@routes.get(API_PREFIX + "/projects/{owner}/{project}/artifact-blobs/{sha256}")
async def get_artifact_blob(request: web.Request) -> web.StreamResponse:
    """A file's bytes, if the project holds them."""
    state = app_state(request)
    sha = _sha(request.match_info["sha256"])
    async with state.db.read() as conn:
        pid = await owned_project_id(request, conn)
        size = await artifacts.project_blob(conn, pid, sha)
    if size is None:
        raise HttpError(404, "not_found", "the project holds no such file")
    return await stream_object(request, artifact_blob_key(pid, sha), "application/octet-stream")


@routes.get(API_PREFIX + "/runs/{run_id}/artifacts")
async def get_run_artifacts(request: web.Request) -> web.Response:
    """What the run logged and used: ``{"logged": [...], "used": [...]}``."""
    state = app_state(request)
    run = await _run(request, at_least=Role.VIEWER)
    async with state.db.read() as conn:
        doc = await artifacts.run_artifacts(conn, run.pk)
    return json_response(doc)
