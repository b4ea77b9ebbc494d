"""A run with many keys: history reads are bounded per request (a clear 400 past the
bounds) and stay exact for every key within them; Parquet covers every key.

On every database (one server per database for the module).
"""

from __future__ import annotations

import io
import urllib.parse

import pytest

from .helpers import batch, get, history, new_id, post, put_run

KEYS = 1200  # more than one request may ask for
STEPS = 3


def value(k: int, step: int) -> float:
    return k * 10.0 + step


@pytest.fixture(scope="module")
def wide_run(db_server):
    """A run whose every row holds KEYS numeric keys (k0 ... k1199)."""
    run_id = new_id("wide")
    assert put_run(db_server, run_id)[0] == 201
    recs = [
        history(step + 1, step, {f"k{k}": value(k, step) for k in range(KEYS)})
        for step in range(STEPS)
    ]
    status, body = post(db_server, run_id, batch(recs))
    assert status == 200 and body["acked_seq"] == STEPS, body
    return run_id


def read(srv, run_id, keys=None, **params):
    if keys is not None:
        params["keys"] = ",".join(keys)
    return srv.request("GET", f"/api/v1/runs/{run_id}/history?{urllib.parse.urlencode(params)}")


def test_every_key_at_once_is_refused_with_the_way_out(db_server, wide_run):
    status, body = read(db_server, wide_run)
    assert status == 400, body
    msg = body["error"]["message"]
    assert "1200 numeric keys" in msg and "at most 1000" in msg and "?keys=" in msg


def test_too_many_keys_or_points_are_refused(db_server, wide_run):
    status, body = read(db_server, wide_run, [f"k{k}" for k in range(1001)])
    assert status == 400 and "at most 1000 per request" in body["error"]["message"], body
    status, body = read(db_server, wide_run, [f"k{k}" for k in range(1000)], samples=501)
    assert status == 400 and "500,000 points" in body["error"]["message"], body


def test_many_keys_read_exactly(db_server, wide_run):
    keys = [f"k{k}" for k in range(200, 1200)]  # 1000 keys: the most one request takes
    status, body = read(db_server, wide_run, keys, samples=500)
    assert status == 200, body
    series = body["series"]
    assert sorted(series) == sorted(keys)
    for k in range(200, 1200):
        s = series[f"k{k}"]
        assert s["step"] == list(range(STEPS))
        assert s["value"] == [value(k, step) for step in range(STEPS)]
        assert s["min"] == s["max"] == s["value"]
    # A key asked for twice is one series; a key the run lacks is an empty one.
    status, body = read(db_server, wide_run, ["k7", "k7", "nope"])
    assert status == 200 and set(body["series"]) == {"k7", "nope"}
    assert body["series"]["k7"]["value"] == [value(7, s) for s in range(STEPS)]
    assert body["series"]["nope"]["step"] == []


def test_rows_and_parquet_hold_every_key(db_server, wide_run):
    rows = get(db_server, f"/api/v1/runs/{wide_run}/history/rows")["rows"]
    assert len(rows) == STEPS and rows[2]["k1199"] == value(1199, 2)
    pq = pytest.importorskip("pyarrow.parquet")
    status, data = db_server.request("GET", f"/api/v1/runs/{wide_run}/history.parquet")
    assert status == 200
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == STEPS and table.num_columns == KEYS + 2
    assert table.column("k1199").to_pylist() == [value(1199, s) for s in range(STEPS)]
