"""Project stream cursors too big for an event id (past ~1,500 running runs) are kept in
the server's memory and named by a token: a stream resumes from them exactly in the same
process; a token the process does not know starts the stream from now with a ``reset``
event first. Here the limit is lowered (``GRADEXP_SERVER_MAX_EVENT_ID``) so that a few
dozen runs pass it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .helpers import SSE, new_id, post, project_stream_resumes_from_any_event, put_run, steps_batch


def test_a_stream_resumes_exactly_from_a_kept_cursor(start_server: Any) -> None:
    srv = start_server(env={"GRADEXP_SERVER_MAX_EVENT_ID": "20"})
    ids = project_stream_resumes_from_any_event(srv, "kept")
    assert all(i.startswith("m") and len(i.partition(".")[0]) == 23 for i in ids), ids[:3]


@pytest.mark.parametrize("token", ["m" + "A" * 22, "m" + "A" * 22 + ".jWzEuMCwgMSwgMl0", "junk"])
def test_an_unknown_cursor_starts_from_now_with_a_reset_first(server: Any, token: str) -> None:
    # (a kept cursor of another process, or from before a restart; or not a cursor at all)
    project = f"reset-{new_id('')[:8]}"
    run = new_id()
    put_run(server, run, project=project)
    post(server, run, steps_batch(1, 3))
    path = f"/api/v1/projects/{server.user}/{project}/events"
    stream = SSE(server, path, headers={"Last-Event-ID": token})
    try:
        assert stream.status == 200
        reset = stream.next()
        assert reset["event"] == "reset"
        assert reset["data"] == {"reason": "unknown_cursor"}
        assert reset["id"]  # where to resume from: now
        stream.wait_ready()
        post(server, run, steps_batch(4, 1))  # rows from now on come; earlier ones do not
        ev = stream.next(event="rows")
        assert [r["_seq"] for r in ev["data"]["rows"]] == [4]
    finally:
        stream.close()


def test_the_cursor_store_is_bounded_and_answers_for_its_project_only(monkeypatch):
    from gradexp.server.domain.live import cursor_store
    from gradexp.server.domain.live.cursor_store import CursorStore

    store = CursorStore(max_bytes=1000, ttl=60.0)
    tokens = [store.put(7, "z" + str(i) * 299) for i in range(5)]  # 300 bytes each
    assert len(store) == 3 and store.bytes == 900  # the two oldest went
    assert store.get(7, tokens[0]) is None and store.get(7, tokens[4]) == "z" + "4" * 299
    assert store.get(8, tokens[4]) is None  # another project's stream: not its cursor
    assert store.get(7, "m" + "A" * 22) is None
    now = time.monotonic()
    monkeypatch.setattr(cursor_store.time, "monotonic", lambda: now + 61)
    assert store.get(7, tokens[4]) is None  # past its time
    store.put(7, "z")
    assert len(store) == 1 and store.bytes == 1
