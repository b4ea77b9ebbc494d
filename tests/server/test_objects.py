"""Blobs, run files and the Parquet export, on a local folder and on S3 (moto)."""

from __future__ import annotations

import hashlib
import io
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import batch, get, history, new_id, post, put_run


@pytest.fixture(params=["local", "s3"])
def store_server(request, start_server):
    """A server on a fresh SQLite database, with a local or an S3 object store."""
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_store")
        srv = start_server(store_url=s3)
        srv.s3 = s3
    else:
        srv = start_server()
        srv.s3 = None
    return srv


def list_objects(srv) -> set[str]:
    """Every object key in the server's store, relative to its root."""
    if srv.s3 is None:
        root = Path(srv.store_url)
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    import boto3

    client = boto3.client("s3", endpoint_url=srv.s3.endpoint, **_creds(srv.s3.env))
    resp = client.list_objects_v2(Bucket=srv.s3.bucket)
    return {o["Key"].removeprefix("gradexp/") for o in resp.get("Contents", [])}


def _creds(env):
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_REGION"],
    }


@pytest.mark.slow
def test_blobs_round_trip(store_server):
    srv = store_server
    run = new_id()
    put_run(srv, run)
    small = b"small blob"
    big = os.urandom(20 * 1024 * 1024 + 3)  # past the in-memory threshold: streamed
    for data in (small, big):
        sha = hashlib.sha256(data).hexdigest()
        url = f"/api/v1/runs/{run}/blobs/{sha}"
        assert srv.request("HEAD", url)[0] == 404
        status, body = srv.request(
            "PUT", url, raw=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert (status, body) == (201, {"sha256": sha, "size": len(data), "created": True})
        status, body = srv.request("PUT", url, raw=data)
        assert (status, body["created"]) == (200, False)
        assert srv.request("HEAD", url)[0] == 200
        status, got = srv.request("GET", url)
        assert status == 200 and got == data
    keys = list_objects(srv)
    blob_keys = {k for k in keys if "/blobs/" in k}
    assert len(blob_keys) == 2
    assert all(k.startswith("projects/") and f"/runs/{run}/blobs/" in k for k in blob_keys)
    assert not [k for k in keys if ".upload-" in k]  # no temporary objects left behind


def test_blob_hash_mismatch_stores_nothing(store_server):
    srv = store_server
    run = new_id()
    put_run(srv, run)
    for data in (b"tiny", os.urandom(9 * 1024 * 1024)):
        wrong = hashlib.sha256(data + b"!").hexdigest()
        status, body = srv.request("PUT", f"/api/v1/runs/{run}/blobs/{wrong}", raw=data)
        assert status == 400 and "do not hash" in body["error"]["message"]
        assert srv.request("HEAD", f"/api/v1/runs/{run}/blobs/{wrong}")[0] == 404
    assert not [k for k in list_objects(srv) if f"/runs/{run}/" in k]


@pytest.mark.parametrize(
    "name", ["A" * 64, "a" * 63, "..%2F..%2Fetc%2Fpasswd", "%00" + "a" * 61, "a" * 64 + ".npy"]
)
def test_bad_blob_names(server, name):
    run = new_id()
    put_run(server, run)
    status, body = server.request("PUT", f"/api/v1/runs/{run}/blobs/{name}", raw=b"x")
    assert (status, body["error"]["code"]) == (400, "bad_request"), body
    assert "64 lowercase hex characters" in body["error"]["message"]


def test_file_records_and_downloads(store_server):
    srv = store_server
    run = new_id()
    put_run(srv, run)
    data = b"checkpoint bytes" * 100
    sha = hashlib.sha256(data).hexdigest()
    assert srv.request("PUT", f"/api/v1/runs/{run}/blobs/{sha}", raw=data)[0] == 201
    doc = batch(
        [
            {
                "seq": 1,
                "type": "file",
                "path": "ckpt/model v1.pt",
                "sha256": sha,
                "size": len(data),
                "content_type": "application/octet-stream",
            },
            history(2, 0, {"loss": 1.0}),
        ]
    )
    assert post(srv, run, doc) == (200, {"acked_seq": 2})
    files = get(srv, f"/api/v1/runs/{run}/files")["files"]
    assert [(f["path"], f["sha256"], f["size"]) for f in files] == [
        ("ckpt/model v1.pt", sha, len(data))
    ]
    status, got = srv.request("GET", f"/api/v1/runs/{run}/files/ckpt/model%20v1.pt")
    assert status == 200 and got == data
    assert srv.request("GET", f"/api/v1/runs/{run}/files/ckpt/other.pt")[0] == 404


def _typed_run(srv):
    """A finished run with numbers, non-finite floats, bools, strings, a histogram and a tensor."""
    run = new_id()
    put_run(srv, run)
    hist = {
        "_type": "histogram",
        "bins": [0.0, 0.5, 1.0],
        "counts": [3, 7],
        "min": 0.0,
        "max": 1.0,
        "mean": 0.6,
        "std": {"_type": "float", "value": "NaN"},
        "norm": 2.0,
        "count": 10,
        "nan": 0,
        "inf": 0,
        "ninf": 0,
        "zeros": 1,
    }
    tensor = {
        "_type": "tensor",
        "path": "tensors/w.npy",
        "sha256": "d" * 64,
        "size": 128,
        "shape": [4, 4],
        "dtype": "float32",
        "compressed": False,
        "mean": 0.25,
    }
    records = [
        history(1, 0, {"loss": 1.0, "ok": True, "phase": "train", "w": hist}),
        history(2, 1, {"loss": {"_type": "float", "value": "Infinity"}, "t": tensor}),
        history(3, 2, {"loss": 0.5, "phase": "eval"}),
        {"seq": 4, "type": "finish", "exit_code": 0, "time": 1.7e9 + 9},
    ]
    assert post(srv, run, batch(records)) == (200, {"acked_seq": 4})
    return run


def _check_table(table):
    cols = table.column_names
    assert cols[:2] == ["step", "timestamp"]
    assert {
        "loss",
        "ok",
        "phase",
        "w.bins",
        "w.counts",
        "w#mean",
        "w#std",
        "t.path",
        "t.sha256",
        "t#mean",
    } <= set(cols)
    data = table.to_pydict()
    assert data["step"] == [0, 1, 2]
    assert data["loss"][0] == 1.0 and math.isinf(data["loss"][1]) and data["loss"][2] == 0.5
    assert data["ok"] == [True, None, None]
    assert data["phase"] == ["train", None, "eval"]
    assert data["w.bins"] == [[0.0, 0.5, 1.0], None, None]
    assert data["w.counts"] == [[3.0, 7.0], None, None]
    assert data["w#mean"][0] == 0.6 and math.isnan(data["w#std"][0])
    assert data["t.path"] == [None, "tensors/w.npy", None] and data["t#mean"][1] == 0.25


def test_finish_writes_parquet_readable_everywhere(store_server, tmp_path):
    import duckdb
    import polars
    import pyarrow.parquet as pq

    srv = store_server
    run = _typed_run(srv)
    deadline = time.monotonic() + 60
    while not any(k.endswith(f"/runs/{run}/history.parquet") for k in list_objects(srv)):
        assert time.monotonic() < deadline, "the export never appeared in the store"
        time.sleep(0.2)
    status, data = srv.request("GET", f"/api/v1/runs/{run}/history.parquet")
    assert status == 200
    _check_table(pq.read_table(io.BytesIO(data)))
    path = tmp_path / "h.parquet"
    path.write_bytes(data)
    query = f"SELECT count(*), max(loss) FROM '{path}' WHERE isfinite(loss)"
    assert duckdb.connect().execute(query).fetchall() == [(2, 1.0)]
    frame = polars.read_parquet(path)
    assert frame["phase"].to_list() == ["train", None, "eval"]


@pytest.mark.slow
def test_export_cli_for_a_running_run(store_server, tmp_path):
    import pyarrow.parquet as pq

    srv = store_server
    run = new_id()
    put_run(srv, run)
    post(srv, run, batch([history(i + 1, i, {"loss": float(i)}) for i in range(100)]))
    out = tmp_path / "run.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "gradexp.cli", "export", run, "--out", str(out), *srv.storage_args],
        capture_output=True,
        text=True,
        env=srv.env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "100 rows" in proc.stdout
    table = pq.read_table(out)
    assert table.column("loss").to_pylist() == [float(i) for i in range(100)]
    # The on-demand download of a running run matches.
    status, data = srv.request("GET", f"/api/v1/runs/{run}/history.parquet")
    assert status == 200 and pq.read_table(io.BytesIO(data)).num_rows == 100
    proc = subprocess.run(
        [sys.executable, "-m", "gradexp.cli", "export", "nosuchrun", *srv.storage_args],
        capture_output=True,
        text=True,
        env=srv.env,
        timeout=120,
    )
    assert proc.returncode != 0 and "no run 'nosuchrun'" in proc.stderr


@pytest.mark.slow
def test_failed_export_is_retried(start_server, s3_store):
    import boto3

    srv = start_server(store_url=s3_store)
    client = boto3.client("s3", endpoint_url=s3_store.endpoint, **_creds(s3_store.env))
    client.delete_bucket(Bucket=s3_store.bucket)  # the store is gone when the run finishes
    run = new_id()
    put_run(srv, run)
    post(
        srv,
        run,
        batch(
            [
                history(1, 0, {"loss": 1.0}),
                {"seq": 2, "type": "finish", "exit_code": 0, "time": 2.0},
            ]
        ),
    )
    deadline = time.monotonic() + 60
    while "exporting run" not in srv.log_path.read_text():
        assert time.monotonic() < deadline, "the failed export was not logged"
        time.sleep(0.2)
    client.create_bucket(Bucket=s3_store.bucket)  # the store is back: the retry succeeds
    deadline = time.monotonic() + 90
    while True:
        keys = [
            o["Key"] for o in client.list_objects_v2(Bucket=s3_store.bucket).get("Contents", [])
        ]
        if any(k.endswith(f"/runs/{run}/history.parquet") for k in keys):
            break
        assert time.monotonic() < deadline, "the export was never retried"
        time.sleep(0.5)
