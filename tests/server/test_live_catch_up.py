"""A resumed project stream catches up on many runs with a few reads
(``history.read_rows_of_runs``), each run's missed rows exactly once."""

from __future__ import annotations

import time
from typing import Any

from tests.helpers import run_async

from .helpers import SSE, batch, new_id, post, put_run, steps_batch


async def _read(db_url: str, wants: list[tuple[str, int, int]], limit: int) -> Any:
    """``read_rows_of_runs`` for runs named by id: (their seqs by id, the ids read whole)."""
    from sqlalchemy import select

    from gradexp.server.domain.history import read_rows_of_runs
    from gradexp.server.storage import schema as s
    from gradexp.server.storage.db import Database

    db = Database(db_url)
    try:
        async with db.read() as conn:
            ids = [run for run, _, _ in wants]
            found = await conn.execute(select(s.runs.c.id, s.runs.c.pk).where(s.runs.c.id.in_(ids)))
            pks = {row.id: int(row.pk) for row in found}
            got, whole = await read_rows_of_runs(
                conn, [(pks[run], lo, hi) for run, lo, hi in wants], limit=limit
            )
    finally:
        await db.dispose()
    names = {pk: run for run, pk in pks.items()}
    seqs = {names[pk]: [row["_seq"] for row in rows] for pk, rows in got.items()}
    return seqs, {names[pk] for pk in whole}


def test_rows_of_many_runs_in_one_read(db_server: Any) -> None:
    # Runs made in this order get increasing pks: the read goes in pk order, so a cut
    # (the row limit) leaves out the run it cut and the runs after it, never one before.
    project = f"catch-{new_id('')[:8]}"
    a, b, c = (new_id() for _ in range(3))
    for run in (a, b, c):
        put_run(db_server, run, project=project)
    assert post(db_server, a, steps_batch(1, 5))[0] == 200
    assert post(db_server, b, steps_batch(1, 3))[0] == 200
    assert post(db_server, c, steps_batch(1, 2))[0] == 200
    wants = [(a, 1, 4), (b, 0, 3), (c, 2, 2)]  # c: nothing in its range
    url = db_server.db_url

    seqs, whole = run_async(_read(url, wants, limit=100))
    assert seqs == {a: [2, 3, 4], b: [1, 2, 3]}
    assert whole == {a, b, c}

    seqs, whole = run_async(_read(url, wants, limit=4))  # cut in b's rows
    assert seqs == {a: [2, 3, 4], b: [1]}
    assert whole == {a}

    seqs, whole = run_async(_read(url, wants, limit=3))  # cut at a's last row
    assert seqs == {a: [2, 3, 4]}
    assert whole == set()


def test_a_resumed_stream_catches_up_on_many_runs_exactly_once(server: Any) -> None:
    # Runs behind by a few rows, by more than one event holds (1,000 rows), and by records
    # that are not history rows (a config update): each gets exactly what it missed.
    project = f"catch-{new_id('')[:8]}"
    runs = [new_id() for _ in range(12)]
    for run in runs:
        put_run(server, run, project=project)
        assert post(server, run, steps_batch(1, 1))[0] == 200
    stream = SSE(server, f"/api/v1/projects/{server.user}/{project}/events")
    try:
        stream.wait_ready()
        assert post(server, runs[0], steps_batch(2, 1))[0] == 200
        last_id = stream.next(event="rows")["id"]
    finally:
        stream.close()
    want: dict[str, list[int]] = {}
    for i, run in enumerate(runs[1:], start=1):
        n = 2_500 if i == 1 else i
        assert post(server, run, steps_batch(2, n))[0] == 200
        want[run] = list(range(2, 2 + n))
    config = {"seq": 4, "type": "config", "update": {"lr": 0.1}}  # after runs[2]'s 2..3
    assert post(server, runs[2], batch([config]))[0] == 200
    assert post(server, runs[2], steps_batch(5, 1))[0] == 200
    want[runs[2]] = [2, 3, 5]
    resumed = SSE(
        server,
        f"/api/v1/projects/{server.user}/{project}/events",
        headers={"Last-Event-ID": last_id},
    )
    try:
        seen: dict[str, list[int]] = {}
        deadline = time.monotonic() + 30
        while seen != want:
            assert time.monotonic() < deadline, {r: len(s) for r, s in seen.items()}
            ev = resumed.next(event="rows")
            seen.setdefault(ev["data"]["run_id"], []).extend(r["_seq"] for r in ev["data"]["rows"])
        # Caught up, and nothing more: the next rows are new ones.
        assert post(server, runs[0], steps_batch(3, 1))[0] == 200
        ev = resumed.next(event="rows")
        assert ev["data"]["run_id"] == runs[0]
        assert [r["_seq"] for r in ev["data"]["rows"]] == [3]
    finally:
        resumed.close()
