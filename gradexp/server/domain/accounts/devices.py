"""Known browsers: the signed cookie a browser gets when it signs in, which lets its user
through a lockout that others caused (``lockout.py``).

The cookie names a user and a random id for this browser, with the time it was issued,
signed with HMAC-SHA256 under a key every server process shares (made once, kept in the
``server_secrets`` table). It is no credential: it grants nothing without the right
password, and it only changes which wrong-password counter an attempt is counted on (this
browser's own, instead of those for the user and the address). A browser keeps one for
the last user who signed in there; it is valid for ``Policy.known_device_ttl`` (a year).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, insert_ignore

SECRET_NAME = "known_device_cookie"
_VERSION = "d1"


@dataclass(frozen=True)
class KnownDevice:
    """A browser that has signed in as ``user_id`` before."""

    user_id: int
    device_id: str


async def shared_secret(db: Database, name: str) -> bytes:
    """The secret ``name`` that every server process on this database shares (made by
    whichever asks first; a race between processes keeps the first one written)."""
    t = s.server_secrets

    def write(conn: Connection) -> str:
        conn.execute(
            insert_ignore(db.kind, t).values(
                name=name, value=secrets.token_urlsafe(48), created_at=time.time()
            )
        )
        return str(conn.execute(select(t.c.value).where(t.c.name == name)).scalar_one())

    return (await db.write(write)).encode()


class DeviceCookies:
    """Makes and checks known-browser cookies (the key is read once, on first use)."""

    def __init__(self, db: Database, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._key: bytes | None = None

    async def _signing_key(self) -> bytes:
        if self._key is None:
            self._key = await shared_secret(self.db, SECRET_NAME)
        return self._key

    @staticmethod
    def _mac(key: bytes, payload: str) -> str:
        digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def issue(self, user_id: int, device_id: str | None = None) -> str:
        """A cookie value for a browser that just signed in as ``user_id`` (keeping its
        ``device_id`` if it had one for this user)."""
        device = device_id or secrets.token_urlsafe(12)
        payload = f"{_VERSION}.{int(user_id)}.{device}.{int(time.time())}"
        return f"{payload}.{self._mac(await self._signing_key(), payload)}"

    async def check(self, value: str | None) -> KnownDevice | None:
        """The browser a cookie value names, if it is genuine and not expired."""
        if not value or len(value) > 200:
            return None
        payload, _, mac = value.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 4 or parts[0] != _VERSION:
            return None
        _, user, device, issued = parts
        if not (user.isdigit() and issued.isdigit() and device):
            return None
        if not hmac.compare_digest(
            mac.encode(), self._mac(await self._signing_key(), payload).encode()
        ):
            return None
        if time.time() - int(issued) > self.ttl:
            return None
        return KnownDevice(int(user), device)
