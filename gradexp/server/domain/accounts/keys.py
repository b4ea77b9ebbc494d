"""API keys: their form, who a key belongs to, and making, listing and revoking them.

Keys are ``gx_`` + 40 URL-safe characters (240 bits of randomness). Because they are high
entropy, a plain SHA-256 is the right hash: nothing to brute-force, and a lookup by hash is
one indexed query. The key's first characters (``prefix``) are kept in clear to tell keys
apart in listings. A revoked key is refused at once by every server process: revocation is
in the database.

The web pages, the keys API and the ``gradexp server key`` commands all use these.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from gradexp.server.domain.accounts.revocations import KEY_REVOKED, CredentialsEnded, Revocations
from gradexp.server.domain.accounts.users import User, get_account
from gradexp.server.domain.errors import Conflict, Invalid, NotFound
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, inserted_id

KEY_PREFIX = "gx_"
KEY_RANDOM_CHARS = 40
LAST_USED_RESOLUTION = 60.0  # seconds: update api_keys.last_used_at at most this often
CLIENT_NAME_MAX = 64
MAX_LISTED = 10  # keys named in the refusal of an ambiguous prefix


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


def clean_client_name(name: str | None, default: str = "gradexp login") -> str:
    """A machine or key name as given, made safe to store and show (printable, bounded)."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return text[:CLIENT_NAME_MAX] or default


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


class KeyCache:
    """API keys this process found valid lately: ``hash -> User``, for the ingest path.

    A small batch costs about a millisecond of server CPU, and looking its key up in the
    database was a fifth of it (a read through the pool, on SQLite a thread round trip).
    A key served from here is still checked against revocation inside the batch's own
    transaction (:func:`gradexp.server.domain.ingest.ingest_batch`), in the statement that
    locks the run, so a key revoked by any process is refused at once, as without a cache.
    Only routes that do that check may use it (``http/auth.py``).

    Entries live ``ttl`` seconds (the key's ``last_used_at`` resolution, so the full lookup
    that refreshes it still runs once a minute per key); a revocation published in this
    process drops its key at once. Bounded LRU; used only on the event loop's thread.
    """

    def __init__(self, max_keys: int = 10_000, ttl: float = LAST_USED_RESOLUTION) -> None:
        self._users: OrderedDict[str, tuple[User, float]] = OrderedDict()
        self._max = max_keys
        self._ttl = ttl

    def get(self, key: str) -> User | None:
        """The user of ``key`` if it was valid less than ``ttl`` seconds ago."""
        hashed = hash_key(key)
        entry = self._users.get(hashed)
        if entry is None:
            return None
        if time.monotonic() - entry[1] > self._ttl:
            del self._users[hashed]
            return None
        self._users.move_to_end(hashed)
        return entry[0]

    def add(self, key: str, user: User) -> None:
        """Remember a key the database just found valid."""
        hashed = hash_key(key)
        self._users[hashed] = (user, time.monotonic())
        self._users.move_to_end(hashed)
        if len(self._users) > self._max:
            self._users.popitem(last=False)

    def forget(self, key_ids: frozenset[int]) -> None:
        """Drop these keys (revoked, or refused by a transaction's check)."""
        for hashed in [h for h, (u, _) in self._users.items() if u.key_id in key_ids]:
            del self._users[hashed]

    def credentials_ended(self, ended: CredentialsEnded) -> None:
        """A :class:`Revocations` listener: revoked keys leave the cache at once."""
        if ended.key_ids:
            self.forget(ended.key_ids)


def _touch_key(conn: Connection, key_id: int, now: float) -> None:
    conn.execute(update(s.api_keys).where(s.api_keys.c.id == key_id).values(last_used_at=now))


def insert_key(conn: Connection, user_id: int, name: str, now: float) -> tuple[str, int]:
    """Store a new key for the user inside the caller's transaction: (the key, its id)."""
    key = new_api_key()
    kid = inserted_id(
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
    return key, kid


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
    now = time.time()
    name = clean_client_name(name, default="default")
    key, kid = await db.write(insert_key, user_id, name, now)
    entry = {
        "id": kid,
        "name": name,
        "prefix": key_prefix(key),
        "created_at": now,
        "last_used_at": None,
        "revoked_at": None,
    }
    return key, entry


async def create_key(db: Database, user: str, name: str = "default") -> str:
    """A new key for the user named ``user`` (NotFound ``no_user`` if there is none)."""
    account = await get_account(db, user)
    key, _ = await create_user_key(db, account.id, name)
    return key


async def revoke_user_key(
    db: Database, user_id: int, key_id: int, *, revocations: Revocations | None = None
) -> dict[str, Any] | None:
    """Revoke one of the user's keys (refused at once by every process); None if not theirs.

    ``revocations`` hears of it after the commit (this process's live streams opened with
    the key end at once)."""
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

    row = await db.write(write)
    if row is not None and revocations is not None:
        revocations.publish(CredentialsEnded(KEY_REVOKED, key_ids=frozenset({key_id})))
    return row


@dataclass(frozen=True)
class RevokedKey:
    """A key an admin revoked: which one, and whose."""

    id: int
    name: str
    prefix: str
    user: str


def _key_match(given: str) -> tuple[str, ColumnElement[bool]]:
    """How an admin names a key: its id (digits), the whole key, or its prefix (as
    ``key list`` prints it, with or without the trailing ``…``)."""
    k = s.api_keys
    text = given.strip().rstrip("…").rstrip(".")
    if text.isdigit() and len(text) <= 18:
        return f"id {text}", k.c.id == int(text)
    if looks_like_key(text):
        return "that key", k.c.key_hash == hash_key(text)
    if len(text) > len(KEY_PREFIX) + 4:  # only the first characters are kept in clear
        raise Invalid(
            f"{text[:12]!r}... is neither a whole key nor a key's prefix (its first "
            f"{len(KEY_PREFIX) + 4} characters): give the key's id from "
            "`gradexp server key list USER`",
            code="bad_key",
        )
    return repr(text), k.c.prefix == text


async def revoke_key(db: Database, given: str, *, user: str | None = None) -> RevokedKey:
    """Revoke exactly one active key, named by its id, its prefix or the whole key (an
    admin's command); ``user`` keeps the search to that user's keys.

    NotFound ``no_key`` when nothing matches; Conflict ``ambiguous_key`` when a prefix
    matches several keys (prefixes are short, so they collide across users): the message
    lists them by id, so the admin can name the one they mean.
    """
    what, cond = _key_match(given)
    owner = None if user is None else await get_account(db, user)
    k, u = s.api_keys, s.users

    def revoke(conn: Connection) -> RevokedKey:
        query = (
            select(k.c.id, k.c.name, k.c.prefix, u.c.name.label("user"))
            .join(u, u.c.id == k.c.user_id)
            .where(cond, k.c.revoked_at.is_(None))
            .order_by(k.c.id)
        )
        if owner is not None:
            query = query.where(k.c.user_id == owner.id)
        found = conn.execute(query.limit(MAX_LISTED + 1)).all()
        if not found:
            whose = f" of {owner.name}" if owner is not None else ""
            raise NotFound(
                f"no active key{whose} matches {what}: see `gradexp server key list USER`",
                code="no_key",
            )
        if len(found) > 1:
            listed = "; ".join(f"id {r.id}: {r.name!r} of {r.user}" for r in found[:MAX_LISTED]) + (
                "; ..." if len(found) > MAX_LISTED else ""
            )
            raise Conflict(
                f"{what} matches {len(found)} active keys ({listed}): revoke one by its id "
                f"(`gradexp server key revoke {found[0].id}`), by the whole key, "
                "or add --user NAME",
                code="ambiguous_key",
            )
        row = found[0]
        conn.execute(
            update(k)
            .where(k.c.id == row.id, k.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
        return RevokedKey(int(row.id), row.name, row.prefix, row.user)

    return await db.write(revoke)
