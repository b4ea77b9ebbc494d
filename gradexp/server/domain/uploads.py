"""Uploads in parts: a large blob arrives part by part, and an interrupted upload resumes.

One upload per (run, sha256), so a client that lost its connection, or a new process
(``gradexp sync`` after a crash), finds the same upload and asks where to continue.
``received`` is the offset the next part must start at; every part but the last is
``part_bytes`` long, so the parts' keys follow from the offsets alone (a retried part
lands on the key it had, with the same bytes). The part is stored before ``received``
moves, with a conditional update: of two requests carrying the same part, one moves it
and the other learns the new offset. Joining the parts (``storage/objects.py``,
:func:`~gradexp.server.storage.objects.assemble_parts`) checks the hash of the whole.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.protocol.names import SHA256_RE
from gradexp.protocol.wire import MAX_BLOB_BYTES
from gradexp.server.domain.errors import Conflict, Invalid, NotFound
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, insert_ignore

__all__ = ["check_upload_body", "find_upload", "forget_upload", "move_offset", "start_upload"]


def check_upload_body(body: Any) -> tuple[str, int, str]:
    """``{"sha256", "size", "content_type"}`` of a new upload, checked."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object with sha256, size and content_type")
    sha = body.get("sha256")
    if type(sha) is not str or not SHA256_RE.fullmatch(sha):
        raise Invalid("sha256 must be 64 lowercase hex characters")
    size = body.get("size")
    if type(size) is not int or size <= 0:
        raise Invalid("size must be an integer > 0")
    if size > MAX_BLOB_BYTES:
        raise Invalid(f"size {size} is over the {MAX_BLOB_BYTES >> 30} GiB a file may have")
    ctype = body.get("content_type") or "application/octet-stream"
    if type(ctype) is not str:
        raise Invalid("content_type must be a string")
    return sha, size, ctype[:255]


async def start_upload(
    db: Database, run_pk: int, sha256: str, size: int, content_type: str, part_bytes: int
) -> Any:
    """The upload of ``sha256`` for the run: the one under way, or a new one."""
    now = time.time()
    values = {
        "run_pk": run_pk,
        "sha256": sha256,
        "upload_id": uuid.uuid4().hex,
        "size": size,
        "received": 0,
        "part_bytes": part_bytes,
        "content_type": content_type,
        "created_at": now,
        "updated_at": now,
    }
    u = s.uploads

    def write(conn: Connection) -> Any:
        conn.execute(insert_ignore(db.kind, u).values(**values))
        return conn.execute(select(u).where(u.c.run_pk == run_pk, u.c.sha256 == sha256)).one()

    row = await db.write(write)
    if row.size != size:
        raise Conflict(
            f"an upload of {sha256} with {row.size} bytes is under way, not {size}",
            code="upload_conflict",
        )
    return row


async def find_upload(conn: AsyncConnection, run_pk: int, upload_id: str) -> Any:
    """The run's upload ``upload_id``; NotFound when there is none (joined, or never made)."""
    u = s.uploads
    row = (
        await conn.execute(select(u).where(u.c.run_pk == run_pk, u.c.upload_id == upload_id))
    ).first()
    if row is None:
        raise NotFound(
            f"no upload {upload_id} for this run (finished, or never started): start it again",
            code="upload_not_found",
        )
    return row


async def move_offset(db: Database, run_pk: int, upload_id: str, offset: int, length: int) -> bool:
    """Move the upload past a stored part, if it still stands at ``offset`` (else False)."""
    u = s.uploads

    def write(conn: Connection) -> bool:
        result = conn.execute(
            update(u)
            .where(u.c.run_pk == run_pk, u.c.upload_id == upload_id, u.c.received == offset)
            .values(received=offset + length, updated_at=time.time())
        )
        return bool(result.rowcount)

    return await db.write(write)


async def forget_upload(db: Database, run_pk: int, upload_id: str) -> None:
    """Drop the upload's row (joined, or its bytes did not hash to its name)."""
    u = s.uploads

    def write(conn: Connection) -> None:
        conn.execute(u.delete().where(u.c.run_pk == run_pk, u.c.upload_id == upload_id))

    await db.write(write)
