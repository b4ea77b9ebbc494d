"""Accounts: passwords, browser sessions, one-time codes (with PKCE) and wrong-password limits.

What is stored, and why it is safe to lose the database to a reader:

- Passwords: ``scrypt`` (memory-hard, so a GPU farm gains little), a random 16-byte salt per
  password, parameters kept beside the hash so they can be raised later without a migration:
  ``scrypt$N$r$p$<salt b64>$<hash b64>``.
- Session tokens, one-time codes, setup and sign-in link tokens: 256 random bits each, so a
  plain SHA-256 is the right hash (nothing to brute-force) and a lookup is one indexed query.
  The cookie holds the token; the database only its hash.
- The CSRF token of a session is derived from the session token (a hash of it), so it needs
  no storage, dies with the session, and reveals nothing about the cookie.

Everything here is shared by every server process through the database: a revoked key, an
ended session or a used code is refused at once by all of them.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gradexp.server import schema as s
from gradexp.server.auth import hash_key, key_prefix, new_api_key
from gradexp.server.db import Database

# --- policy ------------------------------------------------------------------------------

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024  # bounds the work one request can ask of the server

# 32 MiB and ~0.1 s per hash on a server core: slow for an attacker, quick for a sign-in.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
SCRYPT_CONCURRENCY = 2  # hashes at once per process (see _in_thread)

PURPOSE_AUTHORIZE = "authorize"  # `gradexp login`: code -> new API key (PKCE)
PURPOSE_SETUP = "setup"  # first run: create the first account
PURPOSE_LINK = "link"  # a one-time sign-in link made by `gradexp server user login-link`

CLIENT_NAME_MAX = 64


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


@dataclass(frozen=True)
class Policy:
    """Lifetimes and limits. Defaults suit a person; tests shorten them through the
    ``GRADEXP_SERVER_*`` environment variables read by :func:`policy_from_env`."""

    session_idle: float = 7 * 86400.0  # a session unused this long ends
    session_max: float = 30 * 86400.0  # and none lives longer than this
    code_ttl: float = 300.0  # `gradexp login`'s one-time code
    setup_ttl: float = 7 * 86400.0  # the first-run setup link
    link_ttl: float = 86400.0  # a one-time sign-in link
    max_failures: int = 5  # wrong passwords (per user name and address) before a lockout
    failure_window: float = 900.0  # failures older than this are forgotten
    lockout_base: float = 30.0  # the first lockout; each later failure doubles it
    lockout_max: float = 900.0


def policy_from_env() -> Policy:
    """The policy, with overrides from ``GRADEXP_SERVER_SESSION_IDLE``,
    ``GRADEXP_SERVER_SESSION_MAX``, ``GRADEXP_SERVER_LOGIN_CODE_TTL`` and
    ``GRADEXP_SERVER_LOCKOUT_BASE`` (seconds)."""
    d = Policy()
    return Policy(
        session_idle=_env_float("GRADEXP_SERVER_SESSION_IDLE", d.session_idle),
        session_max=_env_float("GRADEXP_SERVER_SESSION_MAX", d.session_max),
        code_ttl=_env_float("GRADEXP_SERVER_LOGIN_CODE_TTL", d.code_ttl),
        lockout_base=_env_float("GRADEXP_SERVER_LOCKOUT_BASE", d.lockout_base),
    )


class AccountError(ValueError):
    """A refusal a person should read: ``code`` for programs, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- secrets -----------------------------------------------------------------------------


def new_token() -> str:
    """A fresh 256-bit secret, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a session token or one-time code."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(session_token: str) -> str:
    """The CSRF token bound to a session: forms carry it, and the web UI sends it as the
    ``X-CSRF-Token`` header (it also finds it in the readable ``gradexp_csrf`` cookie)."""
    digest = hashlib.sha256(b"gradexp csrf\x00" + session_token.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def same_secret(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two secrets (False when either is missing)."""
    if not a or not b:
        return False
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


# --- passwords ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    """The stored form of a password (blocking: ~0.1 s of CPU and 32 MiB)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=SCRYPT_MAXMEM,
        dklen=32,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


# Checked against when the user does not exist or has no password, so that a wrong user
# name costs the same time as a wrong password (no user enumeration by timing).
_DUMMY_HASH: str | None = None


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (blocking; constant-time comparison)."""
    global _DUMMY_HASH
    if stored is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
        stored = _DUMMY_HASH
        real = False
    else:
        real = True
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected) and real


# hashlib.scrypt releases the GIL, so hashing in a worker thread keeps the event loop
# serving other requests. A small pool of its own bounds how many hashes run at once, so a
# flood of sign-in attempts takes neither every default-executor thread nor 32 MiB apiece
# without limit; being a plain executor, it serves any event loop (the CLI makes its own).
_scrypt_pool: concurrent.futures.ThreadPoolExecutor | None = None


async def _in_thread(func: Any, *args: Any) -> Any:
    global _scrypt_pool
    if _scrypt_pool is None:
        _scrypt_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=SCRYPT_CONCURRENCY, thread_name_prefix="gradexp-scrypt"
        )
    return await asyncio.get_running_loop().run_in_executor(_scrypt_pool, func, *args)


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` off the event loop."""
    result: str = await _in_thread(hash_password, password)
    return result


async def verify_password_async(password: str, stored: str | None) -> bool:
    """:func:`verify_password` off the event loop."""
    result: bool = await _in_thread(verify_password, password, stored)
    return result


def check_new_password(password: str, confirm: str | None = None) -> None:
    """Refuse passwords that are too short or too long, or do not match their confirmation."""
    if confirm is not None and not hmac.compare_digest(password.encode(), confirm.encode()):
        raise AccountError("password_mismatch", "The two passwords do not match.")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise AccountError(
            "weak_password", f"Use a password of at least {PASSWORD_MIN_LENGTH} characters."
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise AccountError(
            "weak_password", f"Use a password of at most {PASSWORD_MAX_LENGTH} characters."
        )


# --- users -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A user, as sign-in sees it."""

    id: int
    name: str


def check_user_name(name: str) -> None:
    """User names follow the project-name rule (they appear in URLs: ``/p/{owner}/...``)."""
    from gradexp.protocol.names import PROJECT_NAME_RE

    if not PROJECT_NAME_RE.fullmatch(name):
        raise AccountError(
            "bad_name",
            "A user name is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )


def _insert_id(result: Any) -> int:
    return int(result.inserted_primary_key[0])


async def create_account(db: Database, name: str, password: str | None) -> Account:
    """A new user with a password (or none: API keys only). AccountError if the name is taken."""
    check_user_name(name)
    pw_hash = None
    if password is not None:
        check_new_password(password)
        pw_hash = await hash_password_async(password)
    now = time.time()

    def write(conn: Connection) -> int:
        return _insert_id(
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
        raise AccountError("user_exists", f"User {name!r} already exists.") from None
    return Account(uid, name)


async def find_account(db: Database, name: str) -> tuple[Account, str | None] | None:
    """A user by name, with its password hash; None if there is no such user."""
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(s.users.c.id, s.users.c.name, s.users.c.password_hash).where(
                    s.users.c.name == name
                )
            )
        ).first()
    if row is None:
        return None
    return Account(int(row.id), row.name), row.password_hash


def _no_user(name: str) -> AccountError:
    return AccountError(
        "no_user", f"No user {name!r}: create it with `gradexp server user add {name}`."
    )


async def set_password(db: Database, name: str, password: str) -> Account:
    """Change a user's password and end every session of theirs (sign out everywhere)."""
    check_new_password(password)
    found = await find_account(db, name)
    if found is None:
        raise _no_user(name)
    account = found[0]
    pw_hash = await hash_password_async(password)

    def write(conn: Connection) -> None:
        conn.execute(
            update(s.users)
            .where(s.users.c.id == account.id)
            .values(password_hash=pw_hash, password_changed_at=time.time())
        )
        conn.execute(delete(s.sessions).where(s.sessions.c.user_id == account.id))
        # Failures are keyed by a hash of (name, address), so this user's rows cannot be
        # picked out: a password change lifts every lockout, which is harmless.
        conn.execute(delete(s.login_failures))

    await db.write(write)
    return account


async def user_count(db: Database) -> int:
    """How many users exist."""
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(s.users))).scalar_one())


# --- wrong passwords ---------------------------------------------------------------------


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
    db: Database, name: str, password: str, ip: str, policy: Policy
) -> Account:
    """The account whose name and password these are, or AccountError.

    Refuses (``locked``) without checking the password while this name is locked for this
    address after repeated wrong passwords; a wrong name and a wrong password read the same
    and cost the same time.
    """
    wait = await locked_for(db, name, ip)
    if wait > 0:
        raise AccountError("locked", f"Too many wrong passwords. Try again in {_duration(wait)}.")
    found = await find_account(db, name)
    stored = found[1] if found is not None else None
    if found is None or not await verify_password_async(password[:PASSWORD_MAX_LENGTH], stored):
        if found is None:  # same cost as a real check: no user enumeration by timing
            await verify_password_async(password[:PASSWORD_MAX_LENGTH], None)
        wait = await _record_failure(db, name, ip, policy)
        if wait > 0:
            raise AccountError(
                "locked", f"Wrong user name or password. Too many tries: wait {_duration(wait)}."
            )
        raise AccountError("wrong_password", "Wrong user name or password.")

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


# --- sessions ----------------------------------------------------------------------------


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
        return _insert_id(
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


async def end_session(db: Database, token: str | None) -> None:
    """Sign out: the session is deleted, so its cookie is dead in every server process."""
    if not token:
        return
    hashed = token_hash(token)

    def write(conn: Connection) -> None:
        conn.execute(delete(s.sessions).where(s.sessions.c.token_hash == hashed))

    await db.write(write)


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


# --- one-time codes ----------------------------------------------------------------------


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


def clean_client_name(name: str | None, default: str = "gradexp login") -> str:
    """A machine or key name as given, made safe to store and show (printable, bounded)."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return text[:CLIENT_NAME_MAX] or default


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
        raise AccountError("invalid_grant", GRANT_REFUSED)
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
        key = new_api_key()
        name = clean_client_name(row.client_name)
        conn.execute(
            insert(s.api_keys).values(
                user_id=row.user_id,
                name=name,
                prefix=key_prefix(key),
                key_hash=hash_key(key),
                created_at=now,
            )
        )
        return NewKey(key, name, key_prefix(key), Account(int(row.user_id), user))

    outcome = await db.write(write)
    if isinstance(outcome, str):
        raise AccountError("invalid_grant", outcome)
    return outcome


async def setup_token_if_needed(db: Database, policy: Policy) -> str | None:
    """A first-run setup token when the server has no user yet (else None)."""
    if await user_count(db) > 0:
        return None
    return await create_code(db, PURPOSE_SETUP, policy.setup_ttl)


SETUP_DEAD = "This setup link was already used or has expired."


async def create_first_account(db: Database, token: str, name: str, password: str) -> Account:
    """Spend a setup token on the server's first account; AccountError if it cannot be.

    Every other setup token dies in the same transaction. Two browsers racing with two
    tokens (two server processes each printed one) serialise on the token rows (the UPDATE
    locks them all; SQLite has one writer anyway): the second then finds a user and is
    refused.
    """
    check_user_name(name)
    check_new_password(password)
    pw_hash = await hash_password_async(password)
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
            raise AccountError("setup_used", SETUP_DEAD)
        conn.execute(
            update(c).where(c.c.purpose == PURPOSE_SETUP, c.c.used_at.is_(None)).values(used_at=now)
        )
        if conn.execute(select(func.count()).select_from(s.users)).scalar_one():
            raise AccountError("setup_used", "This server already has an account; sign in instead.")
        return _insert_id(
            conn.execute(
                insert(s.users).values(
                    name=name, created_at=now, password_hash=pw_hash, password_changed_at=now
                )
            )
        )

    return Account(await db.write(write), name)


async def create_login_link(db: Database, name: str, policy: Policy | None = None) -> str:
    """A one-time sign-in token for user ``name`` (open ``/login/link?token=...``)."""
    found = await find_account(db, name)
    if found is None:
        raise _no_user(name)
    return await create_code(db, PURPOSE_LINK, (policy or Policy()).link_ttl, user_id=found[0].id)


LINK_DEAD = "This sign-in link was already used or has expired."


async def redeem_login_link(db: Database, token: str) -> Account:
    """Spend a sign-in link token; the account it signs in, or AccountError."""
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
        raise AccountError("link_used", LINK_DEAD)
    return account


# --- API keys, as their owner manages them -------------------------------------------------

_KEY_COLUMNS = (
    s.api_keys.c.id,
    s.api_keys.c.name,
    s.api_keys.c.prefix,
    s.api_keys.c.created_at,
    s.api_keys.c.last_used_at,
    s.api_keys.c.revoked_at,
)


async def list_user_keys(db: Database, user_id: int) -> list[dict[str, Any]]:
    """A user's keys, newest first, without secrets."""
    k = s.api_keys
    async with db.read() as conn:
        rows = await conn.execute(
            select(*_KEY_COLUMNS).where(k.c.user_id == user_id).order_by(k.c.id.desc())
        )
        return [dict(r._mapping) for r in rows]


async def create_user_key(db: Database, user_id: int, name: str) -> tuple[str, dict[str, Any]]:
    """A new key for the user: the secret (shown once) and its listing entry."""
    key = new_api_key()
    now = time.time()
    name = clean_client_name(name, default="default")

    def write(conn: Connection) -> int:
        return _insert_id(
            conn.execute(
                insert(s.api_keys).values(
                    user_id=user_id,
                    name=name,
                    prefix=key_prefix(key),
                    key_hash=hash_key(key),
                    created_at=now,
                )
            )
        )

    kid = await db.write(write)
    entry = {
        "id": kid,
        "name": name,
        "prefix": key_prefix(key),
        "created_at": now,
        "last_used_at": None,
        "revoked_at": None,
    }
    return key, entry


async def revoke_user_key(db: Database, user_id: int, key_id: int) -> dict[str, Any] | None:
    """Revoke one of the user's keys (refused at once by every process); None if not theirs."""
    k = s.api_keys

    def write(conn: Connection) -> dict[str, Any] | None:
        conn.execute(
            update(k)
            .where(k.c.id == key_id, k.c.user_id == user_id, k.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
        row = conn.execute(
            select(*_KEY_COLUMNS).where(k.c.id == key_id, k.c.user_id == user_id)
        ).first()
        return dict(row._mapping) if row is not None else None

    return await db.write(write)


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
