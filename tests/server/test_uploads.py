"""Uploads in parts against a real server: resume where the server stands, join, verify."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from tests.conftest import ServerProcess

PART = 8 * 1024 * 1024  # the server's part size (storage/objects.py UPLOAD_PART_BYTES)


def _run(srv: ServerProcess, run_id: str) -> None:
    status, body = srv.request("PUT", f"/api/v1/runs/{run_id}", {"project": "uploads"})
    assert status in (200, 201), body


def _start(srv: ServerProcess, run_id: str, data: bytes) -> dict[str, Any]:
    body = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content_type": "application/octet-stream",
    }
    status, reply = srv.request("POST", f"/api/v1/runs/{run_id}/uploads", body)
    assert status == 200, reply
    return dict(reply)


def _part(srv: ServerProcess, run_id: str, upload: str, data: bytes, offset: int) -> Any:
    chunk = data[offset : offset + PART]
    return srv.request(
        "PUT",
        f"/api/v1/runs/{run_id}/uploads/{upload}?offset={offset}",
        raw=chunk,
        headers={"Content-Type": "application/octet-stream"},
    )


def _file_record(srv: ServerProcess, run_id: str, data: bytes, path: str) -> None:
    sha = hashlib.sha256(data).hexdigest()
    rec = {"seq": 1, "type": "file", "path": path, "sha256": sha, "size": len(data)}
    status, body = srv.request(
        "POST",
        f"/api/v1/runs/{run_id}/records",
        {"first_seq": 1, "last_seq": 1, "records": [rec]},
    )
    assert status == 200, body


def test_parts_resume_after_a_server_restart_and_join_byte_exact(
    start_server: Any, tmp_path: Any
) -> None:
    srv = start_server()
    run_id = "upload-resume"
    _run(srv, run_id)
    data = os.urandom(2 * PART + 12345)
    started = _start(srv, run_id, data)
    assert started["done"] is False and started["offset"] == 0
    upload = started["upload_id"]

    status, body = _part(srv, run_id, upload, data, 0)
    assert status == 200 and body["offset"] == PART
    # A part sent again (the reply was lost) is refused with where the upload stands.
    status, body = _part(srv, run_id, upload, data, 0)
    assert status == 409 and body["error"]["code"] == "upload_offset"
    assert body["error"]["offset"] == PART
    # Joining before every byte arrived says what is missing.
    status, body = srv.request("POST", f"/api/v1/runs/{run_id}/uploads/{upload}/complete")
    assert status == 409 and body["error"]["offset"] == PART

    srv.kill()  # the server dies mid-upload; a new process continues from its storage
    srv.start()
    again = _start(srv, run_id, data)
    assert again["upload_id"] == upload and again["offset"] == PART
    offset = again["offset"]
    while offset < len(data):
        status, body = _part(srv, run_id, upload, data, offset)
        assert status == 200, body
        offset = body["offset"]
    status, body = srv.request("POST", f"/api/v1/runs/{run_id}/uploads/{upload}/complete")
    assert status == 201 and body["size"] == len(data), body

    _file_record(srv, run_id, data, "model.bin")
    status, got = srv.request("GET", f"/api/v1/runs/{run_id}/files/model.bin")
    assert status == 200 and got == data
    # Done: starting it again says so, and the parts are gone from the store.
    assert _start(srv, run_id, data)["done"] is True
    parts = [p for p in (srv.data_dir / "objects").rglob("*") if "uploads" in p.parts]
    assert not [p for p in parts if p.is_file()]


def test_parts_that_do_not_hash_to_the_name_are_refused(start_server: Any) -> None:
    srv = start_server()
    run_id = "upload-mismatch"
    _run(srv, run_id)
    data = os.urandom(PART + 10)
    started = _start(srv, run_id, data)
    bad = bytearray(data)
    bad[5] ^= 0xFF
    offset = 0
    while offset < len(data):
        status, body = _part(srv, run_id, started["upload_id"], bytes(bad), offset)
        assert status == 200, body
        offset = body["offset"]
    status, body = srv.request(
        "POST", f"/api/v1/runs/{run_id}/uploads/{started['upload_id']}/complete"
    )
    assert status == 400 and "do not hash" in body["error"]["message"]
    status, _ = srv.request(
        "HEAD", f"/api/v1/runs/{run_id}/blobs/{hashlib.sha256(data).hexdigest()}"
    )
    assert status == 404
    assert _start(srv, run_id, data)["offset"] == 0  # a fresh upload


@pytest.mark.parametrize("size", [0, 5 * 1024**3])
def test_an_upload_of_a_bad_size_is_refused(server: ServerProcess, size: int) -> None:
    _run(server, "upload-size")
    body = {"sha256": "0" * 64, "size": size}
    status, reply = server.request("POST", "/api/v1/runs/upload-size/uploads", body)
    assert status == 400, reply
