"""Project stream cursors too big for an event id (past ~1,500 running runs) are kept in
the server's memory and named by a token: a stream resumes from them exactly in the same
process; a token the process does not know starts the stream from now with a ``reset``
event first. Here the limit is lowered (``GRADEXP_SERVER_MAX_EVENT_ID``) so that a few
dozen runs pass it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .helpers import SSE, new_id, post, put_run, steps_batch


def _collect(stream: SSE, want: dict[str, list[int]]) -> None:
    seen: dict[str, list[int]] = {}
    deadline = time.monotonic() + 30
    while seen != want:
        assert time.monotonic() < deadline, (seen, want)
        ev = stream.next(event="rows")
        seen.setdefault(ev["data"]["run_id"], []).extend(r["_seq"] for r in ev["data"]["rows"])


def test_a_stream_resumes_exactly_from_a_kept_cursor(start_server: Any) -> None:
    from gradexp.server.http.live import DELTA_MAX

    srv = start_server(env={"GRADEXP_SERVER_MAX_EVENT_ID": "20"})
    project = f"kept-{new_id('')[:8]}"
    runs = [new_id() for _ in range(DELTA_MAX + 8)]
    for run in runs:
        put_run(srv, run, project=project)
    path = f"/api/v1/projects/{srv.user}/{project}/events"
    stream = SSE(srv, path)
    got: list[dict[str, Any]] = []
    try:
        stream.wait_ready()
        for run in runs:
            post(srv, run, steps_batch(1, 2))
        deadline = time.monotonic() + 30
        while len(got) < len(runs):
            assert time.monotonic() < deadline, len(got)
            got.append(stream.next(event="rows"))
    finally:
        stream.close()
    ids = [ev["id"] for ev in got]
    assert all(i.startswith("m") and len(i.partition(".")[0]) == 23 for i in ids), ids[:3]
    assert any("." in i for i in ids) and any("." not in i for i in ids)  # both kinds
    for n, cut in enumerate((DELTA_MAX // 2, DELTA_MAX + 3)):  # a delta id; one after a whole
        before = {ev["data"]["run_id"] for ev in got[: cut + 1]}
        resumed = SSE(srv, path, headers={"Last-Event-ID": got[cut]["id"]})
        try:
            want = {r: [1, 2] for r in runs if r not in before}
            if n:  # the rows the first pass added to runs[0] came after any of these ids
                want[runs[0]] = [*want.get(runs[0], []), *range(3, 3 + n)]
            _collect(resumed, want)
            assert not any(e.get("event") == "reset" for e in resumed._pending)
            post(srv, runs[0], steps_batch(3 + n, 1))  # and nothing else comes before it
            ev = resumed.next(event="rows")
            assert ev["data"]["run_id"] == runs[0]
            assert [r["_seq"] for r in ev["data"]["rows"]] == [3 + n]
        finally:
            resumed.close()


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
