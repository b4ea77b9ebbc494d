"""Browser sessions, and signing in with a password (with limits on wrong passwords).

A session is a row keyed by the hash of its cookie's token; ending it (sign out, a password
change, expiry) is a delete, so the cookie is dead in every server process at once. Wrong
passwords are counted per (user name, client address) in the database too, so every
process enforces the same lockout.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gradexp.server.domain.accounts.passwords import PASSWORD_MAX_LENGTH, PasswordHasher
from gradexp.server.domain.accounts.policy import Policy
from gradexp.server.domain.accounts.revocations import SIGNED_OUT, CredentialsEnded, Revocations
from gradexp.server.domain.accounts.tokens import csrf_token, new_token, token_hash
from gradexp.server.domain.accounts.users import Account, find_account
from gradexp.server.domain.errors import RateLimited, Unauthorized
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
    """Delete dead sessions, codes and failure counts (cheap; done now and then, on sign-in)."""
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
        conn.execute(
            delete(s.login_failures).where(
                s.login_failures.c.first_failed_at < now - policy.failure_window,
                s.login_failures.c.locked_until < now,
            )
        )

    await db.write(write)


# --- signing in with a password ----------------------------------------------------------


def _failure_key(name: str, ip: str) -> str:
    return hashlib.sha256(f"{name.lower()}\x00{ip}".encode()).hexdigest()


async def locked_for(db: Database, name: str, ip: str) -> float:
    """Seconds until this user name may try a password again from this address (0: now)."""
    async with db.read() as conn:
        until = (
            await conn.execute(
                select(s.login_failures.c.locked_until).where(
                    s.login_failures.c.key_hash == _failure_key(name, ip)
                )
            )
        ).scalar()
    return max(0.0, float(until or 0) - time.time())


async def _record_failure(db: Database, name: str, ip: str, policy: Policy) -> float:
    """Count a wrong password; returns the seconds this name is now locked for (0: none)."""
    key = _failure_key(name, ip)
    t = s.login_failures

    def write(conn: Connection) -> float:
        now = time.time()
        stmt = select(t.c.failures, t.c.first_failed_at).where(t.c.key_hash == key)
        if db.lock_rows:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None or now - row.first_failed_at > policy.failure_window:
            failures, first = 1, now
        else:
            failures, first = int(row.failures) + 1, float(row.first_failed_at)
        lock = 0.0
        if failures >= policy.max_failures:
            lock = min(
                policy.lockout_base * 2 ** (failures - policy.max_failures), policy.lockout_max
            )
        values = {"failures": failures, "first_failed_at": first, "locked_until": now + lock}
        if row is None:
            conn.execute(insert(t).values(key_hash=key, **values))
        else:
            conn.execute(update(t).where(t.c.key_hash == key).values(**values))
        return lock

    try:
        return await db.write(write)
    except IntegrityError:  # another process inserted the row first: count on top of it
        return await db.write(write)


async def check_password(
    db: Database,
    name: str,
    password: str,
    ip: str,
    policy: Policy,
    *,
    passwords: PasswordHasher,
) -> Account:
    """The account whose name and password these are, or Unauthorized ``wrong_password``.

    Refuses (RateLimited ``locked``) without checking the password while this name is
    locked for this address after repeated wrong passwords; a wrong name and a wrong
    password read the same and cost the same time.
    """
    wait = await locked_for(db, name, ip)
    if wait > 0:
        raise RateLimited(
            f"Too many wrong passwords. Try again in {_duration(wait)}.", code="locked"
        )
    found = await find_account(db, name)
    stored = found[1] if found is not None else None
    if found is None or not await passwords.verify(password[:PASSWORD_MAX_LENGTH], stored):
        if found is None:  # same cost as a real check: no user enumeration by timing
            await passwords.verify(password[:PASSWORD_MAX_LENGTH], None)
        wait = await _record_failure(db, name, ip, policy)
        if wait > 0:
            raise RateLimited(
                f"Wrong user name or password. Too many tries: wait {_duration(wait)}.",
                code="locked",
            )
        raise Unauthorized("Wrong user name or password.", code="wrong_password")

    def forget_failures(conn: Connection) -> None:
        conn.execute(
            delete(s.login_failures).where(s.login_failures.c.key_hash == _failure_key(name, ip))
        )

    await db.write(forget_failures)
    return found[0]


def _duration(seconds: float) -> str:
    whole = max(1, round(seconds))
    if whole < 90:
        return f"{whole} second{'s' if whole != 1 else ''}"
    return f"{round(whole / 60)} minutes"
