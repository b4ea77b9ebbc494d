"""Who is calling: API keys, and the ``authenticate`` hook every request goes through.

Keys are ``gx_`` + 40 URL-safe characters (240 bits of randomness). Because they are high
entropy, a plain SHA-256 is the right hash: nothing to brute-force, and a lookup by hash is
one indexed query. The key's first characters (``prefix``) are kept in clear to tell keys
apart in listings.

``authenticate(request)`` is the one place that decides who a request is from: a bearer
key, else a browser's session cookie (``routes_auth.session_user``); every route only ever
asks ``request["user"]``. UI pages ask ``page_redirect(request)`` instead.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from gradexp.protocol.wire import SESSION_COOKIE, TOKEN_PATH
from gradexp.server import schema as s
from gradexp.server.db import Database
from gradexp.server.errors import ApiError, Handler

KEY_PREFIX = "gx_"
KEY_RANDOM_CHARS = 40
LAST_USED_RESOLUTION = 60.0  # seconds: update api_keys.last_used_at at most this often

# Paths anyone may call without credentials.
PUBLIC_PATHS = ("/healthz",)
# API paths that authenticate themselves: trading a one-time login code for a key.
PUBLIC_API_PATHS = frozenset({TOKEN_PATH})


@dataclass(frozen=True)
class User:
    """The caller, as routes see it."""

    id: int
    name: str
    key_id: int | None = None  # the API key used, None for other credentials
    key_name: str | None = None
    key_prefix: str | None = None


def new_api_key() -> str:
    """A fresh key: ``gx_`` + 40 URL-safe random characters."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return KEY_PREFIX + "".join(secrets.choice(alphabet) for _ in range(KEY_RANDOM_CHARS))


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    """The part of a key kept in clear: ``gx_`` and four characters."""
    return key[: len(KEY_PREFIX) + 4]


def looks_like_key(key: str) -> bool:
    """A cheap shape check, so garbage never reaches the database."""
    return (
        key.startswith(KEY_PREFIX)
        and len(key) == len(KEY_PREFIX) + KEY_RANDOM_CHARS
        and all(c.isalnum() or c in "-_" for c in key[len(KEY_PREFIX) :])
        and key.isascii()
    )


async def user_for_key(db: Database, key: str) -> User | None:
    """The user owning a valid, unrevoked key (and note that the key was used)."""
    if not looks_like_key(key):
        return None
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(
                    s.api_keys.c.id,
                    s.api_keys.c.name,
                    s.api_keys.c.prefix,
                    s.api_keys.c.last_used_at,
                    s.users.c.id.label("user_id"),
                    s.users.c.name.label("user_name"),
                )
                .join(s.users, s.users.c.id == s.api_keys.c.user_id)
                .where(s.api_keys.c.key_hash == hash_key(key), s.api_keys.c.revoked_at.is_(None))
            )
        ).first()
    if row is None:
        return None
    now = time.time()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        await db.write(_touch_key, row.id, now)
    return User(
        id=row.user_id, name=row.user_name, key_id=row.id, key_name=row.name, key_prefix=row.prefix
    )


def _touch_key(conn: Connection, key_id: int, now: float) -> None:
    conn.execute(update(s.api_keys).where(s.api_keys.c.id == key_id).values(last_used_at=now))


async def authenticate(request: web.Request) -> User | None:
    """Who sent this request, or None: a bearer API key, else a browser's session cookie
    (which needs the CSRF header on writes: ``routes_auth.session_user``)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        db: Database = request.app["db"]
        return await user_for_key(db, token.strip())
    from gradexp.server.routes_auth import session_user

    return await session_user(request)


async def page_redirect(request: web.Request) -> web.StreamResponse | None:
    """For a web UI page: None when signed in, else the way to sign in (``/login?next=``)."""
    from gradexp.server.routes_auth import page_redirect as redirect

    return await redirect(request)


def make_auth_middleware() -> web.middleware:  # type: ignore[valid-type]
    """The middleware that puts ``request["user"]`` on every API request or refuses it."""

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/") or request.path in PUBLIC_API_PATHS:
            return await handler(request)
        user = await authenticate(request)
        if user is None:
            if "Authorization" in request.headers:
                message = "this API key is not valid (revoked or mistyped); create one with `gradexp server key create NAME`"
            elif SESSION_COOKIE in request.cookies:
                message = "your sign-in session has ended: sign in again at /login"
            else:
                message = (
                    "missing API key: send `Authorization: Bearer <key>` (see `gradexp login`)"
                )
            raise ApiError(401, "unauthorized", message)
        request["user"] = user
        return await handler(request)

    return auth_middleware
