"""Deadlocks on PostgreSQL and MariaDB: a real one, retried where it is safe, and a 503 (never
a 500) where it is lost for good.

Two transactions that update the same two rows in opposite orders deadlock for real: the
database picks one to roll back whole. ``Database.write_retrying`` runs that one again; a
request that loses every try is answered 503 with ``Retry-After`` (the SDK sends it again).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import run_async

pytestmark = pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)


async def _crossing_writes(db_url: str, retrying: bool) -> tuple[list[Any], list[int]]:
    """Two writes that lock rows 1 and 2 in opposite orders, at once; what each returned or
    raised, and the rows' values afterwards."""
    from sqlalchemy import text

    from gradexp.server.storage.db import Database

    db = Database(db_url)
    pause = "SELECT pg_sleep(0.3)" if db.kind == "postgresql" else "SELECT SLEEP(0.3)"
    try:

        def make(conn: Any) -> None:
            conn.execute(text("CREATE TABLE crossing (id INTEGER PRIMARY KEY, v INTEGER)"))
            conn.execute(text("INSERT INTO crossing (id, v) VALUES (1, 0), (2, 0)"))

        await db.write(make)

        def cross(conn: Any, first: int, second: int) -> str:
            bump = text("UPDATE crossing SET v = v + 1 WHERE id = :id")
            conn.execute(bump, {"id": first})
            conn.execute(text(pause))  # both now hold one row and want the other's
            conn.execute(bump, {"id": second})
            return "done"

        write = db.write_retrying if retrying else db.write
        outcomes = await asyncio.gather(
            write(cross, 1, 2), write(cross, 2, 1), return_exceptions=True
        )
        async with db.read() as conn:
            rows = await conn.execute(text("SELECT v FROM crossing ORDER BY id"))
            values = [int(r.v) for r in rows]
        return list(outcomes), values
    finally:
        await db.dispose()


def test_a_real_deadlock_is_told_apart_and_its_victim_wrote_nothing(db_url: str) -> None:
    from gradexp.server.storage.db import is_deadlock, is_disconnect

    outcomes, values = run_async(_crossing_writes(db_url, retrying=False))
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and outcomes.count("done") == 1, outcomes
    assert is_deadlock(failed[0]) and not is_disconnect(failed[0]), failed[0]
    assert values == [1, 1]  # the victim rolled back whole: only the winner's updates


def test_write_retrying_runs_the_victim_again(db_url: str) -> None:
    outcomes, values = run_async(_crossing_writes(db_url, retrying=True))
    assert outcomes == ["done", "done"], outcomes
    assert values == [2, 2]  # each write applied exactly once


def test_a_deadlock_lost_for_good_is_a_503_not_a_500(db_url: str) -> None:
    """The HTTP layer's answer to a deadlock that no retry got past (contention, not the
    request's fault: nothing was written, and it may be sent again)."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from gradexp.server.http.errors import error_middleware

    async def go() -> tuple[int, str | None, dict[str, Any]]:
        outcomes, _ = await _crossing_writes(db_url, retrying=False)
        lost = next(o for o in outcomes if isinstance(o, BaseException))

        async def handler(request: web.Request) -> web.Response:
            raise lost

        app = web.Application(middlewares=[error_middleware])
        app.router.add_post("/x", handler)
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/x")
            return resp.status, resp.headers.get("Retry-After"), await resp.json()

    status, retry_after, body = run_async(go())
    assert status == 503 and retry_after == "1", (status, body)
    assert body["error"]["code"] == "database_busy"


def test_pruning_that_loses_a_deadlock_does_not_fail_the_sign_in(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old sign-in failures are pruned on a sign-in's way (once a minute); on MariaDB the
    prune can lose a deadlock to sign-ins counting failures. The sign-in goes on."""
    from gradexp.server.domain.accounts import lockout
    from gradexp.server.domain.accounts.policy import Policy
    from gradexp.server.storage.db import Database
    from gradexp.server.storage.migrate import migrate

    async def go() -> int:
        outcomes, _ = await _crossing_writes(db_url, retrying=False)
        lost = next(o for o in outcomes if isinstance(o, BaseException))
        tries = []

        async def prune(db: Any, policy: Any) -> None:
            tries.append(1)
            raise lost

        monkeypatch.setattr(lockout, "prune", prune)
        db = Database(db_url)
        try:
            await migrate(db)
            policy = Policy()
            locks = lockout.Lockouts(db, policy)
            counters = lockout.counters_for(1, "127.0.0.1", None, policy)
            reservation = await locks.reserve(counters)  # prunes first: it lost, went on
            assert [t.number for t in reservation.taken] == [1, 1]
            await locks.settle(reservation, lockout.WRONG)
            await locks.reserve(counters)  # within the minute: no second prune
        finally:
            await db.dispose()
        return len(tries)

    assert run_async(go()) == 1
