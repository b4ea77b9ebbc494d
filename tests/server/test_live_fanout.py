"""Live streams share one database poll per process: what that must keep true.

Every stream still gets every row exactly once, with several processes on one database;
a user's open streams are capped (429); a client that stops reading is ended with a
resumable event instead of growing the server's memory; and any process can tell which
runs somebody watches.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

import pytest

from tests.helpers import open_streams, run_async

from .helpers import SSE, batch, history, new_id, post, put_run, steps_batch


def _wait_streams(srv: Any, n: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while open_streams(srv) != n:
        assert time.monotonic() < deadline, f"{open_streams(srv)} streams open, expected {n}"
        time.sleep(0.05)


@pytest.mark.slow
def test_streams_past_the_per_user_cap_are_refused(start_server: Any) -> None:
    srv = start_server(env={"GRADEXP_SERVER_MAX_STREAMS_PER_USER": "3"})
    run = new_id()
    put_run(srv, run, project="capped")
    path = f"/api/v1/runs/{run}/events"
    streams = [
        SSE(srv, path),
        SSE(srv, path),
        SSE(srv, f"/api/v1/projects/{srv.user}/capped/events"),
    ]
    try:
        assert [s.status for s in streams] == [200, 200, 200]
        refused = SSE(srv, path)
        assert refused.status == 429
        assert int(refused.response.getheader("Retry-After")) > 0
        error = json.loads(refused.response.read())["error"]
        assert error["code"] == "too_many_streams" and "3 live streams" in error["message"]
        # The cap is per user: somebody else still gets a stream.
        _, key = srv.new_user()
        put_run(srv, "o" + run, project="theirs", key=key)
        theirs = SSE(srv, f"/api/v1/runs/o{run}/events", key=key)
        assert theirs.status == 200
        theirs.close()
        # A stream that closes makes room again.
        streams.pop().close()
        _wait_streams(srv, 2)
        again = SSE(srv, path)
        assert again.status == 200
        streams.append(again)
    finally:
        for stream in streams:
            stream.close()


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_processes_deliver_every_row_exactly_once(start_server: Any, db_url: str) -> None:
    a = start_server(db_url=db_url)
    b = start_server(db_url=db_url, store_url=a.store_url)
    project = f"fan-{new_id('')[:6]}"
    runs = [new_id(), new_id()]
    for run in runs:
        put_run(a, run, project=project)
    per_batch, batches = 25, 40
    total = per_batch * batches

    def run_streams(srv: Any) -> list[tuple[str, SSE]]:
        return [(run, SSE(srv, f"/api/v1/runs/{run}/events")) for run in (*runs, runs[0])]

    watching = {srv.port: run_streams(srv) for srv in (a, b)}
    projects = {
        srv.port: SSE(srv, f"/api/v1/projects/{srv.user}/{project}/events") for srv in (a, b)
    }
    late: list[tuple[str, SSE]] = []
    for stream in projects.values():
        stream.wait_ready()
    for streams in watching.values():
        for _, stream in streams:
            stream.next(event="run")

    def feed(run: str) -> None:
        for i in range(batches):
            srv = (a, b)[i % 2]  # every other batch through each process
            status, body = post(srv, run, steps_batch(1 + i * per_batch, per_batch))
            assert status == 200, body
            if run == runs[0] and i == batches // 2:
                # Streams that open mid-way, from the start: a catch-up read, then the hub.
                late.extend((runs[0], SSE(srv, f"/api/v1/runs/{runs[0]}/events")) for srv in (a, b))

    feeders = [threading.Thread(target=feed, args=(run,)) for run in runs]
    try:
        for t in feeders:
            t.start()
        for t in feeders:
            t.join(120)
        every = list(range(1, total + 1))
        followed = [s for streams in watching.values() for s in streams] + late
        assert len(followed) == 8
        for run, stream in followed:
            assert [r["_seq"] for r in stream.rows_until(total)] == every, run
        for stream in projects.values():
            seen: dict[str, list[int]] = {run: [] for run in runs}
            while any(len(v) < total for v in seen.values()):
                event = stream.next(event="rows")["data"]
                seen[event["run_id"]].extend(r["_seq"] for r in event["rows"])
            assert seen == {run: every for run in runs}
        # Nothing more arrives afterwards (no row twice), and the next row arrives once.
        post(b, runs[1], steps_batch(total + 1, 1))
        for stream in projects.values():
            event = stream.next(event="rows")["data"]
            assert (event["run_id"], [r["_seq"] for r in event["rows"]]) == (runs[1], [total + 1])
    finally:
        for _, stream in [s for streams in watching.values() for s in streams] + late:
            stream.close()
        for stream in projects.values():
            stream.close()


def _rss(pid: int) -> int:
    """A process's resident memory, in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _big_batch(first: int, n: int) -> dict[str, Any]:
    """``n`` rows of about 2 KB each (a text value)."""
    return batch(
        [history(first + i, first + i, {"x": float(i), "note": "y" * 2000}) for i in range(n)]
    )


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_client_that_stops_reading_is_ended_and_resumes(start_server: Any, db_url: str) -> None:
    # PostgreSQL: the server's memory then holds no database page cache that would grow
    # with what is ingested, so what the stream costs is what shows.
    srv = start_server(db_url=db_url)
    run = new_id()
    put_run(srv, run, project="slow")
    rows, per = 20_000, 1000
    for first in range(1, rows + 1, per):  # warm up: the ingest path's own memory
        assert post(srv, run, _big_batch(first, per))[0] == 200
    # A client that reads nothing: a small receive buffer, and no reads.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    conn.sock = sock
    conn.request(
        "GET",
        f"/api/v1/runs/{run}/events?after_seq={rows}",
        headers={"Authorization": f"Bearer {srv.api_key}", "Accept": "text/event-stream"},
    )
    resp = conn.getresponse()
    assert resp.status == 200
    _wait_streams(srv, 1)
    before = _rss(srv.proc.pid)
    peak = before
    for first in range(rows + 1, 2 * rows + 1, per):  # 40 MB of rows for that stream
        assert post(srv, run, _big_batch(first, per))[0] == 200
        peak = max(peak, _rss(srv.proc.pid))
    time.sleep(2)  # a few polls: the hub has fanned out everything by now
    peak = max(peak, _rss(srv.proc.pid))
    assert peak - before < 24 * 1024 * 1024, f"the server grew by {(peak - before) >> 20} MiB"
    # The client reads at last: what was sent before it stalled, then the end, with its place.
    sock.settimeout(60)
    got: list[int] = []
    events: list[tuple[str, str, str]] = []
    event_id = name = ""
    while True:
        line = resp.readline()
        if not line:
            break
        text = line.decode().rstrip("\n")
        if text.startswith("id: "):
            event_id = text[4:]
        elif text.startswith("event: "):
            name = text[7:]
        elif text.startswith("data: "):
            events.append((name, event_id, text[6:]))
            if name == "rows":
                got += [r["_seq"] for r in json.loads(text[6:])["rows"]]
    conn.close()
    assert events and events[-1][0] == "end", [e[:2] for e in events[-3:]]
    assert json.loads(events[-1][2]) == {"reason": "too_slow"}
    resume_at = int(events[-1][1])
    assert got == list(range(rows + 1, resume_at + 1))
    # EventSource reconnects with the last id: the rest comes, nothing twice.
    again = SSE(srv, f"/api/v1/runs/{run}/events", headers={"Last-Event-ID": str(resume_at)})
    try:
        rest = [r["_seq"] for r in again.rows_until(2 * rows, timeout=60)]
        assert rest == list(range(resume_at + 1, 2 * rows + 1))
    finally:
        again.close()


@pytest.mark.slow
def test_any_process_can_tell_which_runs_are_watched(start_server: Any, db_url: str) -> None:
    from sqlalchemy import select

    from gradexp.server.domain.live.watchers import is_watched, watched_runs
    from gradexp.server.storage import schema as s
    from gradexp.server.storage.db import Database

    srv = start_server(db_url=db_url)  # every database: the watch rows are an upsert
    watched, other = new_id(), new_id()
    put_run(srv, watched, project="watch")
    put_run(srv, other, project="watch")

    async def look() -> tuple[set[int], dict[str, bool]]:
        db = Database(srv.db_url)
        try:
            async with db.read() as conn:
                ids = dict((await conn.execute(select(s.runs.c.id, s.runs.c.pk))).all())
            now = await watched_runs(db)
            return now, {r: await is_watched(db, ids[r]) for r in (watched, other)}
        finally:
            await db.dispose()

    assert run_async(look())[1] == {watched: False, other: False}
    stream = SSE(srv, f"/api/v1/runs/{watched}/events")
    try:
        stream.next(event="run")
        deadline = time.monotonic() + 15
        while run_async(look())[1] != {watched: True, other: False}:
            assert time.monotonic() < deadline, run_async(look())
            time.sleep(0.2)
        assert len(run_async(look())[0]) == 1
    finally:
        stream.close()
