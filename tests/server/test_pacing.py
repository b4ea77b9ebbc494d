"""Pacing: every ingest reply says whether the run is watched and the least batch interval
the server wants; the SDK follows both; a busy server refuses with 429 ``slow_down`` and
``Retry-After`` instead of queueing without bound, and nothing is lost."""

from __future__ import annotations

import concurrent.futures
import gc
import time
from typing import Any

import pytest

import gradexp
from gradexp.transport.uploader import Uploader

from .helpers import SSE, post_reply, put_run, rows, steps_batch


def _uploader(run_id: str) -> Uploader:
    """The stream thread's uploader of a run (its pacing is what the test looks at); the
    stream thread makes it after init() returns, so it may take a moment to appear."""
    deadline = time.monotonic() + 10
    while True:
        found = [o for o in gc.get_objects() if isinstance(o, Uploader) and o.run_id == run_id]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(found) == 1
    return found[0]


def _reply(srv: Any, run: str, first: int) -> dict[str, Any]:
    status, body = post_reply(srv, run, steps_batch(first, 10))
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def test_a_run_with_an_open_stream_is_told_it_is_watched(server: Any) -> None:
    run = "pacewatch1"
    assert put_run(server, run)[0] == 201
    first = _reply(server, run, 1)
    assert first["watched"] is False
    assert first["batch_interval"] == 0.0  # an idle test server keeps up
    stream = SSE(server, f"/api/v1/runs/{run}/events")
    try:
        assert stream.status == 200
        seq, watched = 11, False
        deadline = time.monotonic() + 30
        while not watched and time.monotonic() < deadline:
            watched = _reply(server, run, seq)["watched"]
            seq += 10
            time.sleep(0.1)
        assert watched, "the run's open stream never made it watched"
    finally:
        stream.close()
    assert len(rows(server, run)) == seq - 1


def test_the_sdk_sends_watched_runs_often_and_others_less_often(
    gx_env: Any, online: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = gradexp.init(project="pacing", settings={"quiet": True})
    try:
        run.log({"loss": 1.0})
        assert gradexp.flush(timeout=30)  # a batch, and the server's first reply
        uploader = _uploader(run.id)
        assert uploader.watched is False
        assert uploader.interval == 2.0  # twice the default 1 s: nobody watches
        stream = SSE(online, f"/api/v1/runs/{run.id}/events")
        try:
            deadline = time.monotonic() + 30
            while uploader.interval != 0.1 and time.monotonic() < deadline:
                run.log({"loss": 0.5})
                gradexp.flush(timeout=30)
                time.sleep(0.2)
            assert uploader.watched is True
            assert uploader.interval == 0.1
        finally:
            stream.close()
    finally:
        gradexp.finish()


def test_a_busy_server_paces_writers_and_refuses_past_its_limit(start_server: Any) -> None:
    # A target no batch can meet, and one batch in flight at a time: both mechanisms show
    # on a test machine.
    srv = start_server(
        env={
            "GRADEXP_SERVER_INGEST_TARGET": "0.000001",
            "GRADEXP_SERVER_MAX_INGEST_IN_FLIGHT": "1",
        }
    )
    runs = [f"busy{i}" for i in range(8)]
    for run in runs:
        assert put_run(srv, run)[0] == 201

    deadline = time.monotonic() + 60

    def send(run: str) -> tuple[list[Any], list[Any], int]:
        """Send a run's batches in order, each again until accepted (as the SDK does): 20
        batches, and more until the server has asked to slow down (it adjusts at most
        every half second, so how many that takes depends on the machine)."""
        accepted: list[Any] = []
        refused: list[Any] = []
        first = 1
        while first < 201 or (
            max(b["batch_interval"] for b in accepted) <= 1.0 and time.monotonic() < deadline
        ):
            while True:
                status, body = post_reply(srv, run, steps_batch(first, 10))
                if status == 200:
                    accepted.append(body)
                    break
                assert status == 429, body
                refused.append(body)
                time.sleep(0.01)
            first += 10
        return accepted, refused, first - 1

    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
        results = list(pool.map(send, runs))
    accepted = [body for ok, _, _ in results for body in ok]
    refused = [body for _, no, _ in results for body in no]
    assert refused, "one batch in flight at a time, eight runs: some must be refused"
    assert {b["error"]["code"] for b in refused} == {"slow_down"}
    assert max(b["batch_interval"] for b in accepted) > 1.0  # writers asked to slow down
    # Every row exactly once: what was refused was not stored, and was sent again.
    for run, (_, _, sent) in zip(runs, results, strict=True):
        assert [r["_step"] for r in rows(srv, run)] == list(range(sent))


def test_the_sdk_loses_nothing_while_paced(
    start_server: Any, gx_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = start_server(
        env={
            "GRADEXP_SERVER_INGEST_TARGET": "0.000001",
            "GRADEXP_SERVER_MAX_INGEST_IN_FLIGHT": "1",
        }
    )
    monkeypatch.setenv("GRADEXP_BASE_URL", srv.url)
    monkeypatch.setenv("GRADEXP_API_KEY", srv.api_key)
    run = gradexp.init(project="paced", settings={"quiet": True, "batch_interval": 0.05})
    uploader = _uploader(run.id)
    # Batches until the server has seen the load and said so (it adjusts at most every
    # half second, so how many that takes depends on the machine's speed), then some more.
    step, deadline, more = 0, time.monotonic() + 60, 3
    while more and time.monotonic() < deadline:
        for _ in range(50):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
            step += 1
        gradexp.flush(timeout=60)
        if uploader.interval > 0.05 * 2:
            more -= 1
        time.sleep(0.1)
    gradexp.finish()
    assert uploader.interval > 0.05 * 2  # the server's floor stretched it
    assert [r["_step"] for r in rows(srv, run.id)] == list(range(step))


def test_a_burst_is_refused_once_the_oldest_batch_waited_too_long() -> None:
    """What the average cannot see yet: batches in hand for longer than the queue budget
    allows (domain/pacing.py) refuse newcomers, each told a Retry-After of its own."""
    import contextlib

    from gradexp.server.domain.errors import RateLimited
    from gradexp.server.domain.pacing import BURST_IN_FLIGHT, QUEUE_BUDGET, Pacer

    pacer = Pacer(None, lambda pk: False, target=0.1, max_in_flight=64)  # type: ignore[arg-type]
    with contextlib.ExitStack() as held:
        for _ in range(BURST_IN_FLIGHT):
            held.enter_context(pacer.batch())
        assert pacer.admit_limit() == 64  # no capacity measured yet
        with pacer.batch():  # the oldest is young: one more is taken
            pass
        first = next(iter(pacer._started))
        pacer._started[first] -= QUEUE_BUDGET * 0.1 + 0.01  # it has waited too long
        waits = set()
        for _ in range(40):
            with pytest.raises(RateLimited) as refused:
                held.enter_context(pacer.batch())
            waits.add(refused.value.extra["retry_after"])
        assert waits <= {1, 2} and len(waits) == 2  # spread, not all at once
    assert pacer.in_flight == 0 and pacer.oldest_age() == 0.0
    with pacer.batch():  # the queue drained: taken again
        pass


def test_the_admission_limit_follows_the_measured_capacity() -> None:
    from gradexp.server.domain.pacing import MIN_IN_FLIGHT, QUEUE_BUDGET, Pacer

    pacer = Pacer(None, lambda pk: False, target=0.1, max_in_flight=64)  # type: ignore[arg-type]
    pacer.capacity = 200.0  # batches a second while busy
    assert pacer.admit_limit() == int(200 * 0.1 * QUEUE_BUDGET)
    pacer.capacity = 5.0
    assert pacer.admit_limit() == MIN_IN_FLIGHT  # never below
    pacer.capacity = 10_000.0
    assert pacer.admit_limit() == 64  # never above the setting
    # Measured: batches finished per busy second, over an adjustment period.
    pacer = Pacer(None, lambda pk: False, target=0.1, max_in_flight=64)  # type: ignore[arg-type]
    for _ in range(30):
        with pacer.batch():
            time.sleep(0.004)
    pacer._adjust(time.monotonic(), stretch=False)
    assert 10 < pacer.capacity < 300  # at most 1/0.004 s; a loaded machine sleeps longer
