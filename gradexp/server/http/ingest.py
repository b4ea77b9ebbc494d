"""Write endpoints: create or resume a run, ingest records, heartbeats, blobs."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gradexp.protocol.names import SHA256_RE
from gradexp.protocol.wire import API_PREFIX, MAX_BLOB_BYTES
from gradexp.server.domain import batch as batches
from gradexp.server.domain import files, ingest_pg
from gradexp.server.domain.access import Role
from gradexp.server.domain.alerts import webhook_body
from gradexp.server.domain.bodies import parse_json
from gradexp.server.domain.errors import RateLimited, Unauthorized
from gradexp.server.domain.ingest import ingest_batch, record_heartbeat
from gradexp.server.domain.runs import (
    check_run_id,
    create_or_resume,
    run_by_pk,
    run_object,
    run_objects,
    validate_run_body,
)
from gradexp.server.domain.writers import (
    create_or_resume_writer,
    find_writer,
    object_run_id,
    parse_writer,
)
from gradexp.server.http.auth import key_checked_in_transaction
from gradexp.server.http.bodies import body_is_gzip, chunks, read_body
from gradexp.server.http.downloads import stream_object
from gradexp.server.http.errors import HttpError, error_response, json_response
from gradexp.server.http.sessions import USER
from gradexp.server.http.state import app_state, public_url
from gradexp.server.storage.db import is_deadlock
from gradexp.server.storage.objects import BlobTooLarge, HashMismatch, blob_key

routes = web.RouteTableDef()

MAX_RUN_BODY = 1024 * 1024  # a run description (config included)


@routes.put(API_PREFIX + "/runs/{run_id}")
async def put_run(request: web.Request) -> web.Response:
    """Create or resume a run (idempotent per ``attempt``)."""
    state = app_state(request)
    raw = await read_body(request, max_body=MAX_RUN_BODY, max_decompressed=4 * MAX_RUN_BODY)
    parsed = parse_json(raw)
    body = validate_run_body(parsed)
    writer = parse_writer(parsed.get("writer"))
    run_id = request.match_info["run_id"]
    if writer is not None and writer[0] > 0:
        created, run, row = await create_or_resume_writer(
            state.db, request[USER], run_id, body, *writer
        )
    else:
        if writer is not None and writer[1] > 1:
            body["world_size"] = writer[1]
        created, run = await create_or_resume(state.db, request[USER], run_id, body)
        row = run
    if created and row is run and (run.world_size or 1) <= 1:
        # A new run of one writer: nothing logged, no summary, no writers to list. Its
        # row, read in the transaction that made it, is the whole answer (no second read:
        # a thousand runs starting at once each pay for this one).
        obj = run_object(run, {}, public_url(request), state.settings.crash_after)
    else:
        async with state.db.read() as conn:
            run = await run_by_pk(conn, run.pk)  # as it is now, with every writer's news
            (obj,) = await run_objects(conn, [run], public_url(request), state.settings.crash_after)
    state.live.notify(run.project_id, run.pk)
    return json_response(
        {
            "run": obj,
            "acked_seq": row.acked_seq,  # the writer's own (rank 0's: the run's)
            "last_step": row.last_step,
            # What this server takes (docs/protocol.md, "Capabilities"): a client keeps
            # records of other types in its run file rather than have batches refused.
            "accepts": {"record_types": sorted(batches.RECORD_KINDS), "writers": True},
        },
        status=201 if created else 200,
    )


def writer_rank(request: web.Request) -> int:
    """``?writer=N``: the rank of the distributed run's writer sending (default 0)."""
    raw = request.query.get("writer", "0") or "0"
    if not raw.isdigit() or int(raw) > 32_767:
        raise HttpError(400, "bad_request", "writer must be a rank from 0 to 32767")
    return int(raw)


async def _owned_run(request: web.Request, at_least: Role = Role.MEMBER) -> Any:
    """The run (or the row of its writer ``?writer=N``), if the caller may log to it
    (``at_least``: may read it, for reads)."""
    async with app_state(request).db.read() as conn:
        return await find_writer(
            conn,
            request[USER],
            request.match_info["run_id"],
            writer_rank(request),
            at_least=at_least,
        )


@routes.post(API_PREFIX + "/runs/{run_id}/records")
@key_checked_in_transaction
async def post_records(request: web.Request) -> web.Response:
    """Ingest one batch: validate everything first, then one transaction, then the ack
    (with how often to send: see domain/pacing.py)."""
    state = app_state(request)
    try:
        with state.pacer.batch():  # refused before reading the body when too busy
            return await _ingest(request)
    except RateLimited as exc:
        resp = error_response(429, exc.code, exc.message, **exc.extra)
        resp.headers["Retry-After"] = str(exc.extra["retry_after"])
        return resp


async def _ingest(request: web.Request) -> web.Response:
    state = app_state(request)
    # The body as sent (size-checked, 415 for an unknown encoding); the decode pool
    # inflates and decodes it, in a worker process when it is big enough to pay.
    body = await read_body(request, inflate=False)
    gzip = body_is_gzip(request.headers.get("Content-Encoding", ""))
    batch = await state.decode_pool.decode(body, gzip)
    run_id = check_run_id(request.match_info["run_id"])
    rank = writer_rank(request)
    # Key ids are per writer's row: a distributed run's other writers cache their own.
    cache_key = f"{run_id}?writer={rank}" if rank else run_id
    user = request[USER]
    result = None
    if state.db.kind == "postgresql" and not rank and ingest_pg.is_plain(batch):
        result = await _ingest_one_statement(request, run_id, batch)
    for attempt in range(0 if result is not None else 3):
        known_ids = dict(state.key_ids.get(cache_key))  # a private copy for the writer thread
        try:
            result = await state.db.write(
                ingest_batch,
                state.db.kind,
                user.id,
                run_id,
                batch,
                known_ids,
                state.project_owners,
                user.key_id,  # checked in the transaction: the key may come from the cache
                rank,
            )
            break
        except Unauthorized:
            if user.key_id is not None:
                state.api_keys.forget(frozenset({user.key_id}))
            raise
        except Exception as exc:
            # Two runs' batches that touch the same rows (an artifact logged by both at
            # once) can deadlock on PostgreSQL and MySQL: the victim's transaction rolled
            # back whole, so it runs again.
            if attempt == 2 or not is_deadlock(exc):
                raise
    assert result is not None
    # Committed: only now is it safe to cache key ids, wake streams and acknowledge.
    state.key_ids.add(cache_key, result.key_ids, result.project_id)
    if result.applied:
        state.live.notify(result.project_id, result.run_pk)
    if result.finished:
        state.exporter.schedule(result.run_pk)
    if result.alerts and state.alerts.url:
        await _send_alerts(request, result.run_pk, result.alerts)
    watched = state.pacer.watched(result.run_pk)
    return json_response(
        {
            "acked_seq": result.acked_seq,
            "watched": watched,
            "batch_interval": state.pacer.interval(watched),
        }
    )


async def _ingest_one_statement(request: web.Request, run_id: str, batch: Any) -> Any:
    """PostgreSQL: a plain batch of one's own run in one statement (``ingest_pg.py``); None
    when it cannot take that path or the run's row was not as expected (nothing written):
    the full path decides then."""
    state = app_state(request)
    user = request[USER]
    key_ids = state.key_ids.get(run_id)
    project_id = state.key_ids.project(run_id)
    missing = [k for k in batch.columns.key_order if k not in key_ids]
    if project_id is None or missing:
        # A run this process has not written to yet, or new keys: one read tells the
        # project, its owner and the keys' ids (a run's first batch assigns them).
        primed = await ingest_pg.prime(state.db, run_id, missing)
        if primed is None:
            return None
        project_id = primed.project_id
        state.project_owners.add(project_id, primed.owner_id)
        key_ids = {**key_ids, **primed.key_ids}
        if any(k not in key_ids for k in missing):
            return None  # keys new to a run that has some: the full path assigns them
    if state.project_owners.get(project_id) != user.id:
        return None  # someone else's project: the access resolver decides
    return await ingest_pg.try_ingest(state.db, run_id, project_id, batch, key_ids, user.key_id)


def _own_project(request: web.Request, run_id: str) -> int | None:
    """On PostgreSQL, the project of the run a heartbeat is for, if this process has
    committed a batch of it and it is the caller's own project: then the heartbeat may
    take one statement (``ingest_pg.py``)."""
    state = app_state(request)
    if state.db.kind != "postgresql":
        return None
    project_id = state.key_ids.project(run_id)
    if project_id is None or state.project_owners.get(project_id) != request[USER].id:
        return None
    return project_id


async def _send_alerts(request: web.Request, run_pk: int, alerts: list[dict[str, Any]]) -> None:
    """Hand committed alerts to the webhook sender (it queues them; nothing waits here)."""
    state = app_state(request)
    async with state.db.read() as conn:
        row = await run_by_pk(conn, run_pk)
    run = {
        "id": row.id,
        "name": row.name,
        "project": row.project_name,
        "owner": row.owner_name,
        "url": f"{public_url(request)}/r/{row.id}",
    }
    for alert in alerts:
        state.alerts.send(webhook_body(alert, run))


@routes.post(API_PREFIX + "/runs/{run_id}/heartbeat")
@key_checked_in_transaction
async def post_heartbeat(request: web.Request) -> web.Response:
    """Mark the run alive: one write transaction, as a batch looks its run up."""
    state = app_state(request)
    user = request[USER]
    run_id = check_run_id(request.match_info["run_id"])
    rank = writer_rank(request)
    project_id = None if rank else _own_project(request, run_id)
    if project_id is not None:
        acked = await ingest_pg.try_heartbeat(state.db, run_id, project_id, user.key_id)
        if acked is not None:
            return json_response({"acked_seq": acked})
    try:
        acked = await state.db.write(
            record_heartbeat,
            user.id,
            run_id,
            state.project_owners,
            user.key_id,
            rank,
        )
    except Unauthorized:
        if user.key_id is not None:
            state.api_keys.forget(frozenset({user.key_id}))
        raise
    return json_response({"acked_seq": acked})


def _sha(request: web.Request) -> str:
    sha = request.match_info["sha256"]
    if not SHA256_RE.fullmatch(sha):
        raise HttpError(
            400, "bad_request", "the blob name must be its sha256: 64 lowercase hex characters"
        )
    return sha


async def _blob_row(request: web.Request, run_pk: int, sha: str) -> Any:
    async with app_state(request).db.read() as conn:
        return await files.find_blob(conn, run_pk, sha)


@routes.put(API_PREFIX + "/runs/{run_id}/blobs/{sha256}")
async def put_blob(request: web.Request) -> web.Response:
    """Store a blob by content hash; a second PUT of the same hash stores nothing."""
    state = app_state(request)
    sha = _sha(request)
    run = await _owned_run(request)
    existing = await _blob_row(request, run.pk, sha)
    if existing is not None:
        return json_response({"sha256": sha, "size": existing.size, "created": False})
    length = request.content_length
    if length is not None and length > MAX_BLOB_BYTES:
        raise HttpError(413, "payload_too_large", "blobs are limited to 4 GiB")
    if request.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        raise HttpError(415, "unsupported_media_type", "send blobs without Content-Encoding")
    content_type = request.content_type or "application/octet-stream"
    key = blob_key(run.project_id, object_run_id(run), sha)
    try:
        size = await state.objects.put_verified(
            key, sha, chunks(request), max_bytes=MAX_BLOB_BYTES, expected_size=length
        )
    except HashMismatch:
        raise HttpError(
            400, "bad_request", f"the uploaded bytes do not hash to {sha}: upload the file again"
        ) from None
    except BlobTooLarge:
        raise HttpError(413, "payload_too_large", "blobs are limited to 4 GiB") from None
    await files.record_blob(state.db, run.pk, sha, size, content_type)
    return json_response({"sha256": sha, "size": size, "created": True}, status=201)


@routes.route("HEAD", API_PREFIX + "/runs/{run_id}/blobs/{sha256}")
async def head_blob(request: web.Request) -> web.Response:
    """200 when the blob is stored, else 404 (so a client can skip an upload)."""
    sha = _sha(request)
    run = await _owned_run(request)
    row = await _blob_row(request, run.pk, sha)
    if row is None:
        raise HttpError(404, "not_found", "no such blob")
    return web.Response(status=200, headers={"Content-Length": str(row.size)})


@routes.get(API_PREFIX + "/runs/{run_id}/blobs/{sha256}", allow_head=False)
async def get_blob(request: web.Request) -> web.StreamResponse:
    """The blob's bytes."""
    sha = _sha(request)
    run = await _owned_run(request, at_least=Role.VIEWER)
    row = await _blob_row(request, run.pk, sha)
    if row is None:
        raise HttpError(404, "not_found", "no such blob")
    return await stream_object(
        request, blob_key(run.project_id, object_run_id(run), sha), row.content_type
    )
