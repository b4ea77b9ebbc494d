"""A run's stored bytes: blobs (by content hash) and the file index that names them.

The bytes live in the object store under keys made from validated values only
(``storage/objects.py``); the database keeps which blobs a run has and which path names
which blob.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.server.domain.errors import NotFound
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, insert_ignore


async def find_blob(conn: AsyncConnection, run_pk: int, sha256: str) -> Any:
    """The run's blob row (``size``, ``content_type``...) for a hash, or None."""
    b = s.blobs
    return (await conn.execute(select(b).where(b.c.run_pk == run_pk, b.c.sha256 == sha256))).first()


async def record_blob(db: Database, run_pk: int, sha256: str, size: int, content_type: str) -> None:
    """Note that a blob is stored for the run (a second note of one hash changes nothing)."""
    values = {
        "run_pk": run_pk,
        "sha256": sha256,
        "size": size,
        "content_type": content_type[:255],
        "created_at": time.time(),
    }

    def write(conn: Connection) -> None:
        conn.execute(insert_ignore(db.kind, s.blobs).values(**values))

    await db.write(write)


async def list_files(conn: AsyncConnection, run_pk: int) -> list[dict[str, Any]]:
    """The run's file index, by path."""
    f = s.files
    result = await conn.execute(
        select(f.c.path, f.c.sha256, f.c.size, f.c.content_type, f.c.created_at)
        .where(f.c.run_pk == run_pk)
        .order_by(f.c.path)
    )
    return [
        {"path": p, "sha256": sha, "size": size, "content_type": ctype, "created_at": created}
        for p, sha, size, ctype, created in result
    ]


async def find_file(conn: AsyncConnection, run: Any, path: str) -> Any:
    """The index entry (``sha256``, ``size``, ``content_type``) of a run's file; NotFound
    when the run has no such path (a path never touches a filesystem)."""
    f = s.files
    entry = (
        await conn.execute(
            select(f.c.sha256, f.c.size, f.c.content_type).where(
                f.c.run_pk == run.pk, f.c.path == path
            )
        )
    ).first()
    if entry is None:
        raise NotFound(f"run {run.id!r} has no file {path!r}")
    return entry
