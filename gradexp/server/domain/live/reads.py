"""The database reads behind live streams: the hub's one look per interval, and the reads
a stream makes alone when it is behind (it joined late, or resumes).

The database is the source of truth: every read is by cursor (``seq > position AND seq <=
acked_seq``), so a process sees what any other process committed, and a stream resumed
with its last event id loses and repeats nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.server.domain.runs import effective_state, run_query
from gradexp.server.storage import schema as s

#: The most rows in one ``rows`` event (a stream catching up sends several).
ROWS_PER_EVENT = 1000

_r = s.runs
#: What the hub reads of each followed run every interval: enough to see what changed
#: (the signature, the cursors, progress), nothing heavy (config, summary, host).
POLL_COLUMNS = (
    _r.c.pk,
    _r.c.id,
    _r.c.project_id,
    _r.c.state,
    _r.c.exit_code,
    _r.c.name,
    _r.c.attempt,
    _r.c.tags,
    _r.c.notes,
    _r.c.heartbeat_at,
    _r.c.acked_seq,
    _r.c.attempt_seq,
    _r.c.attempt_started_at,
    _r.c.last_step,
)


def signature(row: Any, crash_after: float) -> tuple[Any, ...]:
    """What, when it changes, deserves a ``run`` event."""
    return (
        effective_state(row, crash_after),
        row.exit_code,
        row.name,
        row.attempt,
        row.tags,
        row.notes,
    )


async def poll_runs(
    conn: AsyncConnection, run_pks: list[int], project_ids: list[int], since: float
) -> list[Any]:
    """The followed runs that can have news: those named, and those of the projects named,
    that are running (they may progress, or go quiet and read as crashed) or were updated
    since ``since``."""
    followed: list[Any] = []
    if run_pks:
        followed.append(_r.c.pk.in_(run_pks))
    if project_ids:
        # (a distributed run's other writers have rows of their own: not the project's runs)
        followed.append(and_(_r.c.project_id.in_(project_ids), _r.c.parent_pk.is_(None)))
    if not followed:
        return []
    query = (
        select(*POLL_COLUMNS)
        .where(or_(*followed))
        .where(or_(_r.c.state == "running", _r.c.updated_at >= since))
        .order_by(_r.c.pk)
    )
    return list((await conn.execute(query)).all())


async def full_runs(conn: AsyncConnection, run_pks: list[int]) -> list[Any]:
    """Whole run rows (what the run object needs), in ``run_pks`` order."""
    if not run_pks:
        return []
    found = {r.pk: r for r in (await conn.execute(run_query().where(_r.c.pk.in_(run_pks))))}
    return [found[pk] for pk in run_pks if pk in found]
