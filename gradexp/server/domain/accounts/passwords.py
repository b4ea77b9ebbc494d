"""Passwords: the rule for new ones, and hashing them off the event loop.

Passwords are stored as ``scrypt`` hashes (memory-hard, so a GPU farm gains little), with a
random 16-byte salt per password and the parameters kept beside the hash so they can be
raised later without a migration: ``scrypt$N$r$p$<salt b64>$<hash b64>``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from typing import TypeVar

from gradexp.server.domain.errors import Invalid

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024  # bounds the work one request can ask of the server

# 32 MiB and ~0.1 s per hash on a server core: slow for an attacker, quick for a sign-in.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
SCRYPT_CONCURRENCY = 2  # hashes at once per process (see PasswordHasher)

T = TypeVar("T")


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


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (blocking; constant-time comparison)."""
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
    return hmac.compare_digest(actual, expected)


class PasswordHasher:
    """Hashes and checks passwords in a small thread pool of its own.

    ``hashlib.scrypt`` releases the GIL, so hashing in a worker thread keeps the event loop
    serving other requests. The pool bounds how many hashes run at once
    (``SCRYPT_CONCURRENCY``), so a flood of sign-in attempts takes neither every
    default-executor thread nor 32 MiB apiece without limit. Being a plain executor, it
    serves any event loop: the server holds one in its state, and a CLI command makes its
    own. Its threads start with the first hash; :meth:`close` stops them.
    """

    def __init__(self, concurrency: int = SCRYPT_CONCURRENCY) -> None:
        self._concurrency = concurrency
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        # Checked against when the user does not exist or has no password, so that a wrong
        # user name costs the same time as a wrong password (no user enumeration by timing).
        # Made once, by the first such check (the others await the same task).
        self._dummy_hash: asyncio.Future[str] | None = None

    @property
    def concurrency(self) -> int:
        """How many hashes run at once."""
        return self._concurrency

    async def _run(self, func: Callable[..., T], *args: str) -> T:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._concurrency, thread_name_prefix="gradexp-scrypt"
                )
            pool = self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, func, *args)

    async def hash(self, password: str) -> str:
        """:func:`hash_password` off the event loop."""
        return await self._run(hash_password, password)

    async def verify(self, password: str, stored: str | None) -> bool:
        """:func:`verify_password` off the event loop; ``stored`` None (no such user, or
        no password) costs the same and answers False."""
        if stored is not None:
            return await self._run(verify_password, password, stored)
        if self._dummy_hash is None:
            self._dummy_hash = asyncio.ensure_future(self.hash(secrets.token_urlsafe(16)))
        await self._run(verify_password, password, await asyncio.shield(self._dummy_hash))
        return False

    def close(self) -> None:
        """Stop the threads (a hash under way finishes first)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)


def check_new_password(password: str, confirm: str | None = None) -> None:
    """Refuse (Invalid) passwords that are too short or too long, or do not match their
    confirmation."""
    if confirm is not None and not hmac.compare_digest(password.encode(), confirm.encode()):
        raise Invalid("The two passwords do not match.", code="password_mismatch")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise Invalid(
            f"Use a password of at least {PASSWORD_MIN_LENGTH} characters.", code="weak_password"
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise Invalid(
            f"Use a password of at most {PASSWORD_MAX_LENGTH} characters.", code="weak_password"
        )
