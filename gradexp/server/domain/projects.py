"""Projects: the caller's list, access to one by ``owner/name``, and the columns its runs
use (the runs table's filters and column chooser).

Who reaches which project is decided by ``access.py``; a project out of reach reads like
one that does not exist.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.protocol.wire import STAT_SEPARATOR
from gradexp.server.domain.access import SIGNED_IN, Role, find_project, project_not_found, role_from
from gradexp.server.domain.accounts.users import User
from gradexp.server.storage import schema as s

MAX_COLUMN_KEYS = 2000


async def list_projects(conn: AsyncConnection, user: User) -> list[dict[str, Any]]:
    """The projects the user reaches, most recently active first: their own, their
    teams', and those every signed-in user may read; each with the user's ``role``."""
    p, r, u, m = s.projects, s.runs, s.users, s.team_members
    teams = select(m.c.team_id).where(m.c.user_id == user.id)
    result = await conn.execute(
        select(
            p.c.id,
            p.c.name,
            p.c.created_at,
            p.c.owner_id,
            p.c.visibility,
            u.c.name.label("owner_name"),
            u.c.kind.label("owner_kind"),
            m.c.role.label("member_role"),
            func.count(r.c.pk).label("run_count"),
            func.max(r.c.started_at).label("last_run_at"),
        )
        .select_from(
            p.join(u, u.c.id == p.c.owner_id)
            .outerjoin(m, and_(m.c.team_id == p.c.owner_id, m.c.user_id == user.id))
            .outerjoin(r, (r.c.project_id == p.c.id) & r.c.parent_pk.is_(None))
        )
        .where(
            or_(p.c.owner_id == user.id, p.c.owner_id.in_(teams), p.c.visibility == SIGNED_IN),
            p.c.deleted_at.is_(None),
        )
        .group_by(
            p.c.id,
            p.c.name,
            p.c.created_at,
            p.c.owner_id,
            p.c.visibility,
            u.c.name,
            u.c.kind,
            m.c.role,
        )
    )
    projects = []
    for row in result.all():
        role = role_from(
            user,
            owner_id=row.owner_id,
            owner_kind=row.owner_kind,
            member_role=row.member_role,
            visibility=row.visibility,
            project_id=row.id,
        )
        if role == Role.NONE:
            continue
        projects.append(
            {
                "owner": row.owner_name,
                "owner_kind": row.owner_kind,
                "name": row.name,
                "role": role.label,
                "visibility": row.visibility,
                "run_count": row.run_count,
                "last_run_at": row.last_run_at,
                "created_at": row.created_at,
            }
        )
    projects.sort(key=lambda x: -(x["last_run_at"] or x["created_at"]))
    return projects


async def owned_project(conn: AsyncConnection, user: User, owner: str, name: str) -> int:
    """The id of project ``owner/name`` if ``user`` may read it, else NotFound."""
    return (await project_access(conn, user, owner, name))[0]


async def project_access(
    conn: AsyncConnection, user: User, owner: str, name: str
) -> tuple[int, Role]:
    """Project ``owner/name``'s id and the caller's role, if they may read it; else
    NotFound. A share link opens runs, never a project's listing."""
    if user.share is not None:
        raise project_not_found(owner, name)
    return await find_project(conn, user, owner, name)


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
            select(k.c.key_name)
            .distinct()
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
