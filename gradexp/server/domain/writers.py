"""A run with several writers: the ranks of a distributed job (docs/protocol.md, "Writers").

Rank 0 is the run's own row, so a client that knows nothing of writers (every client
before them) is rank 0 of a run of one. Each other rank ``r`` of the job has a row of its
own in ``runs`` with ``parent_pk`` (the run) and ``rank``; its id is ``@<parent pk>.<r>``,
which no client can name (``@`` is not allowed in a run id), and lists of runs skip it.
So each writer has its own sequence numbers, pending ranges, acknowledgement, finish,
heartbeat, history and files, with everything the ingest path does for a run (and its
exactly-once guarantee) holding per writer without a second mechanism. What the machine
did (system samples, console lines, environment) is stored on the run itself under the
writer's rank, so the per-rank reads of those need no lookup.

The run is over when every one of its ``world_size`` writers has finished (``finished``),
or as soon as one has failed (``failed``, with that writer's exit code): :func:`settle`
decides, inside the transaction of the batch that committed a writer's finish.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import insert, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.server.domain.access import Role
from gradexp.server.domain.accounts.users import User
from gradexp.server.domain.errors import Conflict, Invalid, NotFound
from gradexp.server.domain.machine import MAX_RANK
from gradexp.server.domain.runs import (
    create_or_resume,
    find_run,
    fresh_writer_columns,
    rank0_finish,
    run_query,
)
from gradexp.server.domain.tombstones import next_sqlite_run_pk
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database

__all__ = [
    "MAX_WORLD_SIZE",
    "create_or_resume_writer",
    "find_writer",
    "object_run_id",
    "parse_writer",
    "settle",
    "writer_id",
]

MAX_WORLD_SIZE = MAX_RANK + 1


def writer_id(parent_pk: int, rank: int) -> str:
    """The stored id of rank ``rank`` (> 0) of run ``parent_pk``: not a valid run id."""
    return f"@{parent_pk}.{rank}"


def object_run_id(row: Any) -> str:
    """The run id a writer's objects (blobs) are kept under: the run's, for every rank
    (blobs are named by content, so ranks share them), from a :func:`find_writer` row."""
    return str(row.job_id) if row.parent_pk is not None else str(row.id)


def parse_writer(value: Any) -> tuple[int, int] | None:
    """The PUT body's ``writer`` (``{"rank": r, "world_size": n}``) as ``(r, n)``; None
    when absent (one writer: the run's own)."""
    if value is None:
        return None
    if type(value) is not dict:
        raise Invalid('writer must be an object {"rank": r, "world_size": n}')
    rank, world = value.get("rank"), value.get("world_size")
    if type(world) is not int or not 1 <= world <= MAX_WORLD_SIZE:
        raise Invalid(f"writer.world_size must be an integer from 1 to {MAX_WORLD_SIZE}")
    if type(rank) is not int or not 0 <= rank < world:
        raise Invalid("writer.rank must be an integer from 0 to world_size - 1")
    return rank, world


async def find_writer(
    conn: AsyncConnection, user: User, run_id: str, rank: int, *, at_least: Role = Role.VIEWER
) -> Any:
    """The row of writer ``rank`` of a run the caller's role reaches (``at_least``, as for
    :func:`~gradexp.server.domain.runs.find_run`; the run's own row for rank 0);
    NotFound when the run has no such writer."""
    run = await find_run(conn, user, run_id, at_least=at_least)
    if rank == 0:
        return run
    r = s.runs
    query = run_query().add_columns(literal(run.id).label("job_id"))
    row = (await conn.execute(query.where(r.c.parent_pk == run.pk, r.c.rank == rank))).first()
    if row is None:
        raise NotFound(f"run {run_id!r} has no rank {rank}", code="not_found")
    return row


async def create_or_resume_writer(
    db: Database, user: User, run_id: str, body: dict[str, Any], rank: int, world: int
) -> tuple[bool, Any, Any]:
    """PUT of rank ``rank`` > 0: the run is created if this writer is first (it takes the
    body's fields until rank 0 arrives), then the writer's own row is created or resumed
    with the same rules as a run's (idempotent per attempt, ``run_exists`` without
    ``resume``). Returns (whether the writer's row was created, the run's row, the
    writer's row)."""
    # The run as this writer would describe it, if it is first; never rank 0's attempt.
    first = {**body, "attempt": None, "world_size": world}
    _, parent = await create_or_resume(db, user, run_id, first, only_create=True)
    created, row = await db.write(_writer_row, parent, body, rank, world)
    return created, parent, row


def _writer_row(conn: Connection, parent: Any, body: dict[str, Any], rank: int, world: int) -> Any:
    now = time.time()
    r = s.runs
    conn.execute(
        update(r)
        .where(r.c.pk == parent.pk, (r.c.world_size.is_(None)) | (r.c.world_size < world))
        .values(world_size=world)
    )
    wid = writer_id(parent.pk, rank)
    row = conn.execute(run_query().where(r.c.id == wid)).first()
    if row is None:
        conn.execute(
            insert(r).values(
                **({"pk": next_sqlite_run_pk(conn)} if conn.dialect.name == "sqlite" else {}),
                id=wid,
                project_id=parent.project_id,
                created_by=parent.created_by,
                parent_pk=parent.pk,
                rank=rank,
                name=f"{parent.name} (rank {rank})",
                state="running",
                config="{}",
                tags="[]",
                **fresh_writer_columns(body, now),
            )
        )
        return True, conn.execute(run_query().where(r.c.id == wid)).one()
    if body["attempt"] is not None and body["attempt"] == row.attempt:
        return False, row
    if row.acked_seq > 0 and not body["resume"]:
        raise Conflict(
            f"rank {rank} of run {parent.id!r} already holds data; pass resume=True to "
            "continue it, or start a new run id",
            code="run_exists",
        )
    conn.execute(
        update(r)
        .where(r.c.pk == row.pk)
        .values(
            attempt=body["attempt"],
            attempt_started_at=now,
            attempt_seq=row.acked_seq,
            state="running",
            exit_code=None,
            finished_at=None,
            finish_seq=None,
            finish_exit_code=None,
            finish_time=None,
            heartbeat_at=now,
            updated_at=now,
            host=orjson.dumps(body["host"]).decode(),
        )
    )
    return False, conn.execute(run_query().where(r.c.pk == row.pk)).one()


def settle(conn: Connection, kind: str, parent_pk: int) -> bool:
    """After a writer's finish was committed: end the run if its writers say so.

    The run fails as soon as any writer failed (the exit code of the one that failed
    first is the run's), and finishes once all ``world_size`` writers finished. Returns True when the
    run ended now. Runs in the batch's transaction; elsewhere than SQLite the run's row is
    locked first, so two writers finishing at once cannot both miss the other's finish.
    """
    r = s.runs
    stmt = select(
        r.c.pk,
        r.c.state,
        r.c.world_size,
        r.c.acked_seq,
        r.c.finish_seq,
        r.c.finish_exit_code,
        r.c.finish_time,
    ).where(r.c.pk == parent_pk)
    if kind != "sqlite":
        stmt = stmt.with_for_update()
    run = conn.execute(stmt).one()
    if run.state != "running":
        return False
    ends: dict[int, tuple[int, float]] = {}
    rank0 = rank0_finish(run)
    if rank0 is not None:
        ends[0] = rank0
    for rank, state, exit_code, finished_at in conn.execute(
        select(r.c.rank, r.c.state, r.c.exit_code, r.c.finished_at).where(
            r.c.parent_pk == parent_pk
        )
    ):
        if state in ("finished", "failed"):
            ends[int(rank)] = (int(exit_code or 0), float(finished_at or 0.0))
    # The writer that failed first is the run's failure (the others often fail because of it).
    failed = sorted((when, rank) for rank, (code, when) in ends.items() if code != 0)
    if failed:
        code, when = ends[failed[0][1]]
        state = "failed"
    elif len(ends) >= (run.world_size or 1):
        code, when = 0, max(t for _, t in ends.values())
        state = "finished"
    else:
        return False
    conn.execute(
        update(r)
        .where(r.c.pk == parent_pk)
        .values(state=state, exit_code=code, finished_at=when, updated_at=time.time())
    )
    return True
