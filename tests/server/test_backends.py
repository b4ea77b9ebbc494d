"""Each database and each object store, end to end through a real server."""

from __future__ import annotations

import gzip
import hashlib
import json


def _post(srv, run_id, batch, key=None):
    return srv.request(
        "POST",
        f"/api/v1/runs/{run_id}/records",
        raw=gzip.compress(json.dumps(batch).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        key=key,
    )


def test_roundtrip_on_each_database(start_server, db_url):
    srv = start_server(db_url=db_url)
    status, _ = srv.request("PUT", "/api/v1/runs/db1", {"project": "p", "attempt": "x"})
    assert status == 201
    batch = {
        "first_seq": 1,
        "last_seq": 3,
        "records": [
            {
                "seq": 1,
                "type": "history",
                "step": 0,
                "time": 1.0,
                "values": {"Loss": 2.0, "loss": 1.0},
            },
            {"seq": 2, "type": "config", "update": {"lr": 0.1}},
            {
                "seq": 3,
                "type": "history",
                "step": 1,
                "time": 2.0,
                "values": {"loss": {"_type": "float", "value": "NaN"}},
            },
        ],
    }
    assert _post(srv, "db1", batch) == (200, {"acked_seq": 3})
    assert _post(srv, "db1", batch) == (200, {"acked_seq": 3})
    status, run = srv.request("GET", "/api/v1/runs/db1")
    assert run["config"] == {"lr": 0.1}
    assert run["summary"] == {"Loss": 2.0, "loss": {"_type": "float", "value": "NaN"}}
    status, rows = srv.request("GET", "/api/v1/runs/db1/history/rows")
    assert [r["_seq"] for r in rows["rows"]] == [1, 3]


def test_blobs_on_s3(start_server, s3_store):
    srv = start_server(store_url=s3_store)
    srv.request("PUT", "/api/v1/runs/s3run", {"project": "p", "attempt": "x"})
    data = b"tensor bytes" * 1000
    sha = hashlib.sha256(data).hexdigest()
    status, body = srv.request("PUT", f"/api/v1/runs/s3run/blobs/{sha}", raw=data)
    assert status == 201, body
    status, got = srv.request("GET", f"/api/v1/runs/s3run/blobs/{sha}")
    assert status == 200 and got == data
