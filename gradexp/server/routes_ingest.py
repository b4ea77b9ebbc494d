"""Write endpoints: create or resume a run, ingest records, heartbeats, blobs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from gradexp.protocol.names import SHA256_RE
from gradexp.protocol.wire import API_PREFIX, MAX_BLOB_BYTES
from gradexp.server import schema as s
from gradexp.server.batch import body_is_gzip, parse_json, read_body
from gradexp.server.db import insert_ignore
from gradexp.server.decode_pool import shared_pool
from gradexp.server.errors import ApiError, json_response
from gradexp.server.ingest import ingest_batch
from gradexp.server.objects import BlobTooLarge, HashMismatch, blob_key
from gradexp.server.runs import (
    check_run_id,
    create_or_resume,
    find_run,
    run_objects,
    validate_run_body,
)
from gradexp.server.state import AppState, base_url

routes = web.RouteTableDef()

MAX_RUN_BODY = 1024 * 1024  # a run description (config included)


def _content_length(request: web.Request) -> int | None:
    return request.content_length


async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(256 * 1024):
        yield chunk


@routes.put(API_PREFIX + "/runs/{run_id}")
async def put_run(request: web.Request) -> web.Response:
    """Create or resume a run (idempotent per ``attempt``)."""
    state: AppState = request.app["state"]
    user = request["user"]
    raw = await read_body(
        _chunks(request),
        _content_length(request),
        request.headers.get("Content-Encoding", ""),
        max_body=MAX_RUN_BODY,
        max_decompressed=4 * MAX_RUN_BODY,
    )
    body = validate_run_body(parse_json(raw))
    status, row = await create_or_resume(state.db, user, request.match_info["run_id"], body)
    async with state.db.read() as conn:
        (obj,) = await run_objects(conn, [row], base_url(request), state.settings.crash_after)
    state.notifier.notify(row.project_id, row.pk)
    return json_response(
        {"run": obj, "acked_seq": row.acked_seq, "last_step": row.last_step}, status=status
    )


async def _owned_run(state: AppState, request: web.Request) -> Any:
    async with state.db.read() as conn:
        return await find_run(conn, request["user"], request.match_info["run_id"])


@routes.post(API_PREFIX + "/runs/{run_id}/records")
async def post_records(request: web.Request) -> web.Response:
    """Ingest one batch: validate everything first, then one transaction, then the ack."""
    state: AppState = request.app["state"]
    encoding = request.headers.get("Content-Encoding", "")
    # The body as sent (size-checked, 415 for an unknown encoding); the decode pool
    # inflates and decodes it, in a worker process when it is big enough to pay.
    body = await read_body(_chunks(request), _content_length(request), encoding, inflate=False)
    batch = await shared_pool().decode(body, body_is_gzip(encoding))
    run_id = check_run_id(request.match_info["run_id"])
    known_ids = dict(state.key_cache.get(run_id))  # a private copy for the writer thread
    result = await state.db.write(
        ingest_batch, state.db.kind, request["user"].id, run_id, batch, known_ids
    )
    # Committed: only now is it safe to cache key ids, wake streams and acknowledge.
    state.key_cache.add(run_id, result.key_ids)
    if result.applied:
        state.notifier.notify(result.project_id, result.run_pk)
    if result.finished:
        state.exporter.schedule(result.run_pk)
    return json_response({"acked_seq": result.acked_seq})


def _heartbeat(conn: Connection, run_pk: int, now: float) -> None:
    conn.execute(update(s.runs).where(s.runs.c.pk == run_pk).values(heartbeat_at=now))


def _record_blob(conn: Connection, kind: str, values: dict[str, Any]) -> None:
    conn.execute(insert_ignore(kind, s.blobs).values(**values))


@routes.post(API_PREFIX + "/runs/{run_id}/heartbeat")
async def post_heartbeat(request: web.Request) -> web.Response:
    """Mark the run alive."""
    state: AppState = request.app["state"]
    run = await _owned_run(state, request)
    await state.db.write(_heartbeat, run.pk, time.time())
    return json_response({"acked_seq": run.acked_seq})


def _sha(request: web.Request) -> str:
    sha = request.match_info["sha256"]
    if not SHA256_RE.fullmatch(sha):
        raise ApiError(
            400, "bad_request", "the blob name must be its sha256: 64 lowercase hex characters"
        )
    return sha


async def _blob_row(state: AppState, run_pk: int, sha: str) -> Any:
    async with state.db.read() as conn:
        return (
            await conn.execute(
                select(s.blobs).where(s.blobs.c.run_pk == run_pk, s.blobs.c.sha256 == sha)
            )
        ).first()


@routes.put(API_PREFIX + "/runs/{run_id}/blobs/{sha256}")
async def put_blob(request: web.Request) -> web.Response:
    """Store a blob by content hash; a second PUT of the same hash stores nothing."""
    state: AppState = request.app["state"]
    sha = _sha(request)
    run = await _owned_run(state, request)
    existing = await _blob_row(state, run.pk, sha)
    if existing is not None:
        return json_response({"sha256": sha, "size": existing.size, "created": False})
    length = request.content_length
    if length is not None and length > MAX_BLOB_BYTES:
        raise ApiError(413, "payload_too_large", "blobs are limited to 4 GiB")
    if request.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        raise ApiError(415, "unsupported_media_type", "send blobs without Content-Encoding")
    content_type = request.content_type or "application/octet-stream"
    key = blob_key(run.project_id, run.id, sha)
    try:
        size = await state.objects.put_verified(
            key, sha, _chunks(request), max_bytes=MAX_BLOB_BYTES, expected_size=length
        )
    except HashMismatch:
        raise ApiError(
            400, "bad_request", f"the uploaded bytes do not hash to {sha}: upload the file again"
        ) from None
    except BlobTooLarge:
        raise ApiError(413, "payload_too_large", "blobs are limited to 4 GiB") from None
    await state.db.write(
        _record_blob,
        state.db.kind,
        {
            "run_pk": run.pk,
            "sha256": sha,
            "size": size,
            "content_type": content_type[:255],
            "created_at": time.time(),
        },
    )
    return json_response({"sha256": sha, "size": size, "created": True}, status=201)


@routes.route("HEAD", API_PREFIX + "/runs/{run_id}/blobs/{sha256}")
async def head_blob(request: web.Request) -> web.Response:
    """200 when the blob is stored, else 404 (so a client can skip an upload)."""
    state: AppState = request.app["state"]
    sha = _sha(request)
    run = await _owned_run(state, request)
    row = await _blob_row(state, run.pk, sha)
    if row is None:
        raise ApiError(404, "not_found", "no such blob")
    return web.Response(status=200, headers={"Content-Length": str(row.size)})


@routes.get(API_PREFIX + "/runs/{run_id}/blobs/{sha256}", allow_head=False)
async def get_blob(request: web.Request) -> web.StreamResponse:
    """The blob's bytes."""
    state: AppState = request.app["state"]
    sha = _sha(request)
    run = await _owned_run(state, request)
    row = await _blob_row(state, run.pk, sha)
    if row is None:
        raise ApiError(404, "not_found", "no such blob")
    return await stream_object(request, blob_key(run.project_id, run.id, sha), row.content_type)


async def stream_object(
    request: web.Request, key: str, content_type: str, filename: str | None = None
) -> web.StreamResponse:
    """Send an object from the store without holding it in memory."""
    state: AppState = request.app["state"]
    found = await state.objects.stream(key)
    if found is None:
        raise ApiError(404, "not_found", "the object is missing from the object store")
    size, chunks = found
    resp = web.StreamResponse(headers={"Content-Type": content_type, "Content-Length": str(size)})
    if filename:
        resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    await resp.prepare(request)
    async for chunk in chunks:
        await resp.write(chunk)
    await resp.write_eof()
    return resp
