"""One-time codes: ``gradexp login``'s authorize code (with PKCE), the first-run setup link
and one-time sign-in links.

A code is 256 random bits; only its hash is stored, with its purpose, its expiry and when it
was used. Spending one is a conditional UPDATE, so of two racing redemptions (in any server
processes) exactly one wins; a used or expired code is kept a day, so that a replay reads
"already used".

``gradexp login`` (see ``gradexp/sdk/login.py``) opens ``/authorize`` with the port of its
loopback listener, a random ``state`` and a PKCE S256 challenge. Authorize redirects to
``http://127.0.0.1:PORT/callback`` (never anywhere else) with a one-time code, which the CLI
trades once, with its PKCE verifier, for a new API key (:func:`exchange_code`).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from gradexp.server.domain.accounts.keys import clean_client_name, insert_key, key_prefix
from gradexp.server.domain.accounts.passwords import PasswordHasher, check_new_password
from gradexp.server.domain.accounts.policy import Policy
from gradexp.server.domain.accounts.tokens import new_token, same_secret, token_hash
from gradexp.server.domain.accounts.users import (
    Account,
    check_user_name,
    get_account,
    user_count,
)
from gradexp.server.domain.errors import Gone, Invalid
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, inserted_id

PURPOSE_AUTHORIZE = "authorize"  # `gradexp login`: code -> new API key (PKCE)
PURPOSE_SETUP = "setup"  # first run: create the first account
PURPOSE_LINK = "link"  # a one-time sign-in link made by `gradexp server user login-link`


async def create_code(
    db: Database,
    purpose: str,
    ttl: float,
    *,
    user_id: int | None = None,
    challenge: str | None = None,
    redirect_uri: str | None = None,
    client_name: str | None = None,
) -> str:
    """A new one-time code; returns it (only its hash is stored)."""
    code = new_token()
    now = time.time()

    def write(conn: Connection) -> None:
        conn.execute(
            insert(s.auth_codes).values(
                code_hash=token_hash(code),
                purpose=purpose,
                user_id=user_id,
                challenge=challenge,
                redirect_uri=redirect_uri,
                client_name=client_name,
                created_at=now,
                expires_at=now + ttl,
            )
        )

    await db.write(write)
    return code


async def code_is_live(db: Database, code: str | None, purpose: str) -> bool:
    """Whether ``code`` is an unused, unexpired code for ``purpose`` (it is not consumed)."""
    if not code or len(code) > 128:
        return False
    c = s.auth_codes
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(c.c.id).where(
                    c.c.code_hash == token_hash(code),
                    c.c.purpose == purpose,
                    c.c.used_at.is_(None),
                    c.c.expires_at > time.time(),
                )
            )
        ).first()
    return row is not None


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


VERIFIER_RE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def loopback_redirect(port: int) -> str:
    """Where Authorize sends the browser: only ever the CLI's listener on this machine."""
    return f"http://127.0.0.1:{port}/callback"


@dataclass(frozen=True)
class NewKey:
    """An API key just made by a login: the secret (shown once) and what identifies it."""

    api_key: str
    name: str
    prefix: str
    user: Account


GRANT_REFUSED = "This login code has expired or was already used; run `gradexp login` again."
GRANT_MISMATCH = (
    "This login code does not match the login that asked for it; run `gradexp login` again."
)


def _consume(conn: Connection, row_id: int, now: float) -> bool:
    # A conditional UPDATE: of two racing redemptions of one code (in any processes), the
    # database lets exactly one see rowcount 1.
    c = s.auth_codes
    result = conn.execute(
        update(c).where(c.c.id == row_id, c.c.used_at.is_(None)).values(used_at=now)
    )
    return bool(result.rowcount == 1)


async def exchange_code(db: Database, code: str, verifier: str, redirect_uri: str) -> NewKey:
    """Trade an authorize code and its PKCE verifier for a new API key, exactly once.

    The code is consumed as soon as it is looked up: a wrong verifier or redirect burns it
    (somebody is guessing), and the transaction still commits so that it stays burnt.
    """
    if not code or len(code) > 128 or not VERIFIER_RE.fullmatch(verifier or ""):
        raise Invalid(GRANT_REFUSED, code="invalid_grant")
    c = s.auth_codes
    hashed = token_hash(code)
    challenge = pkce_challenge(verifier)

    def write(conn: Connection) -> NewKey | str:
        now = time.time()
        row = conn.execute(
            select(c.c.id, c.c.user_id, c.c.challenge, c.c.redirect_uri, c.c.client_name).where(
                c.c.code_hash == hashed,
                c.c.purpose == PURPOSE_AUTHORIZE,
                c.c.used_at.is_(None),
                c.c.expires_at > now,
            )
        ).first()
        if row is None or not _consume(conn, int(row.id), now):
            return GRANT_REFUSED
        if not (
            same_secret(challenge, row.challenge) and same_secret(redirect_uri, row.redirect_uri)
        ):
            return GRANT_MISMATCH  # returned, not raised: the burnt code must be committed
        user = conn.execute(select(s.users.c.name).where(s.users.c.id == row.user_id)).scalar_one()
        name = clean_client_name(row.client_name)
        key, _ = insert_key(conn, int(row.user_id), name, now)
        return NewKey(key, name, key_prefix(key), Account(int(row.user_id), user))

    outcome = await db.write(write)
    if isinstance(outcome, str):
        raise Invalid(outcome, code="invalid_grant")
    return outcome


async def setup_token_if_needed(db: Database, policy: Policy) -> str | None:
    """A first-run setup token when the server has no user yet (else None)."""
    if await user_count(db) > 0:
        return None
    return await create_code(db, PURPOSE_SETUP, policy.setup_ttl)


SETUP_DEAD = "This setup link was already used or has expired."


async def create_first_account(
    db: Database, token: str, name: str, password: str, *, passwords: PasswordHasher
) -> Account:
    """Spend a setup token on the server's first account; Gone ``setup_used`` if it cannot
    be (Invalid for a bad name or password).

    Every other setup token dies in the same transaction. Two browsers racing with two
    tokens (two server processes each printed one) serialise on the token rows (the UPDATE
    locks them all; SQLite has one writer anyway): the second then finds a user and is
    refused.
    """
    check_user_name(name)
    check_new_password(password)
    pw_hash = await passwords.hash(password)
    c = s.auth_codes
    hashed = token_hash(token)

    def write(conn: Connection) -> int:
        now = time.time()
        live = conn.execute(
            select(c.c.id).where(
                c.c.code_hash == hashed,
                c.c.purpose == PURPOSE_SETUP,
                c.c.used_at.is_(None),
                c.c.expires_at > now,
            )
        ).first()
        if live is None:
            raise Gone(SETUP_DEAD, code="setup_used")
        conn.execute(
            update(c).where(c.c.purpose == PURPOSE_SETUP, c.c.used_at.is_(None)).values(used_at=now)
        )
        if conn.execute(select(func.count()).select_from(s.users)).scalar_one():
            raise Gone("This server already has an account; sign in instead.", code="setup_used")
        return inserted_id(
            conn.execute(
                insert(s.users).values(
                    name=name, created_at=now, password_hash=pw_hash, password_changed_at=now
                )
            )
        )

    return Account(await db.write(write), name)


async def create_login_link(db: Database, name: str, policy: Policy | None = None) -> str:
    """A one-time sign-in token for user ``name`` (open ``/login/link?token=...``)."""
    account = await get_account(db, name)
    return await create_code(db, PURPOSE_LINK, (policy or Policy()).link_ttl, user_id=account.id)


LINK_DEAD = "This sign-in link was already used or has expired."


async def redeem_login_link(db: Database, token: str) -> Account:
    """Spend a sign-in link token; the account it signs in, or Gone ``link_used``."""
    c = s.auth_codes
    hashed = token_hash(token or "")

    def write(conn: Connection) -> Account | None:
        now = time.time()
        row = conn.execute(
            select(c.c.id, c.c.user_id).where(
                c.c.code_hash == hashed,
                c.c.purpose == PURPOSE_LINK,
                c.c.used_at.is_(None),
                c.c.expires_at > now,
            )
        ).first()
        if row is None or not _consume(conn, int(row.id), now):
            return None
        name = conn.execute(select(s.users.c.name).where(s.users.c.id == row.user_id)).scalar_one()
        return Account(int(row.user_id), name)

    account = await db.write(write)
    if account is None:
        raise Gone(LINK_DEAD, code="link_used")
    return account


async def peek_login_link(db: Database, token: str | None) -> Account | None:
    """The user a live sign-in link would sign in (the link is not spent), else None."""
    if not token or len(token) > 128:
        return None
    c = s.auth_codes
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(s.users.c.id, s.users.c.name)
                .join(c, c.c.user_id == s.users.c.id)
                .where(
                    c.c.code_hash == token_hash(token),
                    c.c.purpose == PURPOSE_LINK,
                    c.c.used_at.is_(None),
                    c.c.expires_at > time.time(),
                )
            )
        ).first()
    return Account(int(row.id), row.name) if row is not None else None
