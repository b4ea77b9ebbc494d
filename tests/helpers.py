"""Plain helpers every test package shares (the fixtures are in tests/conftest.py).

Import them as ``from tests.helpers import server_rows``; the server tests' record and
batch builders are in tests/server/helpers.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import urllib.request
from collections.abc import Coroutine
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion on a fresh loop in a worker thread.

    Safe from sync tests and from inside a running event loop (anyio/trio tests) alike.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def make_team(db_url: str, team: str, members: dict[str, str]) -> None:
    """Create ``team`` on the server's database with ``members`` ({user: role})."""

    async def create() -> None:
        from gradexp.server.domain.teams import create_team, set_member
        from gradexp.server.storage.db import Database

        db = Database(db_url)
        try:
            await create_team(db, team)
            for user, role in members.items():
                await set_member(db, team, user, role)
        finally:
            await db.dispose()

    run_async(create())


def server_rows(server: Any, run_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every history row of a run through the read API, following the pages.

    ``params`` are the endpoint's query parameters (``keys``, ``min_step``, ``limit``...).
    """
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        query = "&".join(f"{k}={v}" for k, v in {**params, "after_seq": after}.items())
        status, body = server.request("GET", f"/api/v1/runs/{run_id}/history/rows?{query}")
        assert status == 200, body
        rows.extend(body["rows"])
        if body["next_after_seq"] is None:
            return rows
        after = body["next_after_seq"]


def server_run(server: Any, run_id: str) -> dict[str, Any]:
    """The run object from the read API."""
    status, body = server.request("GET", f"/api/v1/runs/{run_id}")
    assert status == 200, body
    return dict(body)


def open_streams(server: Any) -> int:
    """How many live event streams the server has open (``GET /healthz``)."""
    with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
        return int(json.loads(resp.read())["streams"])


#: init(settings=ONLY_LOGGED): a run that records only what the program logs (no system
#: samples, console lines or environment), for tests that count a run's records exactly.
ONLY_LOGGED = {
    "system_metrics_interval": 0,
    "console": "off",
    "environment": False,
    "git": False,
    "requirements": False,
}
