"""Share links and project visibility: how results are shown beyond the owner or team.

A share link opens some runs of one project (one run, or the runs of a compare view)
read-only, live, to anyone holding its URL, without an account. Its token is 256 random
bits; only the SHA-256 is stored, so the database alone cannot open a link. A link can
expire (``expires_at``) and be revoked; either ends it at once, open live pages included
(the hub re-checks them, ``live/credentials.py``). The visitor is a
:class:`~gradexp.server.domain.accounts.users.User` with ``share`` set, which the access
resolver lets read the shared runs and nothing else (no project listing, no other run).

A project's visibility is ``private`` (its owner, or its team) or ``signed_in`` (every
signed-in user of the server may read it; writing still takes a team role).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.server.domain.access import VISIBILITIES
from gradexp.server.domain.accounts.revocations import (
    ACCESS_CHANGED,
    CredentialsEnded,
    Revocations,
)
from gradexp.server.domain.accounts.tokens import new_token, token_hash
from gradexp.server.domain.accounts.users import SharedView, User
from gradexp.server.domain.errors import Invalid, NotFound
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, inserted_id

TOKEN_PREFIX = "gxs_"
MAX_SHARED_RUNS = 20  # a compare view's runs at most
MAX_EXPIRY = 366 * 86400.0


def looks_like_token(token: str) -> bool:
    """Whether ``token`` has a share token's shape (anything else is never looked up)."""
    return token.startswith(TOKEN_PREFIX) and 40 <= len(token) <= 64


async def open_share(db: Database, token: str) -> User | None:
    """The visitor a live share token stands for; None when it is unknown, revoked or
    expired."""
    if not looks_like_token(token):
        return None
    t = s.share_links
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(t.c.id, t.c.project_id, t.c.run_ids, t.c.expires_at, t.c.revoked_at).where(
                    t.c.token_hash == token_hash(token)
                )
            )
        ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= time.time():
        return None
    view = SharedView(int(row.id), int(row.project_id), frozenset(orjson.loads(row.run_ids)))
    return User(id=-int(row.id), name="", share=view)


async def create_share(
    db: Database,
    user: User,
    project_id: int,
    run_ids: list[str],
    expires_in: float | None,
) -> tuple[str, dict[str, Any]]:
    """A new share link to ``run_ids`` (all runs of ``project_id``); returns the token
    (shown once) and the link as :func:`list_shares` lists it."""
    wanted = list(dict.fromkeys(run_ids))
    if not wanted or len(wanted) > MAX_SHARED_RUNS:
        raise Invalid(f"share 1 to {MAX_SHARED_RUNS} runs", code="bad_share")
    if expires_in is not None and not 0 < expires_in <= MAX_EXPIRY:
        raise Invalid("expires_in must be between 1 second and 366 days", code="bad_share")
    token = TOKEN_PREFIX + new_token()
    now = time.time()

    def write(conn: Connection) -> int:
        r = s.runs
        found = set(
            conn.execute(
                select(r.c.id).where(r.c.project_id == project_id, r.c.id.in_(wanted))
            ).scalars()
        )
        missing = [x for x in wanted if x not in found]
        if missing:
            raise NotFound(f"run {missing[0]!r} not found", code="run_not_found")
        return inserted_id(
            conn.execute(
                insert(s.share_links).values(
                    token_hash=token_hash(token),
                    project_id=project_id,
                    run_ids=orjson.dumps(wanted).decode(),
                    created_by=user.id,
                    created_at=now,
                    expires_at=None if expires_in is None else now + expires_in,
                )
            )
        )

    link_id = await db.write(write)
    return token, {
        "id": link_id,
        "runs": wanted,
        "created_by": user.name,
        "created_at": now,
        "expires_at": None if expires_in is None else now + expires_in,
        "revoked_at": None,
    }


async def list_shares(conn: AsyncConnection, project_id: int) -> list[dict[str, Any]]:
    """A project's share links (without their tokens, which are not stored), newest first."""
    t, u = s.share_links, s.users
    rows = await conn.execute(
        select(t, u.c.name.label("creator"))
        .select_from(t.join(u, u.c.id == t.c.created_by))
        .where(t.c.project_id == project_id)
        .order_by(t.c.id.desc())
    )
    return [
        {
            "id": r.id,
            "runs": orjson.loads(r.run_ids),
            "created_by": r.creator,
            "created_at": r.created_at,
            "expires_at": r.expires_at,
            "revoked_at": r.revoked_at,
        }
        for r in rows
    ]


async def revoke_share(
    db: Database, project_id: int, link_id: int, *, revocations: Revocations | None = None
) -> None:
    """End share link ``link_id`` of ``project_id`` (NotFound when it has no such link)."""

    def write(conn: Connection) -> int:
        t = s.share_links
        return int(
            conn.execute(
                update(t)
                .where(t.c.id == link_id, t.c.project_id == project_id, t.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            ).rowcount
        )

    if not await db.write(write):
        raise NotFound(f"no live share link {link_id} in this project", code="share_not_found")
    if revocations is not None:
        revocations.publish(CredentialsEnded(ACCESS_CHANGED))


async def set_visibility(
    db: Database, project_id: int, visibility: str, *, revocations: Revocations | None = None
) -> None:
    """Make a project ``private`` or readable by every ``signed_in`` user."""
    if visibility not in VISIBILITIES:
        raise Invalid("visibility must be private or signed_in", code="bad_visibility")

    def write(conn: Connection) -> None:
        conn.execute(
            update(s.projects).where(s.projects.c.id == project_id).values(visibility=visibility)
        )

    await db.write(write)
    if revocations is not None:
        revocations.publish(CredentialsEnded(ACCESS_CHANGED))
