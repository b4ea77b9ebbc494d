"""Who may do what with a project: the one access resolver every route goes through.

A caller (a user, or a visitor holding a share link) has one :class:`Role` in a project:

- ``OWNER``: the project is in the caller's own namespace (as before teams: everything).
- ``ADMIN``, ``MEMBER``, ``VIEWER``: the caller's role in the team that owns the project.
- ``VIEWER`` also for every signed-in user when the project's visibility is
  ``signed_in``, and for a share link's visitor on the shared runs (and nothing else).
- ``NONE``: the project does not exist for the caller. Routes answer exactly as for a
  project or run that does not exist (404), so nothing can be probed.

The role is read from the database on every request (one indexed query; a run's lookup
joins it in), so a change of role or a removal from a team holds on the next request.
Live streams re-check it (``live/credentials.py``). The predicates (:func:`can_read`,
:func:`can_log`, :func:`can_edit_run`, ...) are the whole policy, in one place.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.server.domain.accounts.users import TEAM_KIND, User
from gradexp.server.domain.errors import NotFound
from gradexp.server.storage import schema as s

PRIVATE = "private"
SIGNED_IN = "signed_in"
VISIBILITIES = (PRIVATE, SIGNED_IN)


class Role(IntEnum):
    """A caller's standing in one project; a higher role may do all a lower one may."""

    NONE = 0
    VIEWER = 1
    MEMBER = 2
    ADMIN = 3
    OWNER = 4

    @property
    def label(self) -> str:
        """The role's name as the API and the UI show it (``viewer``, ``owner``...)."""
        return self.name.lower()


#: The roles a team member can hold (``team_members.role``).
TEAM_ROLES: dict[str, Role] = {"viewer": Role.VIEWER, "member": Role.MEMBER, "admin": Role.ADMIN}


# --- the policy ------------------------------------------------------------------------------


def can_read(role: Role) -> bool:
    """Read the project: its runs, history, files, tensors, exports, live streams."""
    return role >= Role.VIEWER


def can_log(role: Role) -> bool:
    """Create runs in the project and log to them."""
    return role >= Role.MEMBER


def can_edit_run(role: Role, run_creator_id: int | None, user_id: int) -> bool:
    """Rename, annotate, tag or delete one run: an admin (or the owner) any run, a member
    the runs they created."""
    if role >= Role.ADMIN:
        return True
    return role == Role.MEMBER and run_creator_id is not None and run_creator_id == user_id


def can_delete_project(role: Role) -> bool:
    """Delete the project with everything in it."""
    return role >= Role.ADMIN


def can_manage_members(role: Role) -> bool:
    """Add, change and remove a team's members (``role`` is the caller's role in the team)."""
    return role >= Role.ADMIN


def can_share(role: Role) -> bool:
    """Change the project's visibility and make or revoke its share links."""
    return role >= Role.ADMIN


def role_from(
    user: User,
    *,
    owner_id: int,
    owner_kind: str,
    member_role: str | None,
    visibility: str,
    project_id: int,
) -> Role:
    """The caller's role in a project, from what the database holds about it (pure)."""
    if user.share is not None:
        return Role.VIEWER if user.share.project_id == project_id else Role.NONE
    if owner_id == user.id:
        return Role.OWNER
    role = Role.NONE
    if owner_kind == TEAM_KIND and member_role is not None:
        role = TEAM_ROLES.get(member_role, Role.NONE)
    if role == Role.NONE and visibility == SIGNED_IN:
        role = Role.VIEWER
    return role


# --- reading roles -------------------------------------------------------------------------


def _role_query(user_id: int) -> Any:
    """SELECT of what decides a project's role for ``user_id`` (filter it by project)."""
    p, u, m = s.projects, s.users, s.team_members
    return (
        select(
            p.c.id,
            p.c.owner_id,
            p.c.visibility,
            u.c.kind.label("owner_kind"),
            u.c.name.label("owner_name"),
            m.c.role.label("member_role"),
        )
        .select_from(
            p.join(u, u.c.id == p.c.owner_id).outerjoin(
                m, and_(m.c.team_id == p.c.owner_id, m.c.user_id == user_id)
            )
        )
        .where(p.c.deleted_at.is_(None))
    )  # a deleted project is out of everyone's reach


def _role_of_row(user: User, row: Any) -> Role:
    return role_from(
        user,
        owner_id=int(row.owner_id),
        owner_kind=str(row.owner_kind),
        member_role=row.member_role,
        visibility=str(row.visibility),
        project_id=int(row.id),
    )


async def project_role(conn: AsyncConnection, user: User, project_id: int) -> Role:
    """The caller's role in project ``project_id`` (NONE when it does not exist)."""
    row = (await conn.execute(_role_query(user.id).where(s.projects.c.id == project_id))).first()
    return Role.NONE if row is None else _role_of_row(user, row)


def project_role_sync(conn: Connection, user: User, project_id: int) -> Role:
    """:func:`project_role` inside a write transaction (the ingest path)."""
    row = conn.execute(_role_query(user.id).where(s.projects.c.id == project_id)).first()
    return Role.NONE if row is None else _role_of_row(user, row)


async def project_roles(
    conn: AsyncConnection, pairs: set[tuple[int, int]]
) -> dict[tuple[int, int], Role]:
    """Roles of many ``(user id, project id)`` pairs of signed-in users (the live hub's
    re-check of its open streams), one query per user."""
    out: dict[tuple[int, int], Role] = {}
    by_user: dict[int, set[int]] = {}
    for user_id, project_id in pairs:
        by_user.setdefault(user_id, set()).add(project_id)
    for user_id, project_ids in by_user.items():
        user = User(id=user_id, name="")
        rows = await conn.execute(_role_query(user_id).where(s.projects.c.id.in_(project_ids)))
        for row in rows:
            out[(user_id, int(row.id))] = _role_of_row(user, row)
    return {pair: out.get(pair, Role.NONE) for pair in pairs}


def project_not_found(owner: str, name: str) -> NotFound:
    """The one answer for a project that is missing or out of the caller's reach."""
    return NotFound(f"project {owner}/{name} not found", code="project_not_found")


async def find_project(
    conn: AsyncConnection, user: User, owner: str, name: str, *, at_least: Role = Role.VIEWER
) -> tuple[int, Role]:
    """Project ``owner/name`` and the caller's role in it, if that is at least ``at_least``;
    else NotFound, exactly like a project that does not exist."""
    row = (
        await conn.execute(
            _role_query(user.id).where(s.users.c.name == owner, s.projects.c.name == name)
        )
    ).first()
    role = Role.NONE if row is None else _role_of_row(user, row)
    if row is None or role < at_least or role == Role.NONE:
        raise project_not_found(owner, name)
    return int(row.id), role


def run_visible(user: User, run_id: str) -> bool:
    """Whether a share link's visitor may see this run of the shared project (a user: yes,
    the project's role decides)."""
    return user.share is None or run_id in user.share.run_ids
