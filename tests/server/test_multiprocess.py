"""Two server processes on one database and one S3 bucket behave as one service."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import time

import pytest

from .helpers import SSE, batch, get, new_id, post, put_run, rows, steps_batch

pytestmark = pytest.mark.slow  # two servers, S3 and a database per test


@pytest.fixture
def pair(start_server, db_url, s3_store):
    """Processes A and B on the same database and bucket (same user and key)."""
    a = start_server(db_url=db_url, store_url=s3_store)
    b = start_server(db_url=db_url, store_url=s3_store)
    assert a.api_key == b.api_key
    return a, b


def test_ingest_through_one_stream_and_read_through_the_other(pair):
    import pyarrow.parquet as pq

    a, b = pair
    project = f"mp-{new_id('')[:6]}"
    run = new_id()
    assert put_run(a, run, project=project)[0] == 201
    project_stream = SSE(b, f"/api/v1/projects/{a.user}/{project}/events")
    stream = SSE(b, f"/api/v1/runs/{run}/events")
    try:
        project_stream.wait_ready()
        assert post(a, run, steps_batch(1, 100)) == (200, {"acked_seq": 100})
        live = stream.rows_until(100)
        assert [r["_seq"] for r in live] == list(range(1, 101))
        project_rows = []
        while len(project_rows) < 100:
            ev = project_stream.next(event="rows")
            assert ev["data"]["run_id"] == run
            project_rows.extend(ev["data"]["rows"])
        assert project_rows == live
        # A blob uploaded to A is served by B.
        blob = b"tensor" * 1000
        sha = hashlib.sha256(blob).hexdigest()
        assert a.request("PUT", f"/api/v1/runs/{run}/blobs/{sha}", raw=blob)[0] == 201
        assert b.request("GET", f"/api/v1/runs/{run}/blobs/{sha}") == (200, blob)
        assert b.request("PUT", f"/api/v1/runs/{run}/blobs/{sha}", raw=blob)[1]["created"] is False
        # The finish goes through A; B sees the state change and serves the export.
        post(a, run, batch([{"seq": 101, "type": "finish", "exit_code": 0, "time": 5.0}]))
        ev = stream.next(event="run")
        while ev["data"]["state"] != "finished":
            ev = stream.next(event="run")
    finally:
        stream.close()
        project_stream.close()
    assert get(b, f"/api/v1/runs/{run}")["state"] == "finished"
    assert rows(b, run) == rows(a, run)
    assert (
        get(b, f"/api/v1/runs/{run}/history?keys=loss&samples=10")["series"]["loss"]["max"][0]
        == 1.0
    )
    deadline = time.monotonic() + 60
    while True:
        status, data = b.request("GET", f"/api/v1/runs/{run}/history.parquet")
        assert status == 200
        table = pq.read_table(io.BytesIO(data))
        if table.num_rows == 100:
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_one_run_fed_through_both_processes_at_once(pair):
    a, b = pair
    run = new_id()
    put_run(a, run)
    assert put_run(b, run)[0] == 200  # the same init() retried through B: a no-op

    def send(i: int) -> int:
        srv = (a, b)[i % 2]
        while True:
            status, body = post(srv, run, steps_batch(1 + i * 50, 50))
            if status != 429:  # a busy server paces: sent again, as the SDK does
                break
            time.sleep(0.05)
        assert status == 200, body
        return body["acked_seq"]

    # 20 batches, in a shuffled order, through both processes concurrently.
    order = [7, 2, 19, 0, 11, 4, 15, 1, 9, 3, 17, 6, 13, 5, 18, 8, 10, 12, 14, 16]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(send, order))
    assert get(a, f"/api/v1/runs/{run}")["acked_seq"] == 1000
    assert [r["_seq"] for r in rows(b, run)] == list(range(1, 1001))
    keys = get(b, f"/api/v1/runs/{run}/keys")["keys"]
    assert keys == [
        {"key": "loss", "kind": "number", "count": 1000, "first_step": 0, "last_step": 999}
    ]
