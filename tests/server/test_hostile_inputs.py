"""Inputs that once answered 500: each is a precise 4xx now, and writes nothing.

Against a real server on every database (one server per database for the module).
"""

from __future__ import annotations

import urllib.parse

import pytest

from .helpers import batch, get, history, log_file, new_id, post, put_run, rows


def nested(depth: int) -> dict:
    """An object nested ``depth`` levels deep."""
    doc: dict = {"leaf": 1}
    for _ in range(depth - 1):
        doc = {"a": doc}
    return doc


def expect_4xx(result, status=400, code=None):
    got, body = result
    assert got == status, body
    assert isinstance(body, dict) and body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]["message"]


@pytest.fixture
def run(db_server):
    """A run holding one committed row (loss at step 0)."""
    run_id = new_id()
    assert put_run(db_server, run_id, config={"lr": 0.1})[0] == 201
    assert post(db_server, run_id, batch([history(1, 0, {"loss": 1.0})]))[0] == 200
    return run_id


def assert_untouched(srv, run_id):
    obj = get(srv, f"/api/v1/runs/{run_id}")
    assert obj["acked_seq"] == 1
    assert obj["config"] == {"lr": 0.1}
    assert [r["_seq"] for r in rows(srv, run_id)] == [1]


def test_config_nested_300_deep_in_put_run(db_server, run):
    msg = expect_4xx(put_run(db_server, run, config={"lr": 0.1, "deep": nested(300)}))
    assert "deep" in msg
    # A new run with such a config is not created either.
    other = new_id()
    expect_4xx(put_run(db_server, other, config=nested(300)))
    assert db_server.request("GET", f"/api/v1/runs/{other}")[0] == 404
    assert_untouched(db_server, run)


def test_config_record_nested_300_deep(db_server, run):
    rec = {"seq": 2, "type": "config", "update": {"deep": nested(300)}}
    msg = expect_4xx(post(db_server, run, batch([rec])), 400, "bad_batch")
    assert "deep" in msg
    assert_untouched(db_server, run)


def test_histogram_with_an_extra_nested_field(db_server, run):
    hist = {"_type": "histogram", "bins": [0.0, 1.0], "counts": [3], "extra": nested(300)}
    expect_4xx(post(db_server, run, batch([history(2, 1, {"h": hist})])), 400, "bad_batch")
    assert_untouched(db_server, run)
    # A shallow extra field is refused too: typed values hold only their own fields.
    hist["extra"] = {"a": {"b": 1}}
    expect_4xx(post(db_server, run, batch([history(2, 1, {"h": hist})])), 400, "bad_batch")
    assert_untouched(db_server, run)


def test_telemetry_counters_cannot_overflow_and_the_run_goes_on(db_server, run):
    big = 2**64 - 1
    # Too large for a counter: refused at once, nothing written.
    expect_4xx(
        post(db_server, run, batch([{"seq": 2, "type": "telemetry", "n": big}])), 400, "bad_batch"
    )
    expect_4xx(
        post(db_server, run, batch([{"seq": 2, "type": "telemetry", "x": 1e308}])),
        400,
        "bad_batch",
    )
    assert_untouched(db_server, run)
    # Counters that grow past the bound by adding up saturate; later batches still apply.
    limit = 2**53
    seq = 2
    for _ in range(3):
        rec = {"seq": seq, "type": "telemetry", "n": limit, "d": {"k": limit}}
        assert post(db_server, run, batch([rec]))[0] == 200
        seq += 1
    status, body = post(db_server, run, batch([history(seq, 1, {"loss": 0.5})]))
    assert status == 200 and body["acked_seq"] == seq, body
    finish = {"seq": seq + 1, "type": "finish", "exit_code": 0, "time": 1.7e9}
    assert post(db_server, run, batch([finish]))[0] == 200
    obj = get(db_server, f"/api/v1/runs/{run}")
    assert obj["state"] == "finished"
    assert obj["telemetry"]["n"] == limit and obj["telemetry"]["d"]["k"] == limit


@pytest.mark.parametrize("order", ["summary:a\x00b", "config:a\x00b", "-summary:\x00"])
def test_nul_in_order(db_server, run, order):
    q = urllib.parse.quote(order)
    expect_4xx(db_server.request("GET", f"/api/v1/projects/ada/proj/runs?order={q}"))


HUGE = str(2**63 + 5)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/projects/ada/proj/runs?cursor=" + HUGE,
        "/api/v1/runs/{run}/history/rows?after_seq=" + HUGE,
        "/api/v1/runs/{run}/history/rows?min_step=" + HUGE,
        "/api/v1/runs/{run}/history/rows?max_step=" + HUGE,
        "/api/v1/runs/{run}/history?min_step=" + HUGE,
        "/api/v1/runs/{run}/history?max_step=" + HUGE,
        "/api/v1/runs/{run}/history?samples=" + HUGE,
        "/api/v1/runs/{run}/history/rows?limit=" + HUGE,
        "/api/v1/projects/ada/proj/runs?limit=" + HUGE,
        "/api/v1/runs/{run}/history?min_step=-" + HUGE,
    ],
)
def test_integers_past_2_63(db_server, run, path):
    path = path.format(run=run)
    msg = expect_4xx(db_server.request("GET", path), 400, "bad_request")
    assert "integer" in msg or "cursor" in msg
    assert_untouched(db_server, run)


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """A version 1.0 ``.npy`` header for an array of ``shape`` (and no data after it)."""
    head = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    head += " " * ((64 - (10 + len(head) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode()


def test_npy_header_claiming_8_tib(db_server):
    run_id = new_id()
    assert put_run(db_server, run_id)[0] == 201
    data = npy_header((1 << 40,)) + bytes(64)  # 8 TiB of float64, 64 bytes sent
    log_file(db_server, run_id, 1, "huge.npy", data)
    for path in ("tensor", "tensor.npy"):
        status, body = db_server.request("GET", f"/api/v1/runs/{run_id}/{path}?path=huge.npy")
        assert 400 <= status < 500, (path, status, body)
        assert isinstance(body, dict) and body["error"]["message"], body
        assert status in (413, 422), (path, status, body)
    # The server is fine afterwards.
    assert get(db_server, f"/api/v1/runs/{run_id}")["acked_seq"] == 1


def test_a_bad_rank_on_the_log_download_is_a_400(db_server, run):
    # Checked before the download starts (it used to start a 200 and then break off).
    for rank in ("-1", "40000", HUGE):
        expect_4xx(db_server.request("GET", f"/api/v1/runs/{run}/logs.txt?rank={rank}"))


@pytest.mark.parametrize(
    "rec",
    [
        {"type": "finish", "exit_code": 2**63, "time": 1.7e9},
        {"type": "finish", "exit_code": 2**31, "time": 1.7e9},
        {"type": "file", "path": "a.bin", "sha256": "a" * 64, "size": 2**63},
    ],
)
def test_integers_past_their_column_in_records(db_server, run, rec):
    expect_4xx(post(db_server, run, batch([{"seq": 2, **rec}])), 400, "bad_batch")
    assert_untouched(db_server, run)
