"""Browser sessions.

A session is a row keyed by the hash of its cookie's token; ending it (sign out, a password
change, expiry) is a delete, so the cookie is dead in every server process at once. Signing
in with a password, and its limits, are in ``signin.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from gradexp.server.domain.accounts.policy import Policy
from gradexp.server.domain.accounts.revocations import SIGNED_OUT, CredentialsEnded, Revocations
from gradexp.server.domain.accounts.tokens import csrf_token, new_token, token_hash
from gradexp.server.domain.accounts.users import Account
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, inserted_id


@dataclass(frozen=True)
class Session:
    """A signed-in browser."""

    id: int
    user: Account
    token: str

    @property
    def csrf(self) -> str:
        """The CSRF token forms and ``fetch`` calls must carry."""
        return csrf_token(self.token)


LAST_SEEN_RESOLUTION = 60.0  # seconds: update sessions.last_seen_at at most this often


async def create_session(
    db: Database, account: Account, *, user_agent: str | None, ip: str | None
) -> Session:
    """Sign a browser in: a new session (never an old one reused: no session fixation)."""
    token = new_token()
    now = time.time()

    def write(conn: Connection) -> int:
        return inserted_id(
            conn.execute(
                insert(s.sessions).values(
                    token_hash=token_hash(token),
                    user_id=account.id,
                    created_at=now,
                    last_seen_at=now,
                    user_agent=(user_agent or "")[:256] or None,
                    ip=(ip or "")[:64] or None,
                )
            )
        )

    return Session(await db.write(write), account, token)


async def find_session(db: Database, token: str | None, policy: Policy) -> Session | None:
    """The live session a cookie's token names, or None (unknown, idle too long, too old)."""
    if not token or len(token) > 128:
        return None
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(
                    s.sessions.c.id,
                    s.sessions.c.created_at,
                    s.sessions.c.last_seen_at,
                    s.users.c.id.label("user_id"),
                    s.users.c.name.label("user_name"),
                )
                .join(s.users, s.users.c.id == s.sessions.c.user_id)
                .where(s.sessions.c.token_hash == token_hash(token))
            )
        ).first()
    if row is None:
        return None
    now = time.time()
    sid = int(row.id)
    if now - row.last_seen_at > policy.session_idle or now - row.created_at > policy.session_max:

        def drop(conn: Connection) -> None:
            conn.execute(delete(s.sessions).where(s.sessions.c.id == sid))

        await db.write(drop)
        return None
    if now - row.last_seen_at > LAST_SEEN_RESOLUTION:

        def touch(conn: Connection) -> None:
            conn.execute(update(s.sessions).where(s.sessions.c.id == sid).values(last_seen_at=now))

        await db.write(touch)
    return Session(sid, Account(int(row.user_id), row.user_name), token)


async def end_session(
    db: Database, token: str | None, *, revocations: Revocations | None = None
) -> None:
    """Sign out: the session is deleted, so its cookie is dead in every server process.

    ``revocations`` hears of it after the commit (this process's live streams opened with
    the session end at once)."""
    if not token:
        return
    hashed = token_hash(token)

    def write(conn: Connection) -> list[int]:
        where = s.sessions.c.token_hash == hashed
        ids = [int(i) for i in conn.execute(select(s.sessions.c.id).where(where)).scalars()]
        conn.execute(delete(s.sessions).where(where))
        return ids

    ended = await db.write(write)
    if ended and revocations is not None:
        revocations.publish(CredentialsEnded(SIGNED_OUT, session_ids=frozenset(ended)))


async def prune_expired(db: Database, policy: Policy) -> None:
    """Delete dead sessions and codes (cheap; done now and then, on sign-in)."""
    now = time.time()

    def write(conn: Connection) -> None:
        conn.execute(
            delete(s.sessions).where(
                (s.sessions.c.last_seen_at < now - policy.session_idle)
                | (s.sessions.c.created_at < now - policy.session_max)
            )
        )
        # Used or expired codes are kept a day, so that a replay reads "already used".
        conn.execute(delete(s.auth_codes).where(s.auth_codes.c.expires_at < now - 86400))

    await db.write(write)
