"""A project's runs as the runs table lists them: filtered, ordered, a page at a time.

Runs are ordered by a column of their own (start time, name, state...) or by any summary
or config value (``summary:KEY``, ``config:a.b``), which each database extracts from JSON
its own way (see :func:`value_order`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    Double,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.server.domain.errors import Invalid
from gradexp.server.domain.runs import run_query
from gradexp.server.storage import schema as s

MAX_PAGE = 1000

ORDERS = {
    "started_at": s.runs.c.started_at,
    "name": s.runs.c.name,
    "state": s.runs.c.state,
    "last_step": s.runs.c.last_step,
    "heartbeat_at": s.runs.c.heartbeat_at,
    "finished_at": s.runs.c.finished_at,
}


@dataclass(frozen=True)
class RunFilter:
    """What the runs table asks for: a state (``crashed`` and ``running`` are told apart by
    the heartbeat), a search in names and ids, a tag, a group."""

    state: str | None = None
    q: str | None = None
    tag: str | None = None
    group: str | None = None


def parse_order(order: str) -> tuple[str, bool]:
    """``-started_at`` -> (``started_at``, descending); Invalid for an unknown order."""
    desc = order.startswith("-")
    field = order[1:] if order[:1] in "-+" and order else order
    name = field.partition(":")[2]
    by_value = field.startswith(VALUE_ORDER_PREFIXES) and 0 < len(name) <= MAX_ORDER_KEY
    if by_value and any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) < 0xE000 for c in name):
        # NUL and other control characters: no key can hold them, and SQL JSON paths choke.
        raise Invalid(f"cannot order by {order!r}: the key holds a control character")
    if field not in ORDERS and not by_value:
        raise Invalid(
            f"cannot order by {order!r}; use one of {', '.join(sorted(ORDERS))}, "
            "summary:KEY or config:KEY (prefix - for descending)"
        )
    return field, desc


async def list_runs(
    conn: AsyncConnection,
    kind: str,
    project_id: int,
    filters: RunFilter,
    *,
    order: tuple[str, bool],
    limit: int,
    offset: int,
    crash_after: float,
) -> tuple[list[Any], int]:
    """One page of a project's runs (rows with project and owner names) and the total that
    match; ``order``: (field, descending) from :func:`parse_order`; ``kind``: the
    database's."""
    field, desc = order
    # (a distributed run's other writers have rows of their own: never listed)
    cond: list[Any] = [s.runs.c.project_id == project_id, s.runs.c.parent_pk.is_(None)]
    crash_cutoff = time.time() - crash_after
    if filters.state == "crashed":
        cond += [s.runs.c.state == "running", s.runs.c.heartbeat_at < crash_cutoff]
    elif filters.state == "running":
        cond += [s.runs.c.state == "running", s.runs.c.heartbeat_at >= crash_cutoff]
    elif filters.state:
        cond.append(s.runs.c.state == filters.state)
    if filters.q:
        like = f"%{filters.q.replace('%', '').replace('_', '')}%"
        cond.append(or_(s.runs.c.name.like(like), s.runs.c.id.like(like)))
    if filters.tag:
        # tags are a JSON list of strings; the quoted form matches exactly one tag.
        cond.append(s.runs.c.tags.contains(orjson.dumps(filters.tag).decode()))
    if filters.group:
        cond.append(s.runs.c.group_name == filters.group)
    total = (
        await conn.execute(select(func.count()).select_from(s.runs).where(and_(*cond)))
    ).scalar_one()
    column = ORDERS.get(field)
    query = run_query()
    if column is not None:
        ordering = [column.desc() if desc else column.asc()]
    else:
        joined, ordering = value_order(kind, field, desc)
        if joined is not None:
            query = query.join(joined, true())
    ordering.append(s.runs.c.pk.desc() if desc else s.runs.c.pk.asc())
    rows = (
        await conn.execute(
            query.where(*cond).order_by(*ordering).limit(min(limit, MAX_PAGE)).offset(offset)
        )
    ).all()
    return list(rows), int(total)


# --- ordering by a summary or config value (the runs table's chosen columns) ----------------

VALUE_ORDER_PREFIXES = ("summary:", "config:")
MAX_ORDER_KEY = 512  # characters of a summary:/config: key to order by

# JSON type names per dialect (as ``_json_typed`` reports them): numbers, booleans, the
# name of true, JSON null.
_TYPE_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str, str]] = {
    "sqlite": (("integer", "real"), ("true", "false"), "true", "null"),
    "mysql": (
        ("INTEGER", "UNSIGNED INTEGER", "DOUBLE", "DECIMAL"),
        ("TRUE", "FALSE"),
        "TRUE",
        "NULL",
    ),
}


def value_order(kind: str, spec: str, descending: bool) -> tuple[Any | None, list[Any]]:
    """ORDER BY terms for ``summary:KEY`` or ``config:a.b`` (a dotted path into the config),
    and a LATERAL subquery the query must join (``ON true``) for them, or None.

    Values are JSON inside text columns, so each dialect extracts them its own way (SQLite
    ``json_extract``, PostgreSQL ``jsonb`` once per run in a LATERAL subquery,
    MySQL/MariaDB ``JSON_EXTRACT``). The order is
    the one a person expects from a column of numbers, in either direction: numbers (and
    booleans, as 0/1) by value, then anything else (strings, non-finite floats) by text,
    then runs without the value, last both ways.

    A summary value is the run's explicit ``summary`` entry if it has one, else the value
    a ``define_metric`` definition chose (``run_keys.summary_value``), else the last
    logged value of that key (``run_keys.last_value``, found through its unique index). A
    config column is the top-level key if one has that exact (dotted) name, else the
    nested path.
    """
    if kind == "postgresql":
        value = _pg_value(spec)
        return value, _pg_value_order(value.c.node, descending)
    source, _, name = spec.partition(":")
    candidates: list[tuple[Any, list[str]]] = []  # (JSON text, path): the first present wins
    if source == "summary":
        candidates.append((s.runs.c.summary, [name]))
        for column in (s.run_keys.c.summary_value, s.run_keys.c.last_value):
            # summary_value: what a define_metric definition chose (min, max...), if any
            logged = (
                select(column)
                .where(s.run_keys.c.run_pk == s.runs.c.pk, s.run_keys.c.key_name == name)
                .scalar_subquery()
            )
            candidates.append((logged, []))
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
        return None, [rank.asc(), number.desc(), label.desc()]
    return None, [rank.asc(), number.asc(), label.asc()]


def _pg_value(spec: str) -> Any:
    """PostgreSQL: the value to order by, as one ``jsonb`` per run (``node``, SQL NULL when
    the run has none), in a LATERAL subquery so each run's JSON is read once.

    The same value as the other dialects' (the first candidate present; JSON null counts
    as present). Written inline in each sort term, as SQLite and MySQL take it, every JSON
    cast and ``run_keys`` lookup was repeated: a quarter of a second at 10,000 runs.
    """
    source, _, name = spec.partition(":")
    nodes: list[Any] = []
    if source == "summary":
        nodes.append(func.jsonb_extract_path(cast(s.runs.c.summary, JSONB), literal(name, Text)))
        # One lookup of the key's row: what a define_metric definition chose, else the
        # last logged value.
        logged = (
            select(
                func.coalesce(
                    cast(s.run_keys.c.summary_value, JSONB), cast(s.run_keys.c.last_value, JSONB)
                )
            )
            .where(s.run_keys.c.run_pk == s.runs.c.pk, s.run_keys.c.key_name == name)
            .correlate(s.runs)
            .scalar_subquery()
        )
        nodes.append(logged)
    else:
        config = cast(s.runs.c.config, JSONB)
        nodes.append(func.jsonb_extract_path(config, literal(name, Text)))
        if "." in name:
            parts = [literal(p, Text) for p in name.split(".")]
            nodes.append(func.jsonb_extract_path(config, *parts))
    return select(func.coalesce(*nodes).label("node")).correlate(s.runs).lateral("order_value")


def _pg_value_order(node: Any, descending: bool) -> list[Any]:
    """ORDER BY terms for a ``jsonb`` value, in the order :func:`value_order` gives."""
    kind = func.jsonb_typeof(node)
    as_text = node.op("#>>")(literal_column("'{}'::text[]"))
    rank = case(
        (kind.in_(("number", "boolean")), literal(0)),
        (or_(kind.is_(None), kind == "null"), literal(2)),
        else_=literal(1),
    )
    number = case(
        (kind == "number", cast(as_text, Double)),
        (node == cast(literal("true"), JSONB), literal(1.0, Double)),
        (kind == "boolean", literal(0.0, Double)),
        else_=literal(None, Double),
    )
    label = case((kind.in_(("number", "boolean")), literal(None, String)), else_=as_text)
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
