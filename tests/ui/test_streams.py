"""Live streams as the web UI uses them: a browser leaving is normal (no traceback, the
per-connection poller stops, the open-stream count in /healthz returns to zero), and the
runs table's project stream carries run events only (``?rows=0``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.helpers import open_streams
from tests.server.helpers import SSE, post, put_run, steps_batch


def wait_for_streams(srv: Any, n: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while open_streams(srv) != n:
        assert time.monotonic() < deadline, f"{open_streams(srv)} streams open, expected {n}"
        time.sleep(0.05)


@pytest.mark.slow
def test_clients_leaving_end_their_streams_quietly(start_server: Any) -> None:
    srv = start_server()
    assert open_streams(srv) == 0
    put_run(srv, "leave1", project="leaving")
    post(srv, "leave1", steps_batch(1, 5))

    # Rows keep arriving while the clients come and go, so streams are writing when their
    # clients vanish (the case that used to log "Cannot write to closing transport").
    stop = threading.Event()

    def feed() -> None:
        seq = 6
        while not stop.is_set():
            post(srv, "leave1", steps_batch(seq, 3))
            seq += 3
            time.sleep(0.02)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        for _ in range(3):
            streams = [
                SSE(srv, "/api/v1/runs/leave1/events"),
                SSE(srv, f"/api/v1/projects/{srv.user}/leaving/events"),
                SSE(srv, f"/api/v1/projects/{srv.user}/leaving/events?rows=0"),
                SSE(srv, "/api/v1/runs/leave1/events?after_seq=3"),
            ]
            streams[0].next(event="rows")
            streams[1].wait_ready()
            streams[2].wait_ready()
            streams[3].next(event="rows")
            wait_for_streams(srv, len(streams))
            for stream in streams:
                stream.close()
            # Each stream notices its client left within a poll, not at its next keepalive.
            wait_for_streams(srv, 0, timeout=5.0)
    finally:
        stop.set()
        feeder.join(10)
    # Idle streams too (nothing to write, the next keepalive 15 s away) stop within a poll.
    idle = [SSE(srv, "/api/v1/runs/leave1/events?after_seq=100000") for _ in range(3)]
    idle.append(SSE(srv, f"/api/v1/projects/{srv.user}/leaving/events?rows=0"))
    idle[-1].wait_ready()
    wait_for_streams(srv, len(idle))
    for stream in idle:
        stream.close()
    wait_for_streams(srv, 0, timeout=5.0)
    srv.stop()
    log = srv.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "closing transport" not in log, log[-3000:]


def test_project_stream_without_rows(server: Any) -> None:
    project = f"norows-{int(time.time() * 1000) % 10**9}"
    put_run(server, "norows0" + project[-6:], project=project)
    run_id = "norows0" + project[-6:]
    table = SSE(server, f"/api/v1/projects/{server.user}/{project}/events?rows=0")
    full = SSE(server, f"/api/v1/projects/{server.user}/{project}/events")
    try:
        table.wait_ready()
        full.wait_ready()
        post(server, run_id, steps_batch(1, 20))
        # The default stream carries the rows; the rows=0 one only says the run progressed.
        got = full.next(event="rows")
        assert got["data"]["run_id"] == run_id
        progressed = table.next(event="run")
        assert progressed["data"]["id"] == run_id and progressed["data"]["last_step"] == 19
        post(
            server,
            run_id,
            {
                "first_seq": 21,
                "last_seq": 21,
                "records": [{"seq": 21, "type": "finish", "exit_code": 0, "time": time.time()}],
            },
        )
        while table.next(event="run")["data"]["state"] != "finished":
            pass
        assert all(e.get("event") != "rows" for e in table._pending)
        assert table.events.empty() or all(
            e.get("event") != "rows" for e in list(table.events.queue)
        )
    finally:
        table.close()
        full.close()
    status, body = server.request(
        "GET", f"/api/v1/projects/{server.user}/{project}/events?rows=maybe"
    )
    assert status == 400 and "rows" in body["error"]["message"]
