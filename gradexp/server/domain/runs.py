"""Runs: create or resume (the PUT), access checks, and the run object the API returns.

Access rule (docs/teams.md): the caller's role in the run's project (``access.py``)
decides. Reading or ingesting into a run out of the caller's reach answers exactly like a
run that does not exist (NotFound ``run_not_found``), so ids cannot be probed. The one
exception is the create call: a run id taken by a project the caller cannot log to is
Forbidden (the protocol asks the SDK to stop rather than retry), which only tells the
caller that an id they already hold is in use.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Row, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.protocol.wire import STAT_SEPARATOR
from gradexp.server.domain.access import (
    Role,
    can_log,
    project_role,
    project_role_sync,
    run_visible,
)
from gradexp.server.domain.accounts.users import TEAM_KIND, User
from gradexp.server.domain.errors import Conflict, Forbidden, Invalid, NotFound
from gradexp.server.domain.limits import MAX_NESTING, deeper_than
from gradexp.server.domain.names import project_name_problem, run_id_problem
from gradexp.server.domain.summaries import SUMMARY_COLUMNS, MetricDefs, summary_entries
from gradexp.server.domain.tombstones import deleted_refusal, next_sqlite_run_pk
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, insert_ignore

RUN_COLUMNS = (
    s.runs,
    s.projects.c.name.label("project_name"),
    s.projects.c.owner_id,
    s.users.c.name.label("owner_name"),
)


def run_query() -> Any:
    """SELECT of a run row with its project and owner names."""
    return (
        select(*RUN_COLUMNS)
        .join(s.projects, s.projects.c.id == s.runs.c.project_id)
        .join(s.users, s.users.c.id == s.projects.c.owner_id)
    )


def run_not_found(run_id: str) -> NotFound:
    """The one answer for a run that is missing or not the caller's."""
    return NotFound(f"run {run_id!r} not found", code="run_not_found")


def check_run_id(run_id: str) -> str:
    """A run id per the protocol (anything else cannot exist: NotFound)."""
    if run_id_problem(run_id) is not None:
        raise run_not_found(run_id)
    return run_id


async def find_run(
    conn: AsyncConnection, user: User, run_id: str, *, at_least: Role = Role.VIEWER
) -> Row[Any]:
    """The run, if the caller's role in its project is at least ``at_least``; else
    NotFound, exactly as for a run that does not exist."""
    return (await find_run_role(conn, user, run_id, at_least=at_least))[0]


async def find_run_role(
    conn: AsyncConnection, user: User, run_id: str, *, at_least: Role = Role.VIEWER
) -> tuple[Row[Any], Role]:
    """The run and the caller's role in its project (see :func:`find_run`)."""
    check_run_id(run_id)
    row = (await conn.execute(run_query().where(s.runs.c.id == run_id))).first()
    if row is None or not run_visible(user, run_id):
        raise run_not_found(run_id)
    if row.owner_id == user.id and user.share is None:
        role = Role.OWNER  # the common case costs no second query
    else:
        role = await project_role(conn, user, int(row.project_id))
    if role == Role.NONE or role < at_least:
        raise run_not_found(run_id)
    return row, role


async def run_by_pk(conn: AsyncConnection, run_pk: int) -> Row[Any]:
    """A run's row (with its project and owner names) by primary key (no access check)."""
    return (await conn.execute(run_query().where(s.runs.c.pk == run_pk))).one()


async def project_runs(
    conn: AsyncConnection, project_id: int, *, touched_since: float | None = None
) -> list[Row[Any]]:
    """A project's run rows; with ``touched_since``, only the runs that can have news since
    then: running ones (they may progress, or go quiet and read as crashed) and any
    updated since."""
    query = run_query().where(s.runs.c.project_id == project_id, s.runs.c.parent_pk.is_(None))
    if touched_since is not None:
        query = query.where(or_(s.runs.c.state == "running", s.runs.c.updated_at >= touched_since))
    return list((await conn.execute(query)).all())


def effective_state(row: Any, crash_after: float, now: float | None = None) -> str:
    """``crashed`` for a running run that has been silent too long, else the stored state."""
    if row.state == "running" and (now or time.time()) - row.heartbeat_at > crash_after:
        return "crashed"
    return str(row.state)


async def summaries(conn: AsyncConnection, rows: list[Any]) -> dict[int, dict[str, Any]]:
    """Each run's summary: the last value of every key (or what its ``define_metric``
    definition chose, see ``summaries.py``), overridden by explicit updates."""
    out: dict[int, dict[str, Any]] = {r.pk: {} for r in rows}
    if not rows:
        return out
    k = s.run_keys
    defs = {r.pk: MetricDefs.parse(r.metrics) for r in rows}
    plain = [r.pk for r in rows if defs[r.pk] is None]
    defined = [r.pk for r in rows if defs[r.pk] is not None]
    if plain:
        result = await conn.execute(
            select(k.c.run_pk, k.c.key_name, k.c.last_value)
            .where(k.c.run_pk.in_(plain))
            .order_by(k.c.run_pk, k.c.key_id)
        )
        for run_pk, key, value in result:
            if STAT_SEPARATOR not in key and value is not None:
                out[run_pk][key] = orjson.loads(value)
    if defined:
        result = await conn.execute(
            select(k.c.run_pk, *SUMMARY_COLUMNS)
            .where(k.c.run_pk.in_(defined))
            .order_by(k.c.run_pk, k.c.key_id)
        )
        for row in result:
            key = row.key_name
            if STAT_SEPARATOR in key or row.last_value is None:
                continue
            run_defs = defs[row.run_pk]
            assert run_defs is not None
            out[row.run_pk].update(summary_entries(key, run_defs.for_key(key), row))
    for r in rows:
        explicit = orjson.loads(r.summary)
        if explicit:
            out[r.pk].update(explicit)
    return out


def run_object(
    row: Any,
    summary: dict[str, Any],
    base_url: str,
    crash_after: float,
    writers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The protocol's run object (``writers``: its ranks, for a run of several)."""
    obj = {
        "id": row.id,
        "project": row.project_name,
        "owner": row.owner_name,
        "name": row.name,
        "state": effective_state(row, crash_after),
        "exit_code": row.exit_code,
        "config": orjson.loads(row.config),
        "summary": summary,
        "tags": orjson.loads(row.tags),
        "notes": orjson.loads(row.notes) if row.notes is not None else None,
        "group": row.group_name,
        "job_type": row.job_type,
        "metrics": _metric_list(row.metrics),
        "host": orjson.loads(row.host),
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "heartbeat_at": row.heartbeat_at,
        "last_step": row.last_step,
        "acked_seq": row.acked_seq,
        "telemetry": orjson.loads(row.telemetry),
        "url": f"{base_url}/r/{row.id}",
    }
    if writers:
        obj["world_size"] = row.world_size
        obj["writers"] = writers
    return obj


def _metric_list(text: str | None) -> list[dict[str, Any]]:
    """``runs.metrics`` as the run object lists it: one definition per name, in the order
    they were defined."""
    defs = MetricDefs.parse(text)
    if defs is None:
        return []
    return [
        {"name": name, **{k: v for k, v in d.items() if k != "seq"}}
        for name, d in defs.defs.items()
    ]


async def run_objects(
    conn: AsyncConnection, rows: list[Any], base_url: str, crash_after: float
) -> list[dict[str, Any]]:
    """Run objects for several rows, with their summaries in one query."""
    sums = await summaries(conn, rows)
    writers = await writer_lists(conn, rows, crash_after)
    return [run_object(r, sums[r.pk], base_url, crash_after, writers.get(r.pk)) for r in rows]


# --- the writers of a distributed run (writers.py) ------------------------------------------


def rank0_finish(run: Any) -> tuple[int, float] | None:
    """Rank 0's (exit code, time) once its finish is committed, else None."""
    if run.finish_seq is not None and run.acked_seq >= run.finish_seq:
        return int(run.finish_exit_code), float(run.finish_time)
    return None


def _writer(
    rank: int, row: Any, state: str, exit_code: int | None, finished_at: Any
) -> dict[str, Any]:
    return {
        "rank": rank,
        "state": state,
        "exit_code": exit_code,
        "host": orjson.loads(row.host),
        "started_at": row.started_at,
        "finished_at": finished_at,
        "heartbeat_at": row.heartbeat_at,
        "last_step": row.last_step,
        "acked_seq": row.acked_seq,
    }


async def writer_lists(
    conn: AsyncConnection, rows: list[Any], crash_after: float
) -> dict[int, list[dict[str, Any]]]:
    """``{run pk: [writer, ...]}`` for the runs of several writers among ``rows``: each
    rank's state (``running``, ``finished``, ``failed``, or ``crashed`` when it has been
    silent too long), exit code, host and progress, in rank order."""
    many = {row.pk: row for row in rows if (row.world_size or 1) > 1}
    if not many:
        return {}
    now = time.time()
    out: dict[int, list[dict[str, Any]]] = {}
    for pk, run in many.items():
        end = rank0_finish(run)
        if end is not None:
            state = "finished" if end[0] == 0 else "failed"
            out[pk] = [_writer(0, run, state, end[0], end[1])]
        else:
            state = "crashed" if now - run.heartbeat_at > crash_after else "running"
            out[pk] = [_writer(0, run, state, None, None)]
    r = s.runs
    result = await conn.execute(
        select(r).where(r.c.parent_pk.in_(list(many))).order_by(r.c.parent_pk, r.c.rank)
    )
    for row in result:
        state = effective_state(row, crash_after, now)
        out[row.parent_pk].append(
            _writer(int(row.rank), row, state, row.exit_code, row.finished_at)
        )
    return out


# --- create or resume ----------------------------------------------------------------------


def _bad(message: str) -> Invalid:
    return Invalid(message)


def validate_run_body(body: Any) -> dict[str, Any]:
    """The PUT body, checked field by field."""
    if type(body) is not dict:
        raise _bad("the body must be a JSON object describing the run")
    problem = project_name_problem(body.get("project"))
    if problem is not None:
        raise _bad(problem)
    out: dict[str, Any] = {"project": body["project"]}
    name = body.get("name")
    if name is not None and (type(name) is not str or len(name) > 256):
        raise _bad("name must be a string up to 256 characters")
    out["name"] = name
    config = body.get("config") or {}
    if type(config) is not dict:
        raise _bad("config must be an object")
    if deeper_than(config):
        raise _bad(f"config nests more than {MAX_NESTING} levels deep")
    out["config"] = config
    tags = body.get("tags") or []
    if type(tags) is not list or not all(type(t) is str and 0 < len(t) <= 128 for t in tags):
        raise _bad("tags must be a list of non-empty strings up to 128 characters")
    out["tags"] = list(dict.fromkeys(tags))
    notes = body.get("notes")
    if notes is not None and type(notes) is not str:
        raise _bad("notes must be a string or null")
    out["notes"] = notes
    group = body.get("group")
    if group is not None and (type(group) is not str or len(group) > 256):
        raise _bad("group must be a string up to 256 characters or null")
    out["group"] = group
    job_type = body.get("job_type")
    if job_type is not None and (type(job_type) is not str or len(job_type) > 64):
        raise _bad("job_type must be a string up to 64 characters or null")
    out["job_type"] = job_type
    attempt = body.get("attempt")
    if attempt is not None and (type(attempt) is not str or not 0 < len(attempt) <= 64):
        raise _bad("attempt must be a string up to 64 characters")
    out["attempt"] = attempt
    host = body.get("host") or {}
    if type(host) is not dict:
        raise _bad("host must be an object")
    if deeper_than(host):
        raise _bad(f"host nests more than {MAX_NESTING} levels deep")
    out["host"] = host
    started = body.get("started_at")
    if started is not None and (type(started) not in (int, float) or started - started != 0):
        raise _bad("started_at must be a number (Unix seconds)")
    out["started_at"] = float(started) if started is not None else None
    resume = body.get("resume", False)
    if type(resume) is not bool:
        raise _bad("resume must be true or false")
    out["resume"] = resume
    entity = body.get("entity")
    if entity is not None and project_name_problem(entity, noun="entity") is not None:
        raise _bad("entity must be the name of a user or team, or null")
    out["entity"] = entity
    return out


def _log_owner(conn: Connection, user: User, entity: str | None) -> int:
    """The id of the namespace a run of ``user`` goes to: their own, or team ``entity``
    when they may log there (a viewer is told why not; anyone else hears of no team)."""
    if entity is None or entity == user.name:
        return user.id
    u, m = s.users, s.team_members
    team = conn.execute(select(u.c.id).where(u.c.name == entity, u.c.kind == TEAM_KIND)).first()
    role = None
    if team is not None:
        role = conn.execute(
            select(m.c.role).where(m.c.team_id == team.id, m.c.user_id == user.id)
        ).scalar()
    if team is None or role is None:
        raise NotFound(
            f"no team {entity!r} that {user.name} belongs to: ask a team admin to add you "
            f"(`gradexp server team add {entity} {user.name} --role member`)",
            code="entity_not_found",
        )
    if role not in ("member", "admin"):
        raise Forbidden(
            f"{user.name} is a {role} of team {entity!r}: viewers read its projects, only "
            "members and admins log runs; ask a team admin to make you a member",
            code="cannot_log",
        )
    return int(team.id)


def _project_id(conn: Connection, kind: str, owner_id: int, name: str) -> int:
    where = (s.projects.c.owner_id == owner_id, s.projects.c.name == name)
    stmt = select(s.projects.c.id).where(*where)
    if kind != "sqlite":
        # Deleting the project locks its row for update: no run is born into it meanwhile.
        # A share lock: runs starting in the same project do not wait for one another (a
        # thousand runs of a sweep starting at once queued on this row).
        stmt = stmt.with_for_update(read=True)
    found = conn.execute(stmt).scalar()
    if found is not None:
        return int(found)
    # Two processes may create the same project at once: insert-or-ignore, then read.
    conn.execute(
        insert_ignore(kind, s.projects).values(owner_id=owner_id, name=name, created_at=time.time())
    )
    return int(conn.execute(select(s.projects.c.id).where(*where)).scalar_one())


async def create_or_resume(
    db: Database, user: User, run_id: str, body: dict[str, Any], *, only_create: bool = False
) -> tuple[bool, Any]:
    """Create the run, or resume it: returns (whether it was created, the run row).

    ``body["world_size"]`` (optional): the writers a distributed run waits for
    (``writers.py``). ``only_create``: an existing run is returned as it is (another
    rank of the job arriving first creates the run, and never resumes it).
    """
    check_run_id(run_id)
    try:
        return await db.write(_create_or_resume, db.kind, user, run_id, body, only_create)
    except IntegrityError:
        # Another process created the run (or its project) first; now we will find it.
        return await db.write(_create_or_resume, db.kind, user, run_id, body, only_create)


def _refuse_deleted_id(conn: Connection, user: User, run_id: str) -> None:
    """A deleted run's id is never created again: Gone for its owner, taken for others.
    (One read for the usual new id, which no deleted run had.)"""
    if not conn.execute(select(s.deleted_runs.c.pk).where(s.deleted_runs.c.id == run_id)).first():
        return
    refusal = deleted_refusal(conn, user.id, run_id)
    if refusal is not None:
        raise refusal
    raise Forbidden(f"run id {run_id!r} was used by another user's run; start a new run")


def fresh_writer_columns(body: dict[str, Any], now: float) -> dict[str, Any]:
    """The columns a new run (or a new writer of a distributed run) starts with: nothing
    acknowledged, no step, its first attempt (``body``: a validated PUT body)."""
    return {
        "summary": "{}",
        "telemetry": "{}",
        "host": orjson.dumps(body["host"]).decode(),
        "attempt": body["attempt"],
        "started_at": body["started_at"] or now,
        "attempt_started_at": now,
        "attempt_seq": 0,
        "heartbeat_at": now,
        "updated_at": now,
        "last_step": -1,
        "acked_seq": 0,
        "pending_ranges": "[]",
    }


def _create_or_resume(
    conn: Connection,
    kind: str,
    user: User,
    run_id: str,
    body: dict[str, Any],
    only_create: bool = False,
) -> tuple[bool, Any]:
    now = time.time()
    stmt = run_query().where(s.runs.c.id == run_id)
    if kind != "sqlite":
        stmt = stmt.with_for_update(of=s.runs)
    row = conn.execute(stmt).first()
    owner_id = _log_owner(conn, user, body.get("entity"))
    if row is None:
        _refuse_deleted_id(conn, user, run_id)
        project_id = _project_id(conn, kind, owner_id, body["project"])
        conn.execute(
            insert(s.runs).values(
                **({"pk": next_sqlite_run_pk(conn)} if kind == "sqlite" else {}),
                id=run_id,
                project_id=project_id,
                created_by=user.id,
                name=body["name"] or run_id,
                state="running",
                config=orjson.dumps(body["config"]).decode(),
                tags=orjson.dumps(body["tags"]).decode(),
                notes=orjson.dumps(body["notes"]).decode() if body["notes"] is not None else None,
                group_name=body["group"],
                job_type=body["job_type"],
                world_size=body.get("world_size"),
                **fresh_writer_columns(body, now),
            )
        )
        created = conn.execute(run_query().where(s.runs.c.id == run_id)).one()
        return True, created
    if row.owner_id != user.id and not can_log(project_role_sync(conn, user, row.project_id)):
        raise Forbidden(
            f"run id {run_id!r} is already used by another user's project; start a new run"
        )
    if row.owner_id != owner_id:
        raise Conflict(
            f"run {run_id!r} belongs to {row.owner_name}/{row.project_name}, not "
            f"{body.get('entity') or user.name}/{body['project']}",
            code="run_exists",
        )
    if row.project_name != body["project"]:
        raise Conflict(
            f"run {run_id!r} belongs to project {row.project_name!r}, not {body['project']!r}",
            code="run_exists",
        )
    if only_create:
        return False, row
    if body["attempt"] is not None and body["attempt"] == row.attempt:
        return False, row  # a retried or replayed PUT of the same init(): nothing to do
    if row.acked_seq > 0 and not body["resume"]:
        raise Conflict(
            f"run {run_id!r} already holds data; pass resume=True to continue it, "
            "or start a new run id",
            code="run_exists",
        )
    config = {**orjson.loads(row.config), **body["config"]}
    values: dict[str, Any] = {
        "attempt": body["attempt"],
        "attempt_started_at": now,
        "attempt_seq": row.acked_seq,
        "state": "running",
        "exit_code": None,
        "finished_at": None,
        "finish_seq": None,
        "finish_exit_code": None,
        "finish_time": None,
        "heartbeat_at": now,
        "updated_at": now,
        "config": orjson.dumps(config).decode(),
        "host": orjson.dumps(body["host"]).decode(),
    }
    if body.get("world_size"):
        values["world_size"] = body["world_size"]
    if body["name"]:
        values["name"] = body["name"]
    if body["tags"]:
        values["tags"] = orjson.dumps(body["tags"]).decode()
    if body["notes"] is not None:
        values["notes"] = orjson.dumps(body["notes"]).decode()
    if body["group"] is not None:
        values["group_name"] = body["group"]
    if body["job_type"] is not None:
        values["job_type"] = body["job_type"]
    conn.execute(update(s.runs).where(s.runs.c.pk == row.pk).values(**values))
    updated = conn.execute(run_query().where(s.runs.c.id == run_id)).one()
    return False, updated
