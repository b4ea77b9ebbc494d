"""Ingest semantics on every database: dedup, ordering, ack, merges, finish.

Each test starts a server on a fresh SQLite, PostgreSQL and MariaDB database.
"""

from __future__ import annotations

import concurrent.futures

import pytest

from .helpers import batch, get, history, new_id, post, put_run, rows, steps_batch


def test_replaying_a_batch_changes_nothing(start_server, db_url):
    srv = start_server(db_url=db_url)
    run = new_id()
    assert put_run(srv, run)[0] == 201
    doc = steps_batch(1, 50)
    assert post(srv, run, doc) == (200, {"acked_seq": 50})
    before = rows(srv, run)
    # The same batch again, then one overlapping it: no duplicates, same ack.
    assert post(srv, run, doc) == (200, {"acked_seq": 50})
    assert post(srv, run, steps_batch(41, 20)) == (200, {"acked_seq": 60})
    after = rows(srv, run)
    assert after[:50] == before
    assert [r["_seq"] for r in after] == list(range(1, 61))
    keys = get(srv, f"/api/v1/runs/{run}/keys")
    assert keys["keys"] == [
        {"key": "loss", "kind": "number", "count": 60, "first_step": 0, "last_step": 59}
    ]


def test_out_of_order_batches_ack_waits_for_the_gap(start_server, db_url):
    srv = start_server(db_url=db_url)
    run = new_id()
    put_run(srv, run)
    assert post(srv, run, steps_batch(1, 10)) == (200, {"acked_seq": 10})
    # 21..30 and 41..50 arrive before 11..20 and 31..40: committed, but not acknowledged.
    assert post(srv, run, steps_batch(21, 10)) == (200, {"acked_seq": 10})
    assert post(srv, run, steps_batch(41, 10)) == (200, {"acked_seq": 10})
    assert post(srv, run, steps_batch(21, 10)) == (200, {"acked_seq": 10})  # a retry of one
    assert post(srv, run, steps_batch(11, 10)) == (200, {"acked_seq": 30})
    # A batch that straddles committed ranges fills only what is missing.
    assert post(srv, run, steps_batch(25, 20)) == (200, {"acked_seq": 50})
    got = rows(srv, run)
    assert [r["_seq"] for r in got] == list(range(1, 51))
    obj = get(srv, f"/api/v1/runs/{run}")
    assert obj["acked_seq"] == 50 and obj["last_step"] == 49


def test_finish_waits_for_earlier_records(start_server, db_url):
    srv = start_server(db_url=db_url)
    run = new_id()
    put_run(srv, run)
    post(srv, run, steps_batch(1, 5))
    finish = batch([{"seq": 11, "type": "finish", "exit_code": 0, "time": 1.7e9 + 100}])
    assert post(srv, run, finish) == (200, {"acked_seq": 5})
    assert srv.request("GET", f"/api/v1/runs/{run}")[1]["state"] == "running"
    assert post(srv, run, steps_batch(6, 5)) == (200, {"acked_seq": 11})
    obj = srv.request("GET", f"/api/v1/runs/{run}")[1]
    assert (
        obj["state"] == "finished" and obj["exit_code"] == 0 and obj["finished_at"] == 1.7e9 + 100
    )


def test_a_new_runs_answer_is_the_run_as_read_back(db_server):
    """A new run's PUT answers from the row it just made (no second read): the same
    object a GET of the run returns, for a run with everything set at init()."""
    run = new_id()
    fields = {
        "name": "n1",
        "config": {"lr": 0.1, "layers": [1, 2]},
        "tags": ["a", "b"],
        "notes": "first try",
        "group": "g",
        "job_type": "train",
        "host": {"hostname": "box"},
    }
    status, body = put_run(db_server, run, attempt="x1", **fields)
    assert status == 201, body
    got = db_server.request("GET", f"/api/v1/runs/{run}")[1]
    assert got.pop("role") == "owner"  # the reader's role: a GET's, not the run's
    assert body["run"] == got
    assert body["acked_seq"] == 0 and body["last_step"] == -1
    assert (got["name"], got["config"], got["tags"], got["summary"]) == (
        "n1",
        fields["config"],
        ["a", "b"],
        {},
    )


def test_failed_exit_code_and_resume(start_server, db_url):
    srv = start_server(db_url=db_url)
    run = new_id()
    put_run(srv, run, attempt="first")
    post(
        srv,
        run,
        batch([history(1, 0, {"x": 1}), {"seq": 2, "type": "finish", "exit_code": 3, "time": 5.0}]),
    )
    obj = srv.request("GET", f"/api/v1/runs/{run}")[1]
    assert (obj["state"], obj["exit_code"]) == ("failed", 3)
    # A new init() of the same id without resume is refused; with resume it continues.
    status, body = put_run(srv, run, attempt="second")
    assert status == 409 and body["error"]["code"] == "run_exists"
    status, body = put_run(srv, run, attempt="second", resume=True, config={"more": 1})
    assert status == 200
    assert body["acked_seq"] == 2 and body["last_step"] == 0 and body["run"]["state"] == "running"
    assert post(srv, run, batch([history(3, 1, {"x": 2})])) == (200, {"acked_seq": 3})
    # Repeating the PUT of the same attempt is a no-op.
    assert put_run(srv, run, attempt="second", resume=True)[0] == 200


def test_config_summary_telemetry_and_key_index(start_server, db_url):
    srv = start_server(db_url=db_url)
    run = new_id()
    put_run(srv, run, config={"lr": 0.1, "model": {"depth": 4}})
    records = [
        history(1, 0, {"loss": 2.5, "acc": 0.1, "tag": "warmup", "ok": True, "n": None}),
        {"seq": 2, "type": "config", "update": {"batch_size": 64, "lr": 0.05}},
        history(3, 1, {"loss": {"_type": "float", "value": "NaN"}, "acc": 0.2, "Acc": 7}),
        {"seq": 4, "type": "summary", "update": {"best_acc": 0.2, "acc": 0.99}},
        {"seq": 5, "type": "telemetry", "dropped_values": {"bad": 2}, "spilled_bytes": 10},
        {
            "seq": 6,
            "type": "telemetry",
            "dropped_values": {"bad": 1, "worse": 1},
            "spilled_bytes": 5,
        },
    ]
    assert post(srv, run, batch(records)) == (200, {"acked_seq": 6})
    obj = srv.request("GET", f"/api/v1/runs/{run}")[1]
    assert obj["config"] == {"lr": 0.05, "model": {"depth": 4}, "batch_size": 64}
    # Last value by sequence, explicit summary wins, keys are case-sensitive.
    assert obj["summary"] == {
        "loss": {"_type": "float", "value": "NaN"},
        "acc": 0.99,
        "tag": "warmup",
        "ok": True,
        "Acc": 7,
        "best_acc": 0.2,
    }
    assert obj["telemetry"] == {"dropped_values": {"bad": 3, "worse": 1}, "spilled_bytes": 15}
    keys = {k["key"]: k for k in srv.request("GET", f"/api/v1/runs/{run}/keys")[1]["keys"]}
    assert {k: v["kind"] for k, v in keys.items()} == {
        "loss": "number",
        "acc": "number",
        "tag": "string",
        "ok": "bool",
        "Acc": "number",
    }
    assert keys["loss"]["count"] == 2 and keys["Acc"]["first_step"] == 1


@pytest.mark.slow
def test_concurrent_runs(start_server, db_url):
    srv = start_server(db_url=db_url)
    runs = [new_id() for _ in range(4)]
    for run in runs:
        put_run(srv, run)

    def feed(run: str) -> list[int]:
        acks = []
        for b in range(10):
            status, body = post(srv, run, steps_batch(1 + b * 100, 100))
            assert status == 200, body
            acks.append(body["acked_seq"])
        return acks

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(feed, runs))
    assert all(acks == [100 * (b + 1) for b in range(10)] for acks in results)
    for run in runs:
        got = rows(srv, run)
        assert [r["_seq"] for r in got] == list(range(1, 1001))
        assert got[-1]["loss"] == 1.0 / 1000


def test_history_rows_filters_and_pages(start_server, db_url):
    srv = start_server(db_url=db_url)
    run = new_id()
    put_run(srv, run)
    recs = [history(i + 1, i, {"a": i, "b": -i} if i % 2 else {"a": i}) for i in range(30)]
    post(srv, run, batch(recs))
    body = get(srv, f"/api/v1/runs/{run}/history/rows?keys=b&limit=4")
    assert [r["b"] for r in body["rows"]] == [-1, -3]  # rows without b are skipped
    assert body["next_after_seq"] == 4
    got = rows(srv, run, min_step=10, max_step=14, limit=2)
    assert [(r["_step"], r["a"]) for r in got] == [(s, s) for s in range(10, 15)]


def test_a_big_batch_is_parsed_off_the_event_loop(server):
    # ~4 MiB decompressed: parsed on a worker thread; a read in the meantime still answers.
    run = new_id()
    put_run(server, run)
    doc = steps_batch(1, 30_000, acc=0.5, lr=0.001, grad_norm=1.0)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        ingest = pool.submit(post, server, run, doc)
        assert server.request("GET", "/api/v1/projects")[0] == 200
        assert ingest.result() == (200, {"acked_seq": 30_000})
    assert get(server, f"/api/v1/runs/{run}/keys")["keys"][0]["count"] == 30_000
