"""The secrets of sessions, one-time codes and links: making, hashing and comparing them.

Session tokens, one-time codes, setup and sign-in link tokens are 256 random bits each, so a
plain SHA-256 is the right hash (nothing to brute-force) and a lookup is one indexed query.
The cookie holds the token; the database only its hash. The CSRF token of a session is
derived from the session token (a hash of it), so it needs no storage, dies with the
session, and reveals nothing about the cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


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
