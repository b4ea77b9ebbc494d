"""Every kind of bad request gets a precise 4xx with a JSON error, and writes nothing.

On each database (one server per database for the module).
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import sys
import zlib

import pytest

from .helpers import GZIP, batch, get, gz, history, new_id, post, put_run, rows

H = "/api/v1/runs/{}/records"


@pytest.fixture
def run(db_server):
    """A run holding 3 committed rows."""
    run_id = new_id()
    assert put_run(db_server, run_id)[0] == 201
    assert (
        post(db_server, run_id, batch([history(i, i - 1, {"loss": float(i)}) for i in (1, 2, 3)]))[
            0
        ]
        == 200
    )
    return run_id


def assert_untouched(srv, run_id):
    """The run still holds exactly its 3 rows and ack 3."""
    assert get(srv, f"/api/v1/runs/{run_id}")["acked_seq"] == 3
    assert [r["_seq"] for r in rows(srv, run_id)] == [1, 2, 3]
    assert [k["key"] for k in get(srv, f"/api/v1/runs/{run_id}/keys")["keys"]] == ["loss"]


def send(srv, run_id, raw, headers=GZIP):
    return srv.request("POST", H.format(run_id), raw=raw, headers=headers)


def expect(result, status, code):
    got_status, body = result
    assert got_status == status, body
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


def test_malformed_gzip(db_server, run):
    expect(send(db_server, run, b"this is not gzip"), 400, "bad_gzip")
    truncated = gz(batch([history(4, 3, {"loss": 4.0})]))[:-12]
    expect(send(db_server, run, truncated), 400, "bad_gzip")
    assert_untouched(db_server, run)


def test_malformed_json(db_server, run):
    msg = expect(
        send(db_server, run, gzip.compress(b'{"first_seq": 4, "last_seq": ')), 400, "bad_json"
    )
    assert "JSON" in msg
    expect(send(db_server, run, gzip.compress(b"[NaN]")), 400, "bad_json")
    assert_untouched(db_server, run)


def test_unsupported_encoding(db_server, run):
    expect(send(db_server, run, b"xx", {"Content-Encoding": "br"}), 415, "unsupported_media_type")
    assert_untouched(db_server, run)


def test_body_over_the_limit_by_content_length(db_server, run):
    # Announce 40 MiB and send nothing: refused from the headers, before any body is read.
    with socket.create_connection(("127.0.0.1", db_server.port), timeout=30) as sock:
        sock.sendall(
            (
                f"POST {H.format(run)} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {db_server.api_key}\r\nContent-Encoding: gzip\r\n"
                f"Content-Length: {40 * 1024 * 1024}\r\n\r\n"
            ).encode()
        )
        head = sock.recv(65536).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head
    assert "payload_too_large" in head
    assert_untouched(db_server, run)


def test_chunked_body_over_the_limit(db_server, run):
    conn = http.client.HTTPConnection("127.0.0.1", db_server.port, timeout=60)
    chunk = b" " * (1024 * 1024)  # JSON whitespace: only the size is wrong

    def body():
        for _ in range(40):  # 40 MiB, chunked: no Content-Length to refuse early
            yield chunk

    try:
        conn.request(
            "POST",
            H.format(run),
            body=body(),
            headers={"Authorization": f"Bearer {db_server.api_key}"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        status, payload = resp.status, json.loads(resp.read())
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("the server dropped the connection instead of answering 413")
    finally:
        conn.close()
    assert status == 413 and payload["error"]["code"] == "payload_too_large"
    assert_untouched(db_server, run)


@pytest.mark.slow
def test_gzip_bomb(db_server, run):
    # 2 GiB of zeros compress to ~2 MiB; the limit after decompression is 256 MiB.
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    bomb = b"".join(comp.compress(zeros) for _ in range(2048)) + comp.flush()
    assert len(bomb) < 4 * 1024 * 1024
    msg = expect(send(db_server, run, bomb), 413, "payload_too_large")
    assert "decompresses" in msg
    assert_untouched(db_server, run)
    if sys.platform == "linux":  # the server never held anything near the full 2 GiB
        assert _peak_rss_kib(db_server) < 768 * 1024


def _peak_rss_kib(srv):
    """The server process's peak resident memory (Linux's VmHWM), in KiB."""
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM line in /proc/{srv.proc.pid}/status")


BAD_BATCHES = [
    ("not an object", [1, 2], "bad_batch"),
    ("range reversed", {"first_seq": 5, "last_seq": 4, "records": []}, "bad_batch"),
    (
        "count mismatch",
        {"first_seq": 4, "last_seq": 5, "records": [history(4, 3, {"a": 1})]},
        "bad_batch",
    ),
    (
        "seq gap inside",
        {
            "first_seq": 4,
            "last_seq": 5,
            "records": [history(4, 3, {"a": 1}), history(6, 4, {"a": 1})],
        },
        "bad_batch",
    ),
    (
        "step is a string",
        batch([history(4, 3, {"a": 1}), {**history(5, 4, {}), "step": "4"}]),
        "bad_batch",
    ),
    ("negative step", batch([{**history(4, 3, {}), "step": -1}]), "bad_batch"),
    ("bool step", batch([{**history(4, 3, {}), "step": True}]), "bad_batch"),
    ("time missing", batch([{"seq": 4, "type": "history", "step": 3, "values": {}}]), "bad_batch"),
    ("values a list", batch([{**history(4, 3, {}), "values": [1, 2]}]), "bad_batch"),
    ("untyped object", batch([history(4, 3, {"a": {"b": 1}})]), "bad_batch"),
    ("list value", batch([history(4, 3, {"a": [1, 2]})]), "bad_batch"),
    ("key with #", batch([history(4, 3, {"a#b": 1})]), "bad_batch"),
    ("empty key", batch([history(4, 3, {"": 1})]), "bad_batch"),
    ("key too long", batch([history(4, 3, {"k" * 257: 1})]), "bad_batch"),
    ("control char key", batch([history(4, 3, {"a\nb": 1})]), "bad_batch"),
    (
        "bad float encoding",
        batch([history(4, 3, {"a": {"_type": "float", "value": "nan"}})]),
        "bad_batch",
    ),
    (
        "histogram edges",
        batch([history(4, 3, {"h": {"_type": "histogram", "bins": [0, 1], "counts": [1, 2]}})]),
        "bad_batch",
    ),
    ("unknown record type", batch([{"seq": 4, "type": "metrics", "x": 1}]), "bad_batch"),
    ("config not object", batch([{"seq": 4, "type": "config", "update": [1]}]), "bad_batch"),
    (
        "finish exit code",
        batch([{"seq": 4, "type": "finish", "exit_code": "0", "time": 1.0}]),
        "bad_batch",
    ),
    (
        "file path escapes",
        batch([{"seq": 4, "type": "file", "path": "../etc/passwd", "sha256": "a" * 64, "size": 1}]),
        "bad_batch",
    ),
    (
        "file absolute path",
        batch([{"seq": 4, "type": "file", "path": "/etc/passwd", "sha256": "a" * 64, "size": 1}]),
        "bad_batch",
    ),
    (
        "tensor bad sha",
        batch(
            [
                history(
                    4,
                    3,
                    {
                        "t": {
                            "_type": "tensor",
                            "path": "t.npy",
                            "sha256": "xyz",
                            "size": 1,
                            "shape": [1],
                            "dtype": "f4",
                            "compressed": False,
                        }
                    },
                )
            ]
        ),
        "bad_batch",
    ),
]


@pytest.mark.parametrize(("what", "doc", "code"), BAD_BATCHES, ids=[b[0] for b in BAD_BATCHES])
def test_bad_batches_write_nothing(db_server, run, what, doc, code):
    # Valid records before the bad one must not be written either.
    msg = expect(post(db_server, run, doc), 400, code)
    assert "\n" not in msg
    assert_untouched(db_server, run)


def test_file_record_needs_its_blob(db_server, run):
    doc = batch(
        [
            history(4, 3, {"loss": 9.0}),
            {"seq": 5, "type": "file", "path": "model.pt", "sha256": "b" * 64, "size": 10},
        ]
    )
    status, body = post(db_server, run, doc)
    assert status == 409 and body["error"]["code"] == "blob_missing"
    assert_untouched(db_server, run)


def test_unknown_run(db_server):
    expect(post(db_server, new_id(), batch([history(1, 0, {"a": 1})])), 404, "run_not_found")
    expect(db_server.request("GET", f"/api/v1/runs/{new_id()}"), 404, "run_not_found")
    expect(db_server.request("GET", "/api/v1/runs/bad%20id"), 404, "run_not_found")


def test_bad_run_description(db_server):
    run_id = new_id()
    expect(
        db_server.request("PUT", f"/api/v1/runs/{run_id}", {"project": "no spaces allowed"}),
        400,
        "bad_request",
    )
    expect(
        db_server.request("PUT", f"/api/v1/runs/{run_id}", {"project": "p", "tags": "x"}),
        400,
        "bad_request",
    )
    expect(db_server.request("PUT", f"/api/v1/runs/{run_id}", raw=b"{not json"), 400, "bad_json")
    expect(db_server.request("GET", f"/api/v1/runs/{run_id}"), 404, "run_not_found")


def test_bad_query_parameters(db_server, run):
    expect(db_server.request("GET", f"/api/v1/runs/{run}/history?samples=many"), 400, "bad_request")
    expect(
        db_server.request("GET", f"/api/v1/runs/{run}/history/rows?after_seq=-1"),
        400,
        "bad_request",
    )
    expect(
        db_server.request("GET", "/api/v1/projects/ada/proj/runs?order=-password"),
        400,
        "bad_request",
    )
