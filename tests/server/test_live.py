"""Server-Sent Events: per run and per project, resumable, read from the database."""

from __future__ import annotations

import time

import pytest

from .helpers import (
    SSE,
    batch,
    new_id,
    post,
    project_stream_resumes_from_any_event,
    put_run,
    steps_batch,
)


def test_run_stream_rows_state_and_resume(server):
    run = new_id()
    put_run(server, run)
    post(server, run, steps_batch(1, 3))
    stream = SSE(server, f"/api/v1/runs/{run}/events")
    try:
        assert stream.status == 200
        assert stream.response.getheader("Content-Type").startswith("text/event-stream")
        first = stream.next(event="run")
        assert first["data"]["id"] == run and first["data"]["state"] == "running"
        # From the start of the run (no Last-Event-ID): the 3 rows already there, then new ones.
        got = stream.rows_until(3)
        assert [r["_seq"] for r in got] == [1, 2, 3]
        post(server, run, steps_batch(4, 500))
        got = stream.rows_until(503)
        assert [r["_seq"] for r in got] == list(range(4, 504))
        post(server, run, batch([{"seq": 504, "type": "finish", "exit_code": 0, "time": 9.0}]))
        done = stream.next(event="run")
        assert done["data"]["state"] == "finished"
        assert done["id"] == "504"
    finally:
        stream.close()
    # Resume after seq 500: only what came after, by header or by query parameter.
    for kw in ({"headers": {"Last-Event-ID": "500"}}, {}):
        path = f"/api/v1/runs/{run}/events" + ("" if kw else "?after_seq=500")
        again = SSE(server, path, **kw)
        try:
            assert [r["_seq"] for r in again.rows_until(503)] == [501, 502, 503]
        finally:
            again.close()


def test_project_stream_and_cursor_resume(server):
    project = f"live-{new_id('')[:8]}"
    old = new_id()
    put_run(server, old, project=project)
    post(server, old, steps_batch(1, 2))
    stream = SSE(server, f"/api/v1/projects/{server.user}/{project}/events")
    try:
        assert stream.status == 200
        stream.wait_ready()  # the stream has taken its first look at the project
        post(server, old, steps_batch(3, 2))
        event = stream.next(event="rows")
        assert event["data"]["run_id"] == old
        assert [r["_seq"] for r in event["data"]["rows"]] == [3, 4]  # new rows only
        new = new_id()
        put_run(server, new, project=project, name="fresh")
        created = stream.next(event="run")
        while created["data"]["id"] != new:  # progress events of the old run may come first
            created = stream.next(event="run")
        assert created["data"]["name"] == "fresh" and created["data"]["state"] == "running"
        post(server, new, steps_batch(1, 5))
        event = stream.next(event="rows")
        assert event["data"]["run_id"] == new
        assert [r["_seq"] for r in event["data"]["rows"]] == [1, 2, 3, 4, 5]
        cursor = event["id"]
    finally:
        stream.close()
    # While nobody listens: more rows for both runs, and a third run.
    post(server, old, steps_batch(5, 3))
    post(server, new, steps_batch(6, 3))
    third = new_id()
    put_run(server, third, project=project)
    post(server, third, steps_batch(1, 1))
    resumed = SSE(
        server,
        f"/api/v1/projects/{server.user}/{project}/events",
        headers={"Last-Event-ID": cursor},
    )
    try:
        seen: dict[str, list[int]] = {}
        deadline = time.monotonic() + 30
        while seen != {old: [5, 6, 7], new: [6, 7, 8], third: [1]}:
            assert time.monotonic() < deadline, seen
            ev = resumed.next(event="rows")
            seen.setdefault(ev["data"]["run_id"], []).extend(r["_seq"] for r in ev["data"]["rows"])
        # Nothing is repeated afterwards either.
        post(server, new, steps_batch(9, 1))
        ev = resumed.next(event="rows")
        assert (ev["data"]["run_id"], [r["_seq"] for r in ev["data"]["rows"]]) == (new, [9])
    finally:
        resumed.close()


def test_a_big_projects_stream_resumes_exactly_from_any_event(server):
    """Resuming from any event id of a project stream with many runs moving loses and
    repeats nothing (whole cursors and deltas alike)."""
    ids = project_stream_resumes_from_any_event(server, "big")
    assert all(i[0] in "zj" for i in ids)  # packed in the id itself: nothing kept


def test_keepalive_comments(start_server):
    srv = start_server(env={"GRADEXP_SERVER_KEEPALIVE": "0.3"})
    run = new_id()
    put_run(srv, run)
    stream = SSE(srv, f"/api/v1/runs/{run}/events")
    try:
        deadline = time.monotonic() + 10
        while ": keepalive" not in stream.comments:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        stream.close()


def test_bad_resume_ids(server):
    run = new_id()
    put_run(server, run)
    assert SSE(server, f"/api/v1/runs/{run}/events", headers={"Last-Event-ID": "x"}).status == 400
    # An unknown project cursor is treated as a fresh start, not an error.
    project = f"live-{new_id('')[:8]}"
    put_run(server, new_id(), project=project)
    stream = SSE(
        server,
        f"/api/v1/projects/{server.user}/{project}/events",
        headers={"Last-Event-ID": "garbage"},
    )
    try:
        assert stream.status == 200
    finally:
        stream.close()


def test_streams_end_on_shutdown(start_server):
    srv = start_server()
    run = new_id()
    put_run(srv, run)
    stream = SSE(srv, f"/api/v1/runs/{run}/events")
    stream.next(event="run")
    started = time.monotonic()
    srv.stop()
    assert srv.proc.returncode == 0
    assert time.monotonic() - started < 15  # an open stream does not hold the shutdown
    stream.close()


def test_project_cursors_stay_small_and_refuse_what_is_not_ours():
    """A whole cursor names every running run of the project: packed by run pk, 1,000 runs
    at sequences up to a million fit the 8 KB a header line may hold (server and proxies);
    as JSON of ids they took ~25 bytes a run, and a stream past ~300 running runs could not
    be resumed."""
    import base64
    import random
    import struct
    import zlib

    from gradexp.server.http.live import decode_cursor, encode_cursor, encode_delta

    rng = random.Random(7)
    positions = {1000 + 3 * i + rng.randrange(3): rng.randrange(0, 1_000_000) for i in range(1000)}
    token = encode_cursor(1.7e9 + 0.25, positions)
    assert len(token) < 8190, len(token)
    assert decode_cursor(token) == {"t": 1.7e9 + 0.25, "p": positions, "r": {}}
    delta = encode_delta(1.7e9 + 1.5, {1003: 5})
    both = decode_cursor(f"{token}.{delta}")
    assert both is not None and both["t"] == 1.7e9 + 1.5
    assert both["p"] == {**positions, 1003: 5}
    # Tokens of the earlier version (JSON, runs by id) still resume.
    legacy = base64.urlsafe_b64encode(b'{"t":5.0,"r":{"abc":3}}').decode().rstrip("=")
    assert decode_cursor(legacy) == {"t": 5.0, "p": {}, "r": {"abc": 3}}

    def packed(raw: bytes) -> str:
        return "z" + base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")

    hostile = [
        packed(struct.pack("<dI", 1.0, 10**9) + bytes(10**7)),  # claims a billion runs
        packed(struct.pack("<dI", 1.0, 2) + bytes(8)),  # shorter than it says
        packed(struct.pack("<dI", float("nan"), 0)),
        packed(struct.pack("<dI", 1.0, 1) + struct.pack("<QQ", 1, 2**64 - 1)),  # > 2**63
        token[:-5],  # cut short
        f"{token}.j" + base64.urlsafe_b64encode(b"[1.0, 7]").decode(),  # a pk without a seq
        f"{token}.j" + base64.urlsafe_b64encode(b"[1.0, 7, -1]").decode(),
        f"{token}.j" + "A" * 5000,
        "z" + "!" * 10,
        "z",
    ]
    assert [decode_cursor(t) for t in hostile] == [None] * len(hostile)


@pytest.mark.slow
def test_a_stream_of_hundreds_of_running_runs_resumes(server):
    """400 running runs: the id of the whole cursor is resumable through the server (as
    JSON of run ids it was past aiohttp's 8 KB header line: 400 Bad Request)."""
    project = f"many-{new_id('')[:8]}"
    runs = [new_id() for _ in range(400)]
    for run in runs:
        put_run(server, run, project=project)
        post(server, run, steps_batch(1, 1))
    stream = SSE(server, f"/api/v1/projects/{server.user}/{project}/events")
    try:
        stream.wait_ready()
        post(server, runs[0], steps_batch(2, 1))
        ev = stream.next(event="rows")
        last_id = ev["id"]
    finally:
        stream.close()
    for run in runs[1:4]:
        post(server, run, steps_batch(2, 1))
    resumed = SSE(
        server,
        f"/api/v1/projects/{server.user}/{project}/events",
        headers={"Last-Event-ID": last_id},
    )
    try:
        assert resumed.status == 200
        seen = {}
        deadline = time.monotonic() + 30
        while len(seen) < 3:
            assert time.monotonic() < deadline, seen
            ev = resumed.next(event="rows")
            seen[ev["data"]["run_id"]] = [r["_seq"] for r in ev["data"]["rows"]]
        assert seen == {run: [2] for run in runs[1:4]}
    finally:
        resumed.close()
    from gradexp.server.http.live import decode_cursor

    named = decode_cursor(last_id.partition(".")[0])
    assert named is not None and len(named["p"]) == 400  # it named the 400 runs
