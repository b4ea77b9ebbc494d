"""Runs: create or resume (the PUT), access checks, and the run object the API returns.

Access rule (documented in docs/server.md): a user reaches the projects they own. Reading
or ingesting into a run of someone else's project answers exactly like a run that does not
exist (404 ``run_not_found``), so ids cannot be probed. The one exception is the create
call: a run id taken by another user's project is 403 (the protocol asks the SDK to stop
rather than retry), which only tells the caller that an id they already hold is in use.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import (
    Double,
    Row,
    String,
    Text,
    case,
    cast,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.protocol.names import RUN_ID_RE
from gradexp.protocol.wire import STAT_SEPARATOR
from gradexp.server import schema as s
from gradexp.server.auth import User
from gradexp.server.batch import check_project_name
from gradexp.server.db import Database, insert_ignore
from gradexp.server.errors import ApiError

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


def not_found(run_id: str) -> ApiError:
    """The one answer for a run that is missing or not the caller's."""
    return ApiError(404, "run_not_found", f"run {run_id!r} not found")


def check_run_id(run_id: str) -> str:
    """A run id per the protocol (anything else cannot exist: 404)."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise not_found(run_id)
    return run_id


async def find_run(conn: AsyncConnection, user: User, run_id: str) -> Row[Any]:
    """The caller's run, or 404."""
    check_run_id(run_id)
    row = (await conn.execute(run_query().where(s.runs.c.id == run_id))).first()
    if row is None or row.owner_id != user.id:
        raise not_found(run_id)
    return row


def effective_state(row: Any, crash_after: float, now: float | None = None) -> str:
    """``crashed`` for a running run that has been silent too long, else the stored state."""
    if row.state == "running" and (now or time.time()) - row.heartbeat_at > crash_after:
        return "crashed"
    return str(row.state)


async def summaries(conn: AsyncConnection, rows: list[Any]) -> dict[int, dict[str, Any]]:
    """Each run's summary: the last value of every key, overridden by explicit updates."""
    out: dict[int, dict[str, Any]] = {r.pk: {} for r in rows}
    if not rows:
        return out
    result = await conn.execute(
        select(s.run_keys.c.run_pk, s.run_keys.c.key_name, s.run_keys.c.last_value)
        .where(s.run_keys.c.run_pk.in_([r.pk for r in rows]))
        .order_by(s.run_keys.c.run_pk, s.run_keys.c.key_id)
    )
    for run_pk, key, value in result:
        if STAT_SEPARATOR not in key and value is not None:
            out[run_pk][key] = orjson.loads(value)
    for r in rows:
        explicit = orjson.loads(r.summary)
        if explicit:
            out[r.pk].update(explicit)
    return out


def run_object(
    row: Any, summary: dict[str, Any], base_url: str, crash_after: float
) -> dict[str, Any]:
    """The protocol's run object."""
    return {
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
        "host": orjson.loads(row.host),
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "heartbeat_at": row.heartbeat_at,
        "last_step": row.last_step,
        "acked_seq": row.acked_seq,
        "telemetry": orjson.loads(row.telemetry),
        "url": f"{base_url}/r/{row.id}",
    }


async def run_objects(
    conn: AsyncConnection, rows: list[Any], base_url: str, crash_after: float
) -> list[dict[str, Any]]:
    """Run objects for several rows, with their summaries in one query."""
    sums = await summaries(conn, rows)
    return [run_object(r, sums[r.pk], base_url, crash_after) for r in rows]


# --- create or resume ----------------------------------------------------------------------


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def validate_run_body(body: Any) -> dict[str, Any]:
    """The PUT body, checked field by field."""
    if type(body) is not dict:
        raise _bad("the body must be a JSON object describing the run")
    out: dict[str, Any] = {"project": check_project_name(body.get("project"))}
    name = body.get("name")
    if name is not None and (type(name) is not str or len(name) > 256):
        raise _bad("name must be a string up to 256 characters")
    out["name"] = name
    config = body.get("config") or {}
    if type(config) is not dict:
        raise _bad("config must be an object")
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
    attempt = body.get("attempt")
    if attempt is not None and (type(attempt) is not str or not 0 < len(attempt) <= 64):
        raise _bad("attempt must be a string up to 64 characters")
    out["attempt"] = attempt
    host = body.get("host") or {}
    if type(host) is not dict:
        raise _bad("host must be an object")
    out["host"] = host
    started = body.get("started_at")
    if started is not None and (type(started) not in (int, float) or started - started != 0):
        raise _bad("started_at must be a number (Unix seconds)")
    out["started_at"] = float(started) if started is not None else None
    resume = body.get("resume", False)
    if type(resume) is not bool:
        raise _bad("resume must be true or false")
    out["resume"] = resume
    return out


def _project_id(conn: Connection, kind: str, user: User, name: str) -> int:
    where = (s.projects.c.owner_id == user.id, s.projects.c.name == name)
    found = conn.execute(select(s.projects.c.id).where(*where)).scalar()
    if found is not None:
        return int(found)
    # Two processes may create the same project at once: insert-or-ignore, then read.
    conn.execute(
        insert_ignore(kind, s.projects).values(owner_id=user.id, name=name, created_at=time.time())
    )
    return int(conn.execute(select(s.projects.c.id).where(*where)).scalar_one())


async def create_or_resume(
    db: Database, user: User, run_id: str, body: dict[str, Any]
) -> tuple[int, Any]:
    """The PUT: returns (HTTP status, run row)."""
    check_run_id(run_id)
    try:
        return await db.write(_create_or_resume, db.kind, user, run_id, body)
    except IntegrityError:
        # Another process created the run (or its project) first; now we will find it.
        return await db.write(_create_or_resume, db.kind, user, run_id, body)


def _create_or_resume(
    conn: Connection, kind: str, user: User, run_id: str, body: dict[str, Any]
) -> tuple[int, Any]:
    now = time.time()
    stmt = run_query().where(s.runs.c.id == run_id)
    if kind != "sqlite":
        stmt = stmt.with_for_update(of=s.runs)
    row = conn.execute(stmt).first()
    if row is None:
        project_id = _project_id(conn, kind, user, body["project"])
        conn.execute(
            insert(s.runs).values(
                id=run_id,
                project_id=project_id,
                name=body["name"] or run_id,
                state="running",
                config=orjson.dumps(body["config"]).decode(),
                summary="{}",
                telemetry="{}",
                tags=orjson.dumps(body["tags"]).decode(),
                notes=orjson.dumps(body["notes"]).decode() if body["notes"] is not None else None,
                group_name=body["group"],
                host=orjson.dumps(body["host"]).decode(),
                attempt=body["attempt"],
                started_at=body["started_at"] or now,
                attempt_started_at=now,
                attempt_seq=0,
                heartbeat_at=now,
                updated_at=now,
                last_step=-1,
                acked_seq=0,
                pending_ranges="[]",
            )
        )
        created = conn.execute(run_query().where(s.runs.c.id == run_id)).one()
        return 201, created
    if row.owner_id != user.id:
        raise ApiError(
            403,
            "forbidden",
            f"run id {run_id!r} is already used by another user's project; start a new run",
        )
    if row.project_name != body["project"]:
        raise ApiError(
            409,
            "run_exists",
            f"run {run_id!r} belongs to project {row.project_name!r}, not {body['project']!r}",
        )
    if body["attempt"] is not None and body["attempt"] == row.attempt:
        return 200, row  # a retried or replayed PUT of the same init(): nothing to do
    if row.acked_seq > 0 and not body["resume"]:
        raise ApiError(
            409,
            "run_exists",
            f"run {run_id!r} already holds data; pass resume=True to continue it, "
            "or start a new run id",
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
    if body["name"]:
        values["name"] = body["name"]
    if body["tags"]:
        values["tags"] = orjson.dumps(body["tags"]).decode()
    if body["notes"] is not None:
        values["notes"] = orjson.dumps(body["notes"]).decode()
    if body["group"] is not None:
        values["group_name"] = body["group"]
    conn.execute(update(s.runs).where(s.runs.c.pk == row.pk).values(**values))
    updated = conn.execute(run_query().where(s.runs.c.id == run_id)).one()
    return 200, updated


# --- ordering by a summary or config value (the runs table's chosen columns) ---------------

VALUE_ORDER_PREFIXES = ("summary:", "config:")

# JSON type names per dialect (as ``_json_typed`` reports them): numbers, booleans, the
# name of true, JSON null.
_TYPE_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str, str]] = {
    "sqlite": (("integer", "real"), ("true", "false"), "true", "null"),
    "postgresql": (("number",), ("true", "false"), "true", "null"),
    "mysql": (
        ("INTEGER", "UNSIGNED INTEGER", "DOUBLE", "DECIMAL"),
        ("TRUE", "FALSE"),
        "TRUE",
        "NULL",
    ),
}


def value_order(kind: str, spec: str, descending: bool) -> list[Any]:
    """ORDER BY terms for ``summary:KEY`` or ``config:a.b`` (a dotted path into the config).

    Values are JSON inside text columns, so each dialect extracts them its own way (SQLite
    ``json_extract``, PostgreSQL ``jsonb``, MySQL/MariaDB ``JSON_EXTRACT``). The order is
    the one a person expects from a column of numbers, in either direction: numbers (and
    booleans, as 0/1) by value, then anything else (strings, non-finite floats) by text,
    then runs without the value, last both ways.

    A summary value is the run's explicit ``summary`` entry if it has one, else the last
    logged value of that key (``run_keys.last_value``, found through its unique index). A
    config column is the top-level key if one has that exact (dotted) name, else the
    nested path.
    """
    source, _, name = spec.partition(":")
    candidates: list[tuple[Any, list[str]]] = []  # (JSON text, path): the first present wins
    if source == "summary":
        candidates.append((s.runs.c.summary, [name]))
        last_value = (
            select(s.run_keys.c.last_value)
            .where(s.run_keys.c.run_pk == s.runs.c.pk, s.run_keys.c.key_name == name)
            .scalar_subquery()
        )
        candidates.append((last_value, []))
    else:
        candidates.append((s.runs.c.config, [name]))
        if "." in name:
            candidates.append((s.runs.c.config, name.split(".")))
    typed = [_json_typed(kind, doc, path) for doc, path in candidates]
    type_, value, text = typed[-1]
    for t, v, x in reversed(typed[:-1]):
        found = t.is_not(None)  # JSON null counts as present: it was set explicitly
        type_ = case((found, t), else_=type_)
        value = case((found, v), else_=value)
        text = case((found, x), else_=text)
    numeric, boolean, true_name, null_name = _TYPE_NAMES[kind]
    rank = case(
        (type_.in_(numeric + boolean), literal(0)),
        (or_(type_.is_(None), type_ == null_name), literal(2)),
        else_=literal(1),
    )
    number = case(
        (type_.in_(numeric), _as_double(kind, value)),
        (type_ == true_name, literal(1.0, Double)),
        (type_.in_(boolean), literal(0.0, Double)),
        else_=literal(None, Double),
    )
    label = case((type_.in_(numeric + boolean), literal(None, String)), else_=text)
    if descending:
        return [rank.asc(), number.desc(), label.desc()]
    return [rank.asc(), number.asc(), label.asc()]


def _json_typed(kind: str, doc: Any, path: list[str]) -> tuple[Any, Any, Any]:
    """(type name, value, text) of the JSON value at ``path`` in the JSON text ``doc``;
    the type is SQL NULL where there is no value. Booleans are typed by their value
    ("true"/"false") in every dialect, so they can sort as 1/0."""
    if kind == "sqlite":
        if any('"' in part for part in path):
            # SQLite's JSON paths cannot escape a double quote in a member name: such a
            # key sorts as missing rather than matching the wrong value.
            none = literal(None, String)
            return none, none, none
        jpath = "$" + "".join(f'."{part}"' for part in path)
        value = func.json_extract(doc, jpath)
        return func.json_type(doc, jpath), value, cast(value, String)
    if kind == "postgresql":
        jdoc = cast(doc, JSONB)
        parts = [literal(p, Text) for p in path]
        node = func.jsonb_extract_path(jdoc, *parts) if parts else jdoc
        as_text = (
            func.jsonb_extract_path_text(jdoc, *parts)
            if parts
            else jdoc.op("#>>")(literal_column("'{}'::text[]"))
        )
        base = func.jsonb_typeof(node)
        is_true = node == cast(literal("true"), JSONB)
        type_ = case((base == "boolean", case((is_true, "true"), else_="false")), else_=base)
        return type_, as_text, as_text
    # MySQL / MariaDB: member names quoted in the path, quotes and backslashes escaped.
    jpath = "$" + "".join(
        '."' + part.replace("\\", "\\\\").replace('"', '\\"') + '"' for part in path
    )
    node = func.json_extract(doc, jpath)
    as_text = func.json_unquote(node)
    base = func.json_type(node)
    type_ = case((base == "BOOLEAN", case((as_text == "true", "TRUE"), else_="FALSE")), else_=base)
    return type_, as_text, as_text


def _as_double(kind: str, value: Any) -> Any:
    """A JSON number, as the dialect extracted it, as a double (numeric, not text, order)."""
    if kind == "mysql":
        # SQLAlchemy skips CAST(... AS DOUBLE) on MySQL (old servers lack it); adding a
        # float zero converts the number's text to a double on every MySQL and MariaDB.
        return value.op("+")(literal_column("0e0"))
    return cast(value, Double)
