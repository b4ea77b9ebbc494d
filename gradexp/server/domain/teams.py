"""Teams: entities that own projects, like users, with members in roles.

A team is a row of ``users`` with ``kind = "team"`` (so team and user names share one
namespace, and a project has one ``owner_id`` either way) that nobody signs in as; its
members are rows of ``team_members``. What each role may do is ``access.py``'s business.

Every change of membership is published to the process's ``Revocations`` after its commit
(``ACCESS_CHANGED``): the live hub then re-checks its open streams at once, so a removed
member's stream ends now; other processes find out on their next re-check.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.server.domain.access import TEAM_ROLES, Role
from gradexp.server.domain.accounts.revocations import (
    ACCESS_CHANGED,
    CredentialsEnded,
    Revocations,
)
from gradexp.server.domain.accounts.users import (
    TEAM_KIND,
    USER_KIND,
    Account,
    User,
    check_user_name,
)
from gradexp.server.domain.errors import Conflict, Invalid, NotFound
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, inserted_id


def check_role(role: str) -> str:
    """A team role name (Invalid ``bad_role`` otherwise)."""
    if role not in TEAM_ROLES:
        raise Invalid(f"role must be viewer, member or admin, not {role!r}", code="bad_role")
    return role


def no_team(name: str) -> NotFound:
    """The refusal for a team name nobody has (or the caller cannot manage)."""
    return NotFound(
        f"no team {name!r}: create it with `gradexp server team create {name}`", code="no_team"
    )


async def create_team(db: Database, name: str) -> Account:
    """A new team (no members yet); Conflict ``name_taken`` when a user or team has it."""
    check_user_name(name)

    def write(conn: Connection) -> int:
        return inserted_id(
            conn.execute(insert(s.users).values(name=name, created_at=time.time(), kind=TEAM_KIND))
        )

    try:
        return Account(await db.write(write), name)
    except IntegrityError:
        raise Conflict(
            f"the name {name!r} is taken by a user or team; teams and users share names",
            code="name_taken",
        ) from None


def _find(conn: Connection, name: str, kind: str) -> int | None:
    u = s.users
    found = conn.execute(select(u.c.id).where(u.c.name == name, u.c.kind == kind)).scalar()
    return None if found is None else int(found)


def _admins(conn: Connection, team_id: int) -> int:
    m = s.team_members
    return int(
        conn.execute(
            select(func.count()).where(m.c.team_id == team_id, m.c.role == "admin")
        ).scalar_one()
    )


async def set_member(
    db: Database,
    team: str,
    user: str,
    role: str,
    *,
    revocations: Revocations | None = None,
    keep_an_admin: bool = False,
) -> bool:
    """Add ``user`` to ``team`` as ``role``, or change their role; True when they were
    added. ``keep_an_admin`` (the web UI) refuses to demote the team's last admin."""
    check_role(role)

    def write(conn: Connection) -> bool:
        team_id = _find(conn, team, TEAM_KIND)
        if team_id is None:
            raise no_team(team)
        user_id = _find(conn, user, USER_KIND)
        if user_id is None:
            raise NotFound(
                f"no user {user!r}: create it with `gradexp server user add {user}`",
                code="no_user",
            )
        m = s.team_members
        where = (m.c.team_id == team_id, m.c.user_id == user_id)
        old = conn.execute(select(m.c.role).where(*where)).scalar()
        if old is None:
            conn.execute(
                insert(m).values(
                    team_id=team_id, user_id=user_id, role=role, created_at=time.time()
                )
            )
            return True
        conn.execute(update(m).where(*where).values(role=role))
        if keep_an_admin and old == "admin" and _admins(conn, team_id) == 0:
            raise Conflict(
                f"{user} is the last admin of {team}: make someone else admin first",
                code="last_admin",
            )
        return False

    try:
        added = await db.write(write)
    except IntegrityError:  # added at the same moment by another request: set the role
        added = await db.write(write)
    if revocations is not None and not added:
        revocations.publish(CredentialsEnded(ACCESS_CHANGED))
    return added


async def remove_member(
    db: Database,
    team: str,
    user: str,
    *,
    revocations: Revocations | None = None,
    keep_an_admin: bool = False,
) -> None:
    """Take ``user`` out of ``team``: from the next request on (open live streams
    included) the team's projects are out of their reach."""

    def write(conn: Connection) -> None:
        team_id = _find(conn, team, TEAM_KIND)
        if team_id is None:
            raise no_team(team)
        user_id = _find(conn, user, USER_KIND)
        m = s.team_members
        gone = (
            0
            if user_id is None
            else conn.execute(
                delete(m).where(m.c.team_id == team_id, m.c.user_id == user_id)
            ).rowcount
        )
        if not gone:
            raise NotFound(f"{user} is not a member of team {team}", code="not_a_member")
        if keep_an_admin and _admins(conn, team_id) == 0:
            raise Conflict(
                f"{user} is the last admin of {team}: make someone else admin first",
                code="last_admin",
            )

    await db.write(write)
    if revocations is not None:
        revocations.publish(CredentialsEnded(ACCESS_CHANGED))


async def list_teams(db: Database) -> list[dict[str, Any]]:
    """Every team with its members (name and role), teams by name."""
    u = s.users
    async with db.read() as conn:
        teams = (
            await conn.execute(
                select(u.c.id, u.c.name, u.c.created_at)
                .where(u.c.kind == TEAM_KIND)
                .order_by(u.c.name)
            )
        ).all()
        return [
            {
                "name": team.name,
                "created_at": team.created_at,
                "members": await members(conn, int(team.id)),
            }
            for team in teams
        ]


async def members(conn: AsyncConnection, team_id: int) -> list[dict[str, Any]]:
    """A team's members, admins first, then by name."""
    u, m = s.users, s.team_members
    rows = await conn.execute(
        select(u.c.name, m.c.role, m.c.created_at)
        .select_from(m.join(u, u.c.id == m.c.user_id))
        .where(m.c.team_id == team_id)
    )
    order = {"admin": 0, "member": 1, "viewer": 2}
    found = [{"name": r.name, "role": r.role, "added_at": r.created_at} for r in rows]
    return sorted(found, key=lambda x: (order.get(x["role"], 3), x["name"]))


async def user_teams(conn: AsyncConnection, user: User) -> list[dict[str, str]]:
    """The teams ``user`` belongs to, with their role in each, by name."""
    u, m = s.users, s.team_members
    rows = await conn.execute(
        select(u.c.name, m.c.role)
        .select_from(m.join(u, u.c.id == m.c.team_id))
        .where(m.c.user_id == user.id)
        .order_by(u.c.name)
    )
    return [{"name": r.name, "role": r.role} for r in rows]


async def team_role(conn: AsyncConnection, user: User, team: str) -> tuple[int, Role]:
    """Team ``team``'s id and the caller's role in it; NotFound ``no_team`` for a team the
    caller does not belong to (as for one that does not exist)."""
    u, m = s.users, s.team_members
    row = (
        await conn.execute(
            select(u.c.id, m.c.role)
            .select_from(u.join(m, m.c.team_id == u.c.id))
            .where(u.c.name == team, u.c.kind == TEAM_KIND, m.c.user_id == user.id)
        )
    ).first()
    if row is None or user.share is not None:
        raise NotFound(f"no team {team!r}", code="no_team")
    return int(row.id), TEAM_ROLES.get(row.role, Role.NONE)
