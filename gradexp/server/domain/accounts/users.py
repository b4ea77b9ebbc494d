"""Users: who calls (:class:`User`), accounts by name, and their passwords.

Everything here is shared by every server process through the database. A user name
follows the project-name rule (it appears in URLs: ``/p/{owner}/...``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gradexp.server.domain.accounts.passwords import PasswordHasher, check_new_password
from gradexp.server.domain.accounts.revocations import (
    PASSWORD_CHANGED,
    CredentialsEnded,
    Revocations,
)
from gradexp.server.domain.errors import Conflict, Invalid, NotFound
from gradexp.server.domain.names import user_name_problem
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, inserted_id

USER_KIND = "user"
TEAM_KIND = "team"


@dataclass(frozen=True)
class SharedView:
    """What a share link opens: some runs of one project, read-only (``domain/shares.py``)."""

    link_id: int
    project_id: int
    run_ids: frozenset[str]


@dataclass(frozen=True)
class User:
    """The caller of a request, as routes see it.

    A visitor with a share link and no account is a ``User`` too, with ``share`` set, a
    negative ``id`` (``-link_id``: no account has it) and an empty ``name``: the access
    resolver (``domain/access.py``) lets it read the shared runs and nothing else.
    """

    id: int
    name: str
    key_id: int | None = None  # the API key used, None for other credentials
    key_name: str | None = None
    key_prefix: str | None = None
    share: SharedView | None = None


@dataclass(frozen=True)
class Account:
    """A user, as sign-in sees it."""

    id: int
    name: str


def check_user_name(name: str) -> None:
    """Refuse (Invalid ``bad_name``) a name that breaks the user-name rule."""
    problem = user_name_problem(name)
    if problem is not None:
        raise Invalid(problem, code="bad_name")


def no_user(name: str) -> NotFound:
    """The refusal for a user name nobody has."""
    return NotFound(
        f"no user {name!r}: create it with `gradexp server user add {name}`", code="no_user"
    )


async def create_user(
    db: Database,
    name: str,
    password: str | None = None,
    *,
    passwords: PasswordHasher | None = None,
) -> Account:
    """A new user with a password (hashed by ``passwords``), or none: API keys only.
    Conflict ``user_exists`` if the name is taken."""
    check_user_name(name)
    pw_hash = None
    if password is not None:
        check_new_password(password)
        if passwords is None:
            raise ValueError("hashing a password needs a PasswordHasher")
        pw_hash = await passwords.hash(password)
    now = time.time()

    def write(conn: Connection) -> int:
        return inserted_id(
            conn.execute(
                insert(s.users).values(
                    name=name,
                    created_at=now,
                    password_hash=pw_hash,
                    password_changed_at=now if pw_hash else None,
                )
            )
        )

    try:
        uid = await db.write(write)
    except IntegrityError:
        raise Conflict(f"user {name!r} already exists", code="user_exists") from None
    return Account(uid, name)


async def find_account(db: Database, name: str) -> tuple[Account, str | None] | None:
    """A user by name, with its password hash; None if there is no such user (a team is
    not one: nobody signs in as a team or holds its keys)."""
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(s.users.c.id, s.users.c.name, s.users.c.password_hash).where(
                    s.users.c.name == name, s.users.c.kind == USER_KIND
                )
            )
        ).first()
    if row is None:
        return None
    return Account(int(row.id), row.name), row.password_hash


async def get_account(db: Database, name: str) -> Account:
    """A user by name; NotFound ``no_user`` if there is none."""
    found = await find_account(db, name)
    if found is None:
        raise no_user(name)
    return found[0]


async def list_users(db: Database) -> list[dict[str, Any]]:
    """Every user's name and creation time, oldest first."""
    async with db.read() as conn:
        rows = await conn.execute(
            select(s.users.c.name, s.users.c.created_at)
            .where(s.users.c.kind == USER_KIND)
            .order_by(s.users.c.id)
        )
        return [{str(k): v for k, v in r._asdict().items()} for r in rows]


async def set_password(
    db: Database,
    name: str,
    password: str,
    *,
    passwords: PasswordHasher,
    revocations: Revocations | None = None,
) -> Account:
    """Change a user's password and end every session of theirs (sign out everywhere).

    ``revocations`` hears of it after the commit (this process's live streams opened with
    those sessions end at once)."""
    check_new_password(password)
    account = await get_account(db, name)
    pw_hash = await passwords.hash(password)

    def write(conn: Connection) -> None:
        conn.execute(
            update(s.users)
            .where(s.users.c.id == account.id)
            .values(password_hash=pw_hash, password_changed_at=time.time())
        )
        conn.execute(delete(s.sessions).where(s.sessions.c.user_id == account.id))
        # Wrong-password counters are keyed by hashes (lockout.py), so this user's rows
        # cannot be picked out: a password change lifts every lockout, which is harmless.
        conn.execute(delete(s.login_failures))

    await db.write(write)
    if revocations is not None:
        revocations.publish(CredentialsEnded(PASSWORD_CHANGED, user_id=account.id))
    return account


async def user_count(db: Database) -> int:
    """How many users exist."""
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(s.users))).scalar_one())
