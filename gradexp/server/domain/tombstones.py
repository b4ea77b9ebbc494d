"""What a deleted run still answers: its tombstone (``deleted_runs``, see ``manage.py``).

A run's id stays taken after the run is deleted: writing to it is refused with
:class:`Gone` (``run_deleted``), and creating it again too, so a deleted run never comes
back half-there. Reads answer as for any missing run (NotFound).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, union_all
from sqlalchemy.engine import Connection

from gradexp.server.domain.errors import Gone
from gradexp.server.storage import schema as s


def tombstone(conn: Connection, user_id: int, run_id: str) -> Any:
    """The tombstone of deleted run ``run_id`` in a project of ``user_id``'s (their own,
    or a team's they belong to), or None."""
    d, p, m = s.deleted_runs, s.projects, s.team_members
    teams = select(m.c.team_id).where(m.c.user_id == user_id)
    return conn.execute(
        select(d.c.id, d.c.deleted_at)
        .join(p, p.c.id == d.c.project_id)
        .where(d.c.id == run_id, or_(p.c.owner_id == user_id, p.c.owner_id.in_(teams)))
    ).first()


def deleted_refusal(conn: Connection, user_id: int, run_id: str) -> Gone | None:
    """The refusal for writing to a run the caller had and deleted (None when there is no
    such tombstone: the run is unknown, or someone else's, and reads as not found)."""
    if tombstone(conn, user_id, run_id) is None:
        return None
    return Gone(
        f"run {run_id!r} was deleted on the server; nothing more is stored for it "
        "(log to a new run to keep going)",
        code="run_deleted",
    )


def next_sqlite_run_pk(conn: Connection) -> int:
    """The pk a new run gets on SQLite: past every run and every tombstone.

    SQLite hands out ``max(pk) + 1``, which after a deletion may be a deleted run's pk whose
    rows the reclaimer has not removed yet; PostgreSQL and MySQL sequences never go back.
    """
    both = union_all(select(func.max(s.runs.c.pk)), select(func.max(s.deleted_runs.c.pk)))
    highest = conn.execute(select(func.max(both.subquery().c[0]))).scalar()
    return int(highest or 0) + 1
