"""Projects: the caller's list, access to one by ``owner/name``, and the columns its runs
use (the runs table's filters and column chooser).

A user reaches the projects they own; anyone else's reads like one that does not exist.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.protocol.wire import STAT_SEPARATOR
from gradexp.server.domain.accounts.users import User
from gradexp.server.domain.errors import NotFound
from gradexp.server.storage import schema as s

MAX_COLUMN_KEYS = 2000


async def list_projects(conn: AsyncConnection, user: User) -> list[dict[str, Any]]:
    """The user's projects, most recently active first."""
    p, r = s.projects, s.runs
    result = await conn.execute(
        select(
            p.c.name,
            p.c.created_at,
            func.count(r.c.pk).label("run_count"),
            func.max(r.c.started_at).label("last_run_at"),
        )
        .select_from(p.outerjoin(r, (r.c.project_id == p.c.id) & r.c.parent_pk.is_(None)))
        .where(p.c.owner_id == user.id)
        .group_by(p.c.id, p.c.name, p.c.created_at)
    )
    projects = [
        {
            "owner": user.name,
            "name": row.name,
            "run_count": row.run_count,
            "last_run_at": row.last_run_at,
            "created_at": row.created_at,
        }
        for row in result.all()
    ]
    projects.sort(key=lambda x: -(x["last_run_at"] or x["created_at"]))
    return projects


async def owned_project(conn: AsyncConnection, user: User, owner: str, name: str) -> int:
    """The id of project ``owner/name`` if ``user`` may see it, else NotFound."""
    pid = None
    if owner == user.name:
        pid = (
            await conn.execute(
                select(s.projects.c.id).where(
                    s.projects.c.owner_id == user.id, s.projects.c.name == name
                )
            )
        ).scalar()
    if pid is None:
        raise NotFound(f"project {owner}/{name} not found", code="project_not_found")
    return int(pid)


async def project_columns(conn: AsyncConnection, project_id: int) -> dict[str, list[str]]:
    """Tags, summary keys (logged or set explicitly) and dotted config keys of a project's
    runs, each sorted and at most ``MAX_COLUMN_KEYS`` long."""
    r, k = s.runs, s.run_keys
    runs = (
        await conn.execute(
            select(r.c.tags, r.c.config, r.c.summary).where(
                r.c.project_id == project_id, r.c.parent_pk.is_(None)
            )
        )
    ).all()
    keys = (
        await conn.execute(
            select(distinct(k.c.key_name))
            .select_from(k.join(r, r.c.pk == k.c.run_pk))
            .where(r.c.project_id == project_id, k.c.kind.in_(("number", "bool", "string")))
            .limit(MAX_COLUMN_KEYS * 4)
        )
    ).all()
    tags: set[str] = set()
    config_keys: set[str] = set()
    explicit: set[str] = set()  # run.summary[...] = ... keys, which may never be logged
    for tags_text, config_text, summary_text in runs:
        tags.update(t for t in orjson.loads(tags_text) if type(t) is str)
        config = orjson.loads(config_text)
        if type(config) is dict:
            config_keys.update(_flat_keys(config))
        summary = orjson.loads(summary_text)
        if type(summary) is dict:
            explicit.update(
                k for k, v in summary.items() if type(v) is not dict or v.get("_type") == "float"
            )
    summary_keys = sorted({row[0] for row in keys if STAT_SEPARATOR not in row[0]} | explicit)
    return {
        "tags": sorted(tags),
        "summary_keys": summary_keys[:MAX_COLUMN_KEYS],
        "config_keys": sorted(config_keys)[:MAX_COLUMN_KEYS],
    }


def _flat_keys(config: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"a": {"b": 1}, "c": 2}`` -> ``["a.b", "c"]`` (the UI shows nested config dotted)."""
    out: list[str] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if type(value) is dict and value:
            out.extend(_flat_keys(value, name + "."))
        else:
            out.append(name)
    return out
