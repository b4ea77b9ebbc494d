"""Uploads in parts: start (or find) an upload, send its parts, join them into the blob.

The protocol (docs/protocol.md, "Uploads in parts") and the bookkeeping
(``domain/uploads.py``) are written up where they live; this module only speaks HTTP.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain import files, uploads
from gradexp.server.domain.access import Role
from gradexp.server.domain.writers import find_writer
from gradexp.server.http.bodies import read_exactly, read_json_object
from gradexp.server.http.errors import HttpError, json_response
from gradexp.server.http.ingest import writer_rank
from gradexp.server.http.sessions import USER
from gradexp.server.http.state import app_state
from gradexp.server.storage.objects import (
    UPLOAD_ID_RE,
    UPLOAD_PART_BYTES,
    HashMismatch,
    blob_key,
    upload_prefix,
)
from gradexp.server.storage.parts import Parts, PartsMissing

routes = web.RouteTableDef()

UPLOADS = API_PREFIX + "/runs/{run_id}/uploads"


async def _owned_run(request: web.Request) -> Any:
    async with app_state(request).db.read() as conn:
        # only who may log to the run stores bytes in it (``?writer=N``: a rank's row)
        return await find_writer(
            conn,
            request[USER],
            request.match_info["run_id"],
            writer_rank(request),
            at_least=Role.MEMBER,
        )


async def _upload(request: web.Request, run: Any) -> Any:
    upload_id = request.match_info["upload_id"]
    if not UPLOAD_ID_RE.fullmatch(upload_id):
        raise HttpError(400, "bad_request", "an upload id is 32 lowercase hex characters")
    async with app_state(request).db.read() as conn:
        return await uploads.find_upload(conn, run.pk, upload_id)


def _where(row: Any) -> dict[str, Any]:
    return {
        "upload_id": row.upload_id,
        "offset": row.received,
        "size": row.size,
        "part_bytes": row.part_bytes,
    }


@routes.post(UPLOADS)
async def start_upload(request: web.Request) -> web.Response:
    """Start an upload in parts, or find the one under way: where to continue from."""
    state = app_state(request)
    sha, size, content_type = uploads.check_upload_body(await read_json_object(request))
    run = await _owned_run(request)
    async with state.db.read() as conn:
        blob = await files.find_blob(conn, run.pk, sha)
    if blob is not None:
        return json_response({"sha256": sha, "size": blob.size, "done": True})
    row = await uploads.start_upload(state.db, run.pk, sha, size, content_type, UPLOAD_PART_BYTES)
    return json_response({"sha256": sha, "done": False, **_where(row)})


@routes.put(UPLOADS + "/{upload_id}")
async def send_part(request: web.Request) -> web.Response:
    """Store the part at ``?offset=``; 409 ``upload_offset`` (with the offset) if the
    upload stands elsewhere."""
    state = app_state(request)
    run = await _owned_run(request)
    row = await _upload(request, run)
    try:
        offset = int(request.query.get("offset", ""))
    except ValueError:
        raise HttpError(400, "bad_request", "give the part's start as ?offset=N") from None
    if offset != row.received:
        raise HttpError(
            409,
            "upload_offset",
            f"the upload stands at byte {row.received}, not {offset}: continue from there",
            offset=row.received,
        )
    length = min(row.part_bytes, row.size - offset)
    if request.content_length is not None and request.content_length != length:
        raise HttpError(
            400, "bad_request", f"the part at {offset} must be {length} bytes long", offset=offset
        )
    data = await read_exactly(request, length, f"the part at {offset}")
    await _parts(request, run, row).write(offset, data)
    del data
    if not await uploads.move_offset(state.db, run.pk, row.upload_id, offset, length):
        async with state.db.read() as conn:
            row = await uploads.find_upload(conn, run.pk, row.upload_id)
        raise HttpError(
            409, "upload_offset", "another request sent this part first", offset=row.received
        )
    return json_response({"offset": offset + length, "size": row.size})


@routes.get(UPLOADS + "/{upload_id}")
async def get_upload(request: web.Request) -> web.Response:
    """Where the upload stands."""
    run = await _owned_run(request)
    return json_response(_where(await _upload(request, run)))


@routes.post(UPLOADS + "/{upload_id}/complete")
async def complete_upload(request: web.Request) -> web.Response:
    """Join the parts into the blob (its hash checked) and record it."""
    state = app_state(request)
    run = await _owned_run(request)
    row = await _upload(request, run)
    if row.received < row.size:
        raise HttpError(
            409,
            "upload_offset",
            f"the upload has {row.received} of {row.size} bytes: send the rest first",
            offset=row.received,
        )
    async with state.db.read() as conn:
        blob = await files.find_blob(conn, run.pk, row.sha256)
    created = blob is None
    parts = _parts(request, run, row)
    if created:
        try:
            await parts.join(
                blob_key(run.project_id, run.id, row.sha256), row.sha256, row.size, row.part_bytes
            )
        except PartsMissing:
            await _discard(request, run, row)
            raise HttpError(
                404, "upload_not_found", "a part of this upload is gone: start it again"
            ) from None
        except HashMismatch:
            await _discard(request, run, row)
            raise HttpError(
                400,
                "bad_request",
                f"the parts do not hash to {row.sha256}: upload the file again",
            ) from None
        await files.record_blob(state.db, run.pk, row.sha256, row.size, row.content_type)
    await _discard(request, run, row)
    return json_response(
        {"sha256": row.sha256, "size": row.size, "created": created}, status=201 if created else 200
    )


def _parts(request: web.Request, run: Any, row: Any) -> Parts:
    return Parts(app_state(request).objects, upload_prefix(run.project_id, run.id, row.upload_id))


async def _discard(request: web.Request, run: Any, row: Any) -> None:
    await uploads.forget_upload(app_state(request).db, run.pk, row.upload_id)
    await _parts(request, run, row).discard()
