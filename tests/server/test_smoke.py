"""The server starts, answers health checks, and round-trips a batch (the fixtures work)."""

from __future__ import annotations

import gzip
import json


def test_health_and_viewer(server):
    status, body = server.request("GET", "/healthz")
    assert status == 200 and body["ok"] is True
    status, body = server.request("GET", "/api/v1/viewer")
    assert status == 200
    assert body["user"]["name"] == server.user
    assert server.api_key.startswith(body["key"]["prefix"])


def test_ingest_and_read_back(server):
    status, body = server.request(
        "PUT", "/api/v1/runs/smoke1", {"project": "smoke", "attempt": "a"}
    )
    assert status == 201, body
    batch = {
        "first_seq": 1,
        "last_seq": 2,
        "records": [
            {"seq": 1, "type": "history", "step": 0, "time": 1.0, "values": {"loss": 1.5}},
            {"seq": 2, "type": "history", "step": 1, "time": 2.0, "values": {"loss": 0.5}},
        ],
    }
    status, body = server.request(
        "POST",
        "/api/v1/runs/smoke1/records",
        raw=gzip.compress(json.dumps(batch).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    # Nobody watches the run and the server keeps up: no pacing asked for.
    assert (status, body) == (200, {"acked_seq": 2, "watched": False, "batch_interval": 0.0})
    status, body = server.request("GET", "/api/v1/runs/smoke1/history/rows")
    assert [r["loss"] for r in body["rows"]] == [1.5, 0.5]
