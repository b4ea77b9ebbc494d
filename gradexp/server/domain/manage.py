"""Changing runs after the fact: rename, notes and tags; deleting runs and projects.

Who may do what is decided by the access resolver (``access.py``): :func:`check_run_edit`
and :func:`check_project_delete` ask it, and everything else here asks them. A run or
project out of the caller's reach reads as not found; one they may only read is a 403.

Deletion is two steps, so that it is safe with several server processes and a crash at
any point:

1. **Mark** (one transaction, here): each run's row is replaced by a tombstone in
   ``deleted_runs`` and the row itself is deleted. Every read goes through the ``runs``
   row, so the run disappears from every read of every process at the commit, and its
   history, files and objects become unreachable at once. The tombstone keeps the id
   taken: a batch still arriving for it is refused with :class:`Gone` (``run_deleted``),
   and the id can never be created again half-filled with the old rows. A deleted project
   keeps its row (its id is never reused), renamed to a name no request can address, so
   the name is free for a new project at once.
2. **Reclaim** (``reclaim.py``, in the background): the rows of every table keyed by the
   run, in chunks, then its objects; resumable and idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from gradexp.server.domain.access import (
    can_delete_project,
    can_edit_run,
    can_read,
    project_role_sync,
)
from gradexp.server.domain.accounts.users import User
from gradexp.server.domain.errors import Forbidden, Invalid, NotFound
from gradexp.server.domain.runs import check_run_id, run_not_found, run_query
from gradexp.server.domain.tombstones import tombstone
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database

MAX_NAME = 256
MAX_TAG = 128
MAX_TAGS = 100
MAX_NOTES = 100_000  # characters
MAX_DELETE = 1000  # runs in one request

#: A deleted project's name: no project name starts with "~", so no request reaches it.
DELETED_PROJECT_NAME = "~deleted-{id}"


# --- who may -------------------------------------------------------------------------------


def check_run_edit(conn: Connection, user: User, run: Any, verb: str = "change") -> None:
    """Raise unless ``user`` may rename, annotate, tag or delete ``run`` (a row of
    :func:`~gradexp.server.domain.runs.run_query`): an admin or owner of its project any
    run, a member the runs they created (NotFound when they cannot even read it)."""
    role = project_role_sync(conn, user, int(run.project_id))
    if not can_read(role):
        raise run_not_found(run.id)
    if not can_edit_run(role, run.created_by, user.id):
        raise Forbidden(
            f"you may read run {run.id!r} but not {verb} it: members {verb} the runs they "
            "created, admins any run; ask a team admin",
            code="cannot_edit",
        )


def check_project_delete(conn: Connection, user: User, project: Any, label: str) -> None:
    """Raise unless ``user`` may delete ``project`` (a ``projects`` row): its owner, or an
    admin of the team that owns it."""
    role = project_role_sync(conn, user, int(project.id))
    if not can_read(role):
        raise NotFound(f"project {label} not found", code="project_not_found")
    if not can_delete_project(role):
        raise Forbidden(
            f"you may read project {label} but not delete it: only its team's admins can",
            code="cannot_delete",
        )


def validate_changes(body: Any) -> dict[str, Any]:
    """A run update (``name``, ``notes``, ``tags``; each optional), checked field by field."""
    if type(body) is not dict:
        raise Invalid("the body must be a JSON object: {name?, notes?, tags?}")
    unknown = set(body) - {"name", "notes", "tags"}
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}; only name, notes and tags")
    if not body:
        raise Invalid("nothing to change: pass name, notes or tags")
    out: dict[str, Any] = {}
    if "name" in body:
        name = body["name"]
        if type(name) is not str or not name.strip() or len(name) > MAX_NAME:
            raise Invalid(f"name must be a non-empty string up to {MAX_NAME} characters")
        out["name"] = name.strip()
    if "notes" in body:
        notes = body["notes"]
        if notes is not None and (type(notes) is not str or len(notes) > MAX_NOTES):
            raise Invalid(f"notes must be a string up to {MAX_NOTES:,} characters, or null")
        out["notes"] = orjson.dumps(notes).decode() if notes else None
    if "tags" in body:
        tags = body["tags"]
        if (
            type(tags) is not list
            or len(tags) > MAX_TAGS
            or not all(type(t) is str and 0 < len(t.strip()) <= MAX_TAG for t in tags)
        ):
            raise Invalid(
                f"tags must be a list of at most {MAX_TAGS} non-empty strings "
                f"up to {MAX_TAG} characters"
            )
        out["tags"] = orjson.dumps(list(dict.fromkeys(t.strip() for t in tags))).decode()
    return out


async def update_run(db: Database, user: User, run_id: str, changes: dict[str, Any]) -> Any:
    """Apply validated ``changes`` to the caller's run; returns the updated run row.

    ``updated_at`` moves, so every process's live hub sends the change to open pages.
    """
    check_run_id(run_id)
    return await db.write(_update_run, user, run_id, changes)


def _locked_run(conn: Connection, run_id: str) -> Any:
    stmt = run_query().where(s.runs.c.id == run_id)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update(of=s.runs)  # the run's ingest lock: batches wait
    return conn.execute(stmt).first()


def _update_run(conn: Connection, user: User, run_id: str, changes: dict[str, Any]) -> Any:
    row = _locked_run(conn, run_id)
    if row is None:
        raise run_not_found(run_id)
    check_run_edit(conn, user, row)
    conn.execute(
        update(s.runs).where(s.runs.c.pk == row.pk).values(**changes, updated_at=time.time())
    )
    return conn.execute(run_query().where(s.runs.c.pk == row.pk)).one()


# --- deletion ------------------------------------------------------------------------------


async def delete_runs(
    db: Database, user: User, run_ids: Sequence[str], *, project_id: int | None = None
) -> list[Any]:
    """Delete the caller's runs (all or none); returns the deleted rows' ``(pk, id,
    project_id)``. A run deleted already is skipped; with ``project_id``, every run must
    belong to that project."""
    if not run_ids:
        raise Invalid("name at least one run to delete")
    if len(run_ids) > MAX_DELETE:
        raise Invalid(f"at most {MAX_DELETE} runs can be deleted in one request")
    ids = list(dict.fromkeys(check_run_id(r) for r in run_ids))
    return await db.write_retrying(_delete_runs, user, ids, project_id)


def _delete_runs(
    conn: Connection, user: User, run_ids: list[str], project_id: int | None
) -> list[Any]:
    now = time.time()
    found = []
    for run_id in sorted(run_ids):  # one lock order for every deleter: no deadlock
        row = _locked_run(conn, run_id)
        if row is None or (project_id is not None and row.project_id != project_id):
            if row is None and tombstone(conn, user.id, run_id) is not None:
                continue  # deleted already (a retried request): nothing to do
            raise run_not_found(run_id)
        check_run_edit(conn, user, row, "delete")
        found.append(row)
    if found:  # a distributed run's other writers (rows of their own) go with it
        found += conn.execute(
            run_query().where(s.runs.c.parent_pk.in_([r.pk for r in found]))
        ).all()
    _bury(conn, found, user.id, now)
    return [(r.pk, r.id, r.project_id) for r in found]


def _bury(conn: Connection, rows: list[Any], user_id: int, now: float) -> None:
    """Replace run rows by their tombstones (the caller holds their locks)."""
    if not rows:
        return
    conn.execute(
        insert(s.deleted_runs),
        [
            {
                "pk": r.pk,
                "id": r.id,
                "project_id": r.project_id,
                "name": r.name,
                "deleted_at": now,
                "deleted_by": user_id,
                "reclaimed_at": None,
            }
            for r in rows
        ],
    )
    pks = [r.pk for r in rows]
    for i in range(0, len(pks), 500):
        conn.execute(delete(s.runs).where(s.runs.c.pk.in_(pks[i : i + 500])))


async def delete_project(db: Database, user: User, owner: str, name: str) -> list[Any]:
    """Delete project ``owner/name`` and every run in it; returns the runs' ``(pk, id,
    project_id)``. NotFound when the caller cannot see it."""
    return await db.write_retrying(_delete_project, user, owner, name)


def _delete_project(conn: Connection, user: User, owner: str, name: str) -> list[Any]:
    p = s.projects
    stmt = (
        select(p.c.id, p.c.owner_id, p.c.name)
        .join(s.users, s.users.c.id == p.c.owner_id)
        .where(s.users.c.name == owner, p.c.name == name, p.c.deleted_at.is_(None))
    )
    if conn.dialect.name != "sqlite":
        # Run creation takes a share lock on the row (runs._project_id): no run is born
        # into a project while it is being deleted.
        stmt = stmt.with_for_update(of=p)
    project = conn.execute(stmt).first()
    if project is None:
        raise NotFound(f"project {owner}/{name} not found", code="project_not_found")
    check_project_delete(conn, user, project, f"{owner}/{name}")
    runs = run_query().where(s.runs.c.project_id == project.id).order_by(s.runs.c.id)
    if conn.dialect.name != "sqlite":
        runs = runs.with_for_update(of=s.runs)
    rows = list(conn.execute(runs).all())
    now = time.time()
    _bury(conn, rows, user.id, now)
    conn.execute(
        update(p)
        .where(p.c.id == project.id)
        .values(name=DELETED_PROJECT_NAME.format(id=project.id), deleted_at=now)
    )
    return [(r.pk, r.id, r.project_id) for r in rows]
