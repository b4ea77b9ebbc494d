"""Sign-in attempts for the lockout and flood tests: many at once, from chosen addresses
(through a trusted proxy's ``X-Forwarded-For``), sorted by what the server did with them,
and the wrong-password table read straight from the server's database."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tests.helpers import run_async

from .conftest import PASSWORD, Reply, WebClient

# What the server did with an attempt, read from its answer.
SIGNED_IN = "signed in"
WRONG = "wrong"  # the password was checked, and wrong
WRONG_LOCKED = "wrong, now locked"  # checked, wrong, and that reached a limit
LOCKED = "locked"  # refused without checking: too many wrong passwords
THROTTLED = "throttled"  # refused without checking: too many attempts, or too busy


def outcome(reply: Reply) -> str:
    """What the server did with one sign-in attempt."""
    if reply.status == 303:
        return SIGNED_IN
    if reply.status == 401 and "Wrong user name or password." in reply.text:
        return WRONG
    if reply.status == 429 and "Too many tries" in reply.text:
        return WRONG_LOCKED
    if reply.status == 429 and "Too many wrong passwords" in reply.text:
        return LOCKED
    if reply.status == 429 and ("busy" in reply.text or "Too many sign-in attempts" in reply.text):
        return THROTTLED
    raise AssertionError(f"unexpected answer {reply.status}: {reply.text[:500]}")


def checked(outcomes: Sequence[str]) -> int:
    """How many attempts had their password checked."""
    counts = Counter(outcomes)
    return counts[SIGNED_IN] + counts[WRONG] + counts[WRONG_LOCKED]


@dataclass
class Attempt:
    """One prepared sign-in: a client with its form token, where it comes from, what it
    sends."""

    client: WebClient
    user: str
    password: str
    forwarded_for: str | None = None
    token: str = field(init=False, default="")

    def send(self) -> Reply:
        """Post the sign-in form (its token was fetched when the attempt was made)."""
        headers = {"X-Forwarded-For": self.forwarded_for} if self.forwarded_for else {}
        return self.client.request(
            "POST",
            "/login",
            form={
                "csrf": self.token,
                "next": "/",
                "username": self.user,
                "password": self.password,
            },
            headers=headers,
        )

    def __post_init__(self) -> None:
        page = self.client.request("GET", "/login")
        assert page.status == 200, page.text
        self.token = self.client.form_token(page.text)


def attempt(
    url: str,
    user: str,
    password: str = PASSWORD,
    forwarded_for: str | None = None,
    client: WebClient | None = None,
) -> Attempt:
    """A sign-in attempt, ready to send (a fresh browser unless ``client`` is given)."""
    return Attempt(client or WebClient(url), user, password, forwarded_for)


def sign_in(
    url: str,
    user: str,
    password: str = PASSWORD,
    forwarded_for: str | None = None,
    client: WebClient | None = None,
) -> str:
    """One attempt, sent now: what the server did with it."""
    return outcome(attempt(url, user, password, forwarded_for, client).send())


def session_ends(client: WebClient) -> None:
    """The browser's session ends (it expired, or its user signed out elsewhere): the
    browser keeps its other cookies, as a real one does."""
    for cookie in [c for c in client.jar if c.name in ("gradexp_session", "gradexp_csrf")]:
        client.jar.clear(cookie.domain, cookie.path, cookie.name)


def all_at_once(attempts: Sequence[Attempt]) -> list[Reply]:
    """Send every attempt at the same moment (one thread each); their replies, in order."""
    assert attempts
    barrier = threading.Barrier(len(attempts))

    def go(a: Attempt) -> Reply:
        barrier.wait(timeout=60)
        return a.send()

    with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
        return list(pool.map(go, attempts))


def failure_rows(srv: Any) -> int:
    """Rows in the server's wrong-password table."""

    async def count() -> int:
        from sqlalchemy import func, select

        from gradexp.server.storage import schema as s
        from gradexp.server.storage.db import Database

        db = Database(srv.db_url)
        try:
            async with db.read() as conn:
                query = select(func.count()).select_from(s.login_failures)
                return int((await conn.execute(query)).scalar_one())
        finally:
            await db.dispose()

    return int(run_async(count()))
