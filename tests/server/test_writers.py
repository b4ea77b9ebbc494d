"""A run with several writers, at the protocol level, on every database: each writer's
sequence numbers, acknowledgements and history are its own (exactly once per writer), the
run ends when all have finished or one has failed, and a client that knows nothing of
writers is rank 0 as before."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.helpers import (
    batch,
    get,
    history,
    new_id,
    post,
    post_as,
    put_run,
    put_writer,
    rows,
)


def ranked_steps(first_seq: int, n: int, rank: int) -> dict[str, Any]:
    return batch(
        [
            history(first_seq + i, first_seq - 1 + i, {"loss": float(first_seq + i), "rank": rank})
            for i in range(n)
        ]
    )


def finish(seq: int, code: int) -> dict[str, Any]:
    return batch([{"seq": seq, "type": "finish", "exit_code": code, "time": 1.8e9 + seq}])


def test_writers_have_their_own_sequences(db_server: Any) -> None:
    srv = db_server
    run_id = new_id()
    # Rank 1 comes first: it creates the run; rank 0 then takes the run's fields.
    status, reply = put_writer(srv, run_id, 1, name="from-rank-1")
    assert status == 201 and reply["accepts"]["writers"] is True
    assert "console" in reply["accepts"]["record_types"]
    status, reply = put_writer(srv, run_id, 0, name="job", config={"lr": 0.1})
    assert status == 200 and reply["acked_seq"] == 0

    # Both writers send seq 1..10; out of order, duplicated, and retried.
    assert post_as(srv, run_id, 1, ranked_steps(6, 5, 1)) == (200, {"acked_seq": 0})
    assert post(srv, run_id, ranked_steps(1, 10, 0)) == (200, {"acked_seq": 10})
    assert post_as(srv, run_id, 1, ranked_steps(1, 5, 1)) == (200, {"acked_seq": 10})
    assert post_as(srv, run_id, 1, ranked_steps(1, 10, 1)) == (200, {"acked_seq": 10})
    assert post_as(srv, run_id, 1, ranked_steps(11, 2, 1)) == (200, {"acked_seq": 12})
    assert post(srv, run_id, ranked_steps(5, 6, 0)) == (200, {"acked_seq": 10})  # replay

    mine = rows(srv, run_id)
    assert [r["_seq"] for r in mine] == list(range(1, 11)) and {r["rank"] for r in mine} == {0}
    theirs = get(srv, f"/api/v1/runs/{run_id}/history/rows?rank=1")["rows"]
    assert [r["_seq"] for r in theirs] == list(range(1, 13)) and {r["rank"] for r in theirs} == {1}
    assert get(srv, f"/api/v1/runs/{run_id}/keys?rank=1")["keys"][0]["count"] == 12
    assert srv.request("GET", f"/api/v1/runs/{run_id}/history/rows?rank=2")[0] == 404

    run = get(srv, f"/api/v1/runs/{run_id}")
    assert (run["name"], run["config"], run["acked_seq"]) == ("job", {"lr": 0.1}, 10)
    assert run["world_size"] == 2
    assert [(w["rank"], w["state"], w["acked_seq"]) for w in run["writers"]] == [
        (0, "running", 10),
        (1, "running", 12),
    ]
    # One run in the project: the other writer is not a run.
    listed = get(srv, "/api/v1/projects/ada/proj/runs?limit=1000")["runs"]
    assert [r["id"] for r in listed].count(run_id) == 1
    assert not any(r["id"].startswith("@") for r in listed)

    # Rank 0 finishing does not end the run; rank 1's failure does, with its exit code.
    assert post(srv, run_id, finish(11, 0)) == (200, {"acked_seq": 11})
    assert get(srv, f"/api/v1/runs/{run_id}")["state"] == "running"
    assert post_as(srv, run_id, 1, finish(13, 7)) == (200, {"acked_seq": 13})
    run = get(srv, f"/api/v1/runs/{run_id}")
    assert (run["state"], run["exit_code"]) == ("failed", 7)
    assert [(w["state"], w["exit_code"]) for w in run["writers"]] == [
        ("finished", 0),
        ("failed", 7),
    ]


def test_a_run_finishes_when_every_writer_has(db_server: Any) -> None:
    srv = db_server
    run_id = new_id()
    for rank in (0, 1, 2):
        assert put_writer(srv, run_id, rank, world=3)[0] in (200, 201)
    # A writer's finish before its gap is filled: the writer is done once the gap is.
    assert post_as(srv, run_id, 2, finish(3, 0)) == (200, {"acked_seq": 0})
    assert (
        post(srv, run_id, batch([*ranked_steps(1, 2, 0)["records"], finish(3, 0)["records"][0]]))[0]
        == 200
    )
    assert (
        post_as(
            srv, run_id, 1, batch([*ranked_steps(1, 2, 1)["records"], finish(3, 0)["records"][0]])
        )[0]
        == 200
    )
    assert get(srv, f"/api/v1/runs/{run_id}")["state"] == "running"  # rank 2 is not done
    assert post_as(srv, run_id, 2, ranked_steps(1, 2, 2)) == (200, {"acked_seq": 3})
    run = get(srv, f"/api/v1/runs/{run_id}")
    assert (run["state"], run["exit_code"]) == ("finished", 0)
    assert [w["state"] for w in run["writers"]] == ["finished"] * 3


def test_a_client_without_writers_is_rank_zero(db_server: Any) -> None:
    srv = db_server
    run_id = new_id()
    status, reply = put_run(srv, run_id)  # no writer: as every client before writers
    assert status == 201 and reply["accepts"]["writers"] is True
    assert post(srv, run_id, ranked_steps(1, 3, 0)) == (200, {"acked_seq": 3})
    assert post(srv, run_id, finish(4, 0)) == (200, {"acked_seq": 4})
    run = get(srv, f"/api/v1/runs/{run_id}")
    assert run["state"] == "finished" and "writers" not in run and "world_size" not in run
    # A writer that never PUT its rank is refused like an unknown run, and writes nothing.
    assert post_as(srv, run_id, 1, ranked_steps(1, 1, 1))[0] == 404
    bad = put_run(srv, run_id, attempt="a9", writer={"rank": 2, "world_size": 2})
    assert bad[0] == 400


@pytest.mark.slow
def test_a_silent_writer_reads_crashed(start_server: Any) -> None:
    import time

    srv = start_server(env={"GRADEXP_SERVER_CRASH_AFTER": "3"})
    run_id = new_id()
    for rank in (0, 1):
        assert put_writer(srv, run_id, rank)[0] in (200, 201)
    assert post_as(srv, run_id, 1, ranked_steps(1, 2, 1))[0] == 200
    time.sleep(3.5)  # past the crash timeout: rank 1 has gone quiet
    assert srv.request("POST", f"/api/v1/runs/{run_id}/heartbeat", {})[0] == 200  # rank 0 lives
    run = get(srv, f"/api/v1/runs/{run_id}")
    assert [(w["rank"], w["state"]) for w in run["writers"]] == [(0, "running"), (1, "crashed")]
    assert run["state"] == "running"
    # Its heartbeat (?writer=1) brings it back.
    assert srv.request("POST", f"/api/v1/runs/{run_id}/heartbeat?writer=1", {})[0] == 200
    assert [w["state"] for w in get(srv, f"/api/v1/runs/{run_id}")["writers"]] == ["running"] * 2
