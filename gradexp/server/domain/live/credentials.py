"""The re-check of every open stream's credential and reach, in a few reads for all.

A stream authenticates when it opens. The process where a key is revoked or a session
ends tells its hub at once (``accounts/revocations.py``); every other process finds out
here, every few seconds: which of its streams' keys are revoked, and which of their
sessions are gone or expired (and whether a password change took them). The same pass
re-checks the streams of projects the caller does not own (``Subscriber.reach_project_id``):
a member removed from the team, a project made private again, a share link revoked or
expired ends those streams (``ACCESS_REMOVED``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.server.domain.access import Role, can_read, project_roles
from gradexp.server.domain.accounts.policy import Policy
from gradexp.server.domain.accounts.revocations import (
    ACCESS_REMOVED,
    KEY_REVOKED,
    PASSWORD_CHANGED,
    SESSION_EXPIRED,
    SIGNED_OUT,
)
from gradexp.server.domain.live.mailbox import Subscriber
from gradexp.server.storage import schema as s


async def dead_credentials(
    conn: AsyncConnection, subscribers: Iterable[Subscriber], policy: Policy
) -> list[tuple[Subscriber, str]]:
    """The streams whose credential died, each with the reason its last event gives."""
    subs = [sub for sub in subscribers if sub.ended is None]
    dead = await lost_reach(conn, subs)
    subs = [sub for sub in subs if all(sub is not d for d, _ in dead)]
    key_ids = {sub.key_id for sub in subs if sub.key_id is not None}
    session_ids = {sub.session_id for sub in subs if sub.session_id is not None}
    if key_ids:
        k = s.api_keys
        live_keys = set(
            (
                await conn.execute(
                    select(k.c.id).where(k.c.id.in_(key_ids), k.c.revoked_at.is_(None))
                )
            ).scalars()
        )
        dead += [(sub, KEY_REVOKED) for sub in subs if sub.key_id in key_ids - live_keys]
    if not session_ids:
        return dead
    t = s.sessions
    found = {
        int(row.id): row
        for row in await conn.execute(
            select(t.c.id, t.c.created_at, t.c.last_seen_at).where(t.c.id.in_(session_ids))
        )
    }
    now = time.time()
    missing: list[Subscriber] = []
    for sub in subs:
        if sub.session_id is None:
            continue
        row = found.get(sub.session_id)
        if row is None:
            missing.append(sub)
            continue
        sub.session_deadline = min(
            row.created_at + policy.session_max, row.last_seen_at + policy.session_idle
        )
        if now > sub.session_deadline:
            dead.append((sub, SESSION_EXPIRED))
    if missing:
        u = s.users
        result = await conn.execute(
            select(u.c.id, u.c.password_changed_at).where(
                u.c.id.in_({sub.user_id for sub in missing})
            )
        )
        changed_at = {int(row.id): row.password_changed_at for row in result}
        for sub in missing:
            when = changed_at.get(sub.user_id)
            if when is not None and when >= sub.opened_at:
                dead.append((sub, PASSWORD_CHANGED))
            elif sub.session_deadline is not None and now > sub.session_deadline:
                dead.append((sub, SESSION_EXPIRED))  # expired, then cleaned up
            else:
                dead.append((sub, SIGNED_OUT))
    return dead


async def lost_reach(conn: AsyncConnection, subs: list[Subscriber]) -> list[tuple[Subscriber, str]]:
    """The streams whose caller can no longer read the project they follow."""
    reach = [sub for sub in subs if sub.reach_project_id is not None]
    if not reach:
        return []
    users = {(sub.user_id, sub.reach_project_id) for sub in reach if sub.user_id > 0}
    roles = await project_roles(conn, {(u, p) for u, p in users if p is not None})
    links = {-sub.user_id for sub in reach if sub.user_id < 0}  # share links: -link id
    live_links: set[int] = set()
    if links:
        t = s.share_links
        live_links = set(
            (
                await conn.execute(
                    select(t.c.id).where(
                        t.c.id.in_(links),
                        t.c.revoked_at.is_(None),
                        (t.c.expires_at.is_(None)) | (t.c.expires_at > time.time()),
                    )
                )
            ).scalars()
        )
    dead = []
    for sub in reach:
        if sub.user_id < 0:
            ok = -sub.user_id in live_links
        else:
            ok = can_read(roles.get((sub.user_id, sub.reach_project_id or 0), Role.NONE))
        if not ok:
            dead.append((sub, ACCESS_REMOVED))
    return dead
