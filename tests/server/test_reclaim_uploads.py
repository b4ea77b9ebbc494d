"""Storage given back beyond runs: a deleted project's artifacts (rows and objects, every
database, the local store and S3), and uploads in parts abandoned for an hour (gc)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from .helpers import batch, new_id, post, put_run, run_async
from .test_objects import list_objects

CHUNK = 16 * 1024 * 1024  # protocol/artifacts.py ARTIFACT_CHUNK_BYTES
RUN_PART = 8 * 1024 * 1024  # storage/objects.py UPLOAD_PART_BYTES


def _objects(srv: Any) -> set[str]:
    if not hasattr(srv, "s3"):
        srv.s3 = None
    return list_objects(srv)


async def _artifact_rows(db_url: str, project_id: int) -> dict[str, int]:
    from gradexp.server.storage import schema as s
    from gradexp.server.storage.db import Database

    db = Database(db_url)
    try:
        async with db.read() as conn:
            av = s.artifact_versions
            ids = select(av.c.id).where(av.c.project_id == project_id)
            counts = {}
            for table, where in (
                (av, av.c.project_id == project_id),
                (s.artifact_aliases, s.artifact_aliases.c.project_id == project_id),
                (s.artifact_blobs, s.artifact_blobs.c.project_id == project_id),
                (s.artifact_usage, s.artifact_usage.c.version_id.in_(ids)),
            ):
                n = await conn.execute(select(func.count()).select_from(table).where(where))
                counts[table.name] = int(n.scalar_one())
            return counts
    finally:
        await db.dispose()


def _log_artifact(srv: Any, run: str, name: str, data: bytes, seq: int) -> None:
    sha = hashlib.sha256(data).hexdigest()
    status, body = srv.request(
        "PUT",
        f"/api/v1/runs/{run}/artifact-blobs/{sha}?offset=0&size={len(data)}",
        raw=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status in (200, 201) and body["complete"], body
    rec = {
        "seq": seq,
        "type": "artifact",
        "action": "log",
        "name": name,
        "artifact_type": "model",
        "aliases": ["best"],
        "files": [{"path": "w.bin", "sha256": sha, "size": len(data)}],
        "time": time.time(),
    }
    use = {"seq": seq + 1, "type": "artifact", "action": "use", "name": name, "ref": "best"}
    use |= {"time": time.time()}
    assert post(srv, run, batch([rec, use]))[0] == 200


def _cut_off_artifact_upload(srv: Any, run: str, size: int) -> str:
    """The first chunk of a larger artifact file, and nothing more (the client died)."""
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    status, body = srv.request(
        "PUT",
        f"/api/v1/runs/{run}/artifact-blobs/{sha}?offset=0&size={size}",
        raw=data[:CHUNK],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 200 and body == {"received": CHUNK, "complete": False}, body
    return sha


def _project_id_from_db(srv: Any, run: str) -> int:
    from gradexp.server.storage import schema as s
    from gradexp.server.storage.db import Database

    async def go() -> int:
        db = Database(srv.db_url)
        try:
            async with db.read() as conn:
                q = select(s.runs.c.project_id).where(s.runs.c.id == run)
                return int((await conn.execute(q)).scalar_one())
        finally:
            await db.dispose()

    return run_async(go())


def _deleted_project_reclaims_its_artifacts(srv: Any) -> None:
    project, other = f"art-{new_id('')[:8]}", f"keep-{new_id('')[:8]}"
    run, keeper = new_id(), new_id()
    assert put_run(srv, run, project=project)[0] == 201
    assert put_run(srv, keeper, project=other)[0] == 201
    shared = b"the same weights in both projects" * 100
    _log_artifact(srv, run, "model", shared, 1)
    _log_artifact(srv, run, "model", b"second version" * 50, 3)
    _log_artifact(srv, keeper, "model", shared, 1)
    _cut_off_artifact_upload(srv, run, CHUNK + 1000)
    pid = _project_id_from_db(srv, run)
    prefix = f"projects/{pid}/artifacts/"
    assert [k for k in _objects(srv) if k.startswith(prefix + "blobs/")]
    assert [k for k in _objects(srv) if k.startswith(prefix + "uploads/")]
    before = run_async(_artifact_rows(srv.db_url, pid))
    assert before["artifact_versions"] == 2 and before["artifact_usage"] >= 2

    status, _ = srv.request("DELETE", f"/api/v1/projects/{srv.user}/{project}")
    assert status == 200
    deadline = time.monotonic() + 60
    while True:
        rows = run_async(_artifact_rows(srv.db_url, pid))
        left = [k for k in _objects(srv) if k.startswith(prefix)]
        if not any(rows.values()) and not left:
            break
        assert time.monotonic() < deadline, (rows, left, srv.log_tail())
        time.sleep(0.2)
    # The other project's copy of the same bytes is its own, and stays.
    status, body = srv.request(
        "GET",
        f"/api/v1/projects/{srv.user}/{other}/artifact-blobs/{hashlib.sha256(shared).hexdigest()}",
    )
    assert status == 200 and body == shared
    assert "deleted projects whose artifacts are not reclaimed yet: 0" in srv.admin(
        "gc", "--dry-run"
    )


def test_deleting_a_project_reclaims_its_artifacts(db_server: Any) -> None:
    _deleted_project_reclaims_its_artifacts(db_server)


@pytest.mark.slow
def test_deleting_a_project_reclaims_its_artifacts_on_s3(start_server: Any, s3_store: Any) -> None:
    srv = start_server(store_url=s3_store, env=s3_store.env)
    srv.s3 = s3_store
    _deleted_project_reclaims_its_artifacts(srv)


def _age(root: Path, prefix: str, seconds: float) -> None:
    """Make every file under ``prefix`` of a local store look ``seconds`` old."""
    then = time.time() - seconds
    for path in (root / prefix).rglob("*"):
        os.utime(path, (then, then))


@pytest.mark.slow
def test_gc_removes_uploads_abandoned_for_an_hour(start_server: Any) -> None:
    srv = start_server()
    srv.s3 = None
    run = new_id()
    assert put_run(srv, run, project="gc-uploads")[0] == 201
    pid = _project_id_from_db(srv, run)
    # A run-file upload in parts with one part sent, and an artifact upload with one chunk.
    data = os.urandom(RUN_PART + 10)
    body = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    status, started = srv.request("POST", f"/api/v1/runs/{run}/uploads", body)
    assert status == 200
    upload = started["upload_id"]
    status, _ = srv.request(
        "PUT",
        f"/api/v1/runs/{run}/uploads/{upload}?offset=0",
        raw=data[:RUN_PART],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 200
    old_sha = _cut_off_artifact_upload(srv, run, CHUNK + 10)
    fresh_sha = _cut_off_artifact_upload(srv, run, CHUNK + 20)
    root = Path(srv.store_url)
    _age(root, f"projects/{pid}/runs/{run}/uploads/{upload}", 2 * 3600)
    _age(root, f"projects/{pid}/artifacts/uploads/{old_sha}", 2 * 3600)

    report = srv.admin("gc", "--dry-run")
    assert "abandoned uploads (nothing sent for an hour): 2," in report, report
    assert [k for k in _objects(srv) if f"/uploads/{upload}/" in k]  # a dry run keeps them
    done = srv.admin("gc")
    assert "2 abandoned uploads removed" in done, done
    keys = _objects(srv)
    assert not [k for k in keys if f"/uploads/{upload}/" in k or f"/uploads/{old_sha}/" in k]
    assert [k for k in keys if f"/uploads/{fresh_sha}/" in k]  # still in flight: kept
    # The run-file upload is gone on the server too: its client starts it again.
    status, body = srv.request("GET", f"/api/v1/runs/{run}/uploads/{upload}")
    assert status == 404 and body["error"]["code"] == "upload_not_found"
    assert "abandoned uploads (nothing sent for an hour): 0," in srv.admin("gc", "--dry-run")
