"""Receiving an artifact file's bytes: whole, or chunk by chunk with resume.

A file of up to ``ARTIFACT_CHUNK_BYTES`` comes in one request and is stored once its
sha256 checks out. A larger one comes in chunks, each at the offset where the server
stands (``received``), kept as parts (``storage/parts.py``) under the project's upload
prefix for that hash, so an upload cut off by a dropped connection, a client crash or a
server restart resumes at the end of the parts any server process can see (the server is
stateless). When the last chunk is in, the parts are joined through the hash into the
file's object, and the project holds the file. Memory per request is one chunk, whatever
the file's size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gradexp.protocol.artifacts import ARTIFACT_CHUNK_BYTES, MAX_ARTIFACT_FILE_BYTES
from gradexp.server.domain.artifacts import missing_blobs, project_blob, record_blob
from gradexp.server.domain.errors import Conflict, Invalid, TooLarge
from gradexp.server.storage.db import Database
from gradexp.server.storage.objects import (
    HashMismatch,
    ObjectStore,
    artifact_blob_key,
    artifact_upload_prefix,
)
from gradexp.server.storage.parts import Parts, PartsMissing

__all__ = ["missing", "receive_chunk"]


def _mismatch(sha: str) -> Invalid:
    return Invalid(
        f"the uploaded bytes do not hash to {sha}: the file changed, upload it again",
        code="hash_mismatch",
    )


async def missing(
    db: Database, objects: ObjectStore, project_id: int, blobs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Of ``[{"sha256", "size"}]``, those the project lacks, each with the bytes received."""
    async with db.read() as conn:
        lacking = await missing_blobs(conn, project_id, [b["sha256"] for b in blobs])
    out = []
    for blob in blobs:
        sha = blob["sha256"]
        if sha not in lacking:
            continue
        received = 0
        if int(blob["size"]) > ARTIFACT_CHUNK_BYTES:
            parts = Parts(objects, artifact_upload_prefix(project_id, sha))
            received = await parts.received(int(blob["size"]), ARTIFACT_CHUNK_BYTES)
        out.append({"sha256": sha, "received": received})
        lacking.discard(sha)  # a file named twice is sent once
    return out


async def _limited(
    chunks: AsyncIterator[bytes], limit: int, hasher: Any = None
) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"a chunk holds at most {limit} bytes here")
        if hasher is not None:
            hasher.update(chunk)
        yield chunk


async def receive_chunk(
    db: Database,
    objects: ObjectStore,
    project_id: int,
    sha: str,
    offset: int,
    size: int,
    length: int | None,
    chunks: AsyncIterator[bytes],
) -> dict[str, Any]:
    """Store one request's bytes of file ``sha`` (``size`` bytes in all) at ``offset``.

    Returns ``{"received", "complete"}``. A chunk at another offset than the server's is
    refused with 409 ``upload_offset`` and ``received`` (where to continue).
    """
    if not 0 <= size <= MAX_ARTIFACT_FILE_BYTES:
        raise TooLarge("an artifact file is limited to 1 TiB")
    async with db.read() as conn:
        held = await project_blob(conn, project_id, sha)
    if held is not None:
        return {"received": held, "complete": True}
    key = artifact_blob_key(project_id, sha)
    if offset == 0 and size <= ARTIFACT_CHUNK_BYTES:
        try:
            await objects.put_verified(key, sha, chunks, max_bytes=size, expected_size=size)
        except HashMismatch:
            raise _mismatch(sha) from None
        await db.write(record_blob, db.kind, project_id, sha, size)
        return {"received": size, "complete": True}
    parts = Parts(objects, artifact_upload_prefix(project_id, sha))
    received = await parts.received(size, ARTIFACT_CHUNK_BYTES)
    if offset != received:
        raise Conflict(
            f"this upload stands at byte {received}, not {offset}: continue from there",
            code="upload_offset",
            received=received,
        )
    want = min(ARTIFACT_CHUNK_BYTES, size - offset)
    if length is not None and length != want:
        raise Invalid(f"send the next {want} bytes of the file (from byte {offset})")
    data = b"".join([c async for c in _limited(chunks, want)])
    if len(data) != want:
        raise Invalid(f"the chunk held {len(data)} bytes, not {want}: send it again")
    await parts.write(offset, data)
    del data
    if offset + want < size:
        return {"received": offset + want, "complete": False}
    try:
        await parts.join(key, sha, size, ARTIFACT_CHUNK_BYTES)
    except PartsMissing:
        raise Conflict(
            "a part of this upload vanished: upload it again", code="upload_offset", received=0
        ) from None
    except HashMismatch:
        await parts.discard()
        raise _mismatch(sha) from None
    await db.write(record_blob, db.kind, project_id, sha, size)
    return {"received": size, "complete": True}
