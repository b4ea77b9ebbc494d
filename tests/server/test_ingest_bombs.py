"""A small body that inflates to a huge, valid JSON document is refused while it inflates,
before it is parsed: the server's memory stays a small multiple of the limit.

A server of its own (SQLite), decoding in its own process (``GRADEXP_INGEST_WORKERS=0``)
so that its memory is what the body costs; Linux only (``/proc``).
"""

from __future__ import annotations

import sys
import zlib

import pytest

from .helpers import GZIP, batch, get, history, new_id, peak_kib, post, put_run, reset_peak

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for memory")

MiB = 1024 * 1024


def json_bomb(unit: bytes, total: int) -> bytes:
    """gzip'ed ``{"first_seq": 2, "last_seq": 2, "records": [UNIT,UNIT,...,{}]}`` of about
    ``total`` bytes once inflated, built a MiB at a time."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [comp.compress(b'{"first_seq": 2, "last_seq": 2, "records": [')]
    block = unit * (MiB // len(unit))
    out.extend(comp.compress(block) for _ in range(total // len(block)))
    out.append(comp.compress(b"{}]}"))
    out.append(comp.flush())
    return b"".join(out)


def test_a_json_bomb_is_refused_while_it_inflates(start_server):
    srv = start_server(env={"GRADEXP_INGEST_WORKERS": "0"})
    run_id = new_id()
    assert put_run(srv, run_id)[0] == 201
    assert post(srv, run_id, batch([history(1, 0, {"loss": 1.0})]))[0] == 200
    bomb = json_bomb(b"{},", 200 * MiB)  # 200 MiB of empty objects in ~0.2 MB
    assert len(bomb) < 400 * 1024
    before = reset_peak(srv)
    status, body = srv.request("POST", f"/api/v1/runs/{run_id}/records", raw=bomb, headers=GZIP)
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    assert "4,000,000 JSON values" in body["error"]["message"]
    # Parsed whole, 66 million empty objects cost gigabytes; refused while inflating, the
    # server held a few MiB of JSON.
    assert peak_kib(srv) - before < 128 * 1024
    # Nothing was written, and the run goes on.
    assert get(srv, f"/api/v1/runs/{run_id}")["acked_seq"] == 1
    assert post(srv, run_id, batch([history(2, 1, {"loss": 0.5})]))[0] == 200


def test_a_body_inflating_past_its_gzip_trailer_is_refused(server):
    run_id = new_id()
    assert put_run(server, run_id)[0] == 201
    good = json_bomb(b"1,", 2 * MiB)  # valid gzip of a 2 MiB batch...
    lying = good[:-4] + (100).to_bytes(4, "little")  # ...whose trailer says 100 bytes
    status, body = server.request("POST", f"/api/v1/runs/{run_id}/records", raw=lying, headers=GZIP)
    assert status == 400 and body["error"]["code"] == "bad_gzip", body
    assert get(server, f"/api/v1/runs/{run_id}")["acked_seq"] == 0
