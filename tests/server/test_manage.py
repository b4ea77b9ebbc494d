"""Managing runs and projects: rename, notes and tags; deleting runs and projects, and the
storage given back (rows and objects), on every database and on S3; a crash halfway."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from .helpers import SSE, batch, get, history, new_id, post, put_run, run_async, steps_batch
from .test_objects import list_objects


def _patch(srv: Any, run: str, body: Any, key: str | None = None) -> tuple[int, Any]:
    return srv.request("PATCH", f"/api/v1/runs/{run}", body, key=key)  # type: ignore[no-any-return]


async def _storage(db_url: str, run_pk: int) -> dict[str, Any]:
    """Rows left per table for ``run_pk``, and its tombstone's ``reclaimed_at``."""
    from gradexp.server.domain.reclaim import run_tables
    from gradexp.server.storage import schema as s
    from gradexp.server.storage.db import Database

    db = Database(db_url)
    try:
        async with db.read() as conn:
            left = {}
            for table in run_tables():
                n = (
                    await conn.execute(
                        select(func.count()).select_from(table).where(table.c.run_pk == run_pk)
                    )
                ).scalar_one()
                if n:
                    left[table.name] = n
            reclaimed = (
                await conn.execute(
                    select(s.deleted_runs.c.reclaimed_at).where(s.deleted_runs.c.pk == run_pk)
                )
            ).first()
        return {"rows": left, "tomb": reclaimed}
    finally:
        await db.dispose()


async def _run_pk(db_url: str, run_id: str) -> int:
    from gradexp.server.storage import schema as s
    from gradexp.server.storage.db import Database

    db = Database(db_url)
    try:
        async with db.read() as conn:
            pk = (await conn.execute(select(s.runs.c.pk).where(s.runs.c.id == run_id))).scalar()
        assert pk is not None
        return int(pk)
    finally:
        await db.dispose()


def _wait_reclaimed(srv: Any, run_pk: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = run_async(_storage(srv.db_url, run_pk))
        if state["tomb"] is not None and state["tomb"][0] is not None:
            return state
        assert time.monotonic() < deadline, (state, srv.log_tail())
        time.sleep(0.1)


def _filled_run(srv: Any, project: str, data: bytes = b"weights" * 100, n: int = 50) -> str:
    """A run with history, a histogram, a file (blob) and a finish (so an export)."""
    run = new_id()
    assert put_run(srv, run, project=project)[0] == 201
    sha = hashlib.sha256(data).hexdigest()
    assert srv.request("PUT", f"/api/v1/runs/{run}/blobs/{sha}", raw=data)[0] in (200, 201)
    hist = {"_type": "histogram", "bins": [0.0, 1.0, 2.0], "counts": [3, 4]}
    records = [history(i + 1, i, {"loss": 1.0 / (i + 1), "w": hist}) for i in range(n)]
    records.append(
        {
            "seq": n + 1,
            "type": "file",
            "path": "model.pt",
            "sha256": sha,
            "size": len(data),
            "content_type": "application/octet-stream",
        }
    )
    records.append({"seq": n + 2, "type": "finish", "exit_code": 0, "time": 2e9})
    assert post(srv, run, batch(records)) == (200, {"acked_seq": n + 2})
    return run


# --- rename, notes, tags ---------------------------------------------------------------------


def test_rename_notes_and_tags_over_http_seen_live(db_server: Any) -> None:
    srv = db_server
    project = f"edit-{new_id('')[:8]}"
    run = new_id()
    put_run(srv, run, project=project, name="first", tags=["a"])
    post(srv, run, steps_batch(1, 3))
    run_stream = SSE(srv, f"/api/v1/runs/{run}/events")
    project_stream = SSE(srv, f"/api/v1/projects/{srv.user}/{project}/events")
    try:
        assert run_stream.next(event="run")["data"]["name"] == "first"
        project_stream.wait_ready()
        status, body = _patch(
            srv, run, {"name": "baseline", "notes": "lr 3e-4", "tags": ["x", "y", "x"]}
        )
        assert status == 200, body
        assert (body["name"], body["notes"], body["tags"]) == ("baseline", "lr 3e-4", ["x", "y"])
        # Both open streams are told (the name is what a page shows).
        for stream in (run_stream, project_stream):
            event = stream.next(event="run")
            while event["data"]["id"] != run or event["data"]["name"] != "baseline":
                event = stream.next(event="run")
            assert event["data"]["tags"] == ["x", "y"] and event["data"]["notes"] == "lr 3e-4"
    finally:
        run_stream.close()
        project_stream.close()
    # Stored: a fresh read, the runs table's tag filter, clearing notes.
    assert get(srv, f"/api/v1/runs/{run}")["name"] == "baseline"
    tagged = get(srv, f"/api/v1/projects/{srv.user}/{project}/runs?tag=y")["runs"]
    assert [r["id"] for r in tagged] == [run]
    assert _patch(srv, run, {"notes": None})[1]["notes"] is None


def test_bad_edits_are_refused_with_a_reason(db_server: Any) -> None:
    srv = db_server
    run = new_id()
    put_run(srv, run, name="keep")
    for body, words in (
        ({}, "nothing to change"),
        ({"name": ""}, "name must be"),
        ({"name": "x" * 257}, "name must be"),
        ({"tags": "a"}, "tags must be"),
        ({"tags": [""]}, "tags must be"),
        ({"notes": 3}, "notes must be"),
        ({"state": "finished"}, "only name, notes and tags"),
    ):
        status, got = _patch(srv, run, body)
        assert status == 400 and words in got["error"]["message"], (body, got)
    assert get(srv, f"/api/v1/runs/{run}")["name"] == "keep"
    # Another user's run, and a run that does not exist, read alike: 404.
    _, other_key = srv.new_user()
    assert _patch(srv, run, {"name": "mine"}, key=other_key)[0] == 404
    assert srv.request("DELETE", f"/api/v1/runs/{run}", key=other_key)[0] == 404
    assert _patch(srv, new_id(), {"name": "x"})[0] == 404
    assert get(srv, f"/api/v1/runs/{run}")["name"] == "keep"


# --- deletion --------------------------------------------------------------------------------


def test_deleted_runs_vanish_and_their_storage_is_reclaimed(db_server: Any) -> None:
    srv = db_server
    project = f"del-{new_id('')[:8]}"
    shared = b"the same bytes in two runs" * 50
    gone, other, kept = (_filled_run(srv, project, shared) for _ in range(3))
    pks = {r: run_async(_run_pk(srv.db_url, r)) for r in (gone, other, kept)}
    before = run_async(_storage(srv.db_url, pks[gone]))["rows"]
    assert {"history", "rollups", "typed_values", "run_keys", "files", "blobs"} <= set(before)
    # The export of a finished run is made in the background: wait for it (it must go too).
    deadline = time.monotonic() + 60
    while not any(k.endswith(f"/runs/{gone}/history.parquet") for k in list_objects_local(srv)):
        assert time.monotonic() < deadline, srv.log_tail()
        time.sleep(0.1)

    status, body = srv.request("DELETE", f"/api/v1/runs/{gone}")
    assert (status, body) == (200, {"deleted": [gone]})
    status, body = srv.request(
        "POST", f"/api/v1/projects/{srv.user}/{project}/runs/delete", {"ids": [other]}
    )
    assert (status, body) == (200, {"deleted": [other]})
    # Gone from every read at once.
    for run in (gone, other):
        assert srv.request("GET", f"/api/v1/runs/{run}")[0] == 404
        assert srv.request("GET", f"/api/v1/runs/{run}/files/model.pt")[0] == 404
    listed = get(srv, f"/api/v1/projects/{srv.user}/{project}/runs")["runs"]
    assert [r["id"] for r in listed] == [kept]
    assert {p["name"]: p["run_count"] for p in get(srv, "/api/v1/projects")["projects"]}[
        project
    ] == 1
    # Deleting again is fine (a retried request); an unknown id in a batch refuses it all.
    assert srv.request("DELETE", f"/api/v1/runs/{gone}")[0] == 200
    status, _ = srv.request(
        "POST", f"/api/v1/projects/{srv.user}/{project}/runs/delete", {"ids": [kept, new_id()]}
    )
    assert status == 404 and get(srv, f"/api/v1/runs/{kept}")["id"] == kept

    for run in (gone, other):
        assert _wait_reclaimed(srv, pks[run])["rows"] == {}
        assert not [k for k in list_objects_local(srv) if f"/runs/{run}/" in k]
    # The run that kept the same bytes still has them, and all its rows.
    status, data = srv.request("GET", f"/api/v1/runs/{kept}/files/model.pt")
    assert status == 200 and data == shared
    assert run_async(_storage(srv.db_url, pks[kept]))["rows"] == before


def list_objects_local(srv: Any) -> set[str]:
    """The store's keys (``test_objects.list_objects`` for a server without ``.s3``)."""
    if not hasattr(srv, "s3"):
        srv.s3 = None
    return list_objects(srv)


def test_a_deleted_run_refuses_batches_and_its_id_never_comes_back(db_server: Any) -> None:
    srv = db_server
    run = new_id()
    put_run(srv, run)
    post(srv, run, steps_batch(1, 3))
    assert srv.request("DELETE", f"/api/v1/runs/{run}")[0] == 200
    status, body = post(srv, run, steps_batch(4, 3))
    assert status == 410 and body["error"]["code"] == "run_deleted"
    assert "was deleted" in body["error"]["message"]
    status, body = put_run(srv, run, attempt="a2", resume=True)
    assert status == 410 and body["error"]["code"] == "run_deleted"
    # Someone else cannot take the id either, and learns nothing but that it is taken.
    _, other_key = srv.new_user()
    assert put_run(srv, run, key=other_key)[0] == 403
    assert post(srv, run, steps_batch(1, 1), key=other_key)[0] == 404


def test_deleting_a_project_frees_its_name(db_server: Any) -> None:
    srv = db_server
    project = f"proj-{new_id('')[:8]}"
    runs = [_filled_run(srv, project, n=5) for _ in range(2)]
    pks = [run_async(_run_pk(srv.db_url, r)) for r in runs]
    status, body = srv.request("DELETE", f"/api/v1/projects/{srv.user}/{project}")
    assert status == 200 and sorted(body["runs"]) == sorted(runs)
    assert srv.request("GET", f"/api/v1/projects/{srv.user}/{project}/runs")[0] == 404
    assert project not in {p["name"] for p in get(srv, "/api/v1/projects")["projects"]}
    assert srv.request("DELETE", f"/api/v1/projects/{srv.user}/{project}")[0] == 404
    # The name is free at once: a new run makes a new, empty project.
    fresh = new_id()
    assert put_run(srv, fresh, project=project)[0] == 201
    listed = get(srv, f"/api/v1/projects/{srv.user}/{project}/runs")["runs"]
    assert [r["id"] for r in listed] == [fresh]
    for pk in pks:
        assert _wait_reclaimed(srv, pk)["rows"] == {}
    # The deleted project's internal name is not an address.
    assert srv.request("GET", f"/api/v1/projects/{srv.user}/~deleted-1/runs")[0] == 404


async def _runs_in_deleted_projects(db_url: str) -> int:
    from gradexp.server.storage import schema as s
    from gradexp.server.storage.db import Database

    db = Database(db_url)
    try:
        async with db.read() as conn:
            query = (
                select(func.count())
                .select_from(s.runs.join(s.projects, s.projects.c.id == s.runs.c.project_id))
                .where(s.projects.c.deleted_at.is_not(None))
            )
            return int((await conn.execute(query)).scalar_one())
    finally:
        await db.dispose()


def test_no_run_is_born_into_a_project_being_deleted(db_server: Any) -> None:
    """Runs starting in a project while it is deleted either go with it or start its
    successor of the same name: none is left, alive, in the deleted one. (Runs starting
    together share the project row's lock; the deletion takes it for itself.)"""
    import concurrent.futures

    srv = db_server
    for _ in range(3):
        project = f"race-{new_id('')[:8]}"
        assert put_run(srv, new_id(), project=project)[0] == 201
        runs = [new_id() for _ in range(16)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            created = [pool.submit(put_run, srv, r, project) for r in runs[:8]]
            deleted = pool.submit(srv.request, "DELETE", f"/api/v1/projects/{srv.user}/{project}")
            created += [pool.submit(put_run, srv, r, project) for r in runs[8:]]
            statuses = [f.result()[0] for f in created]
            assert deleted.result()[0] == 200
        assert set(statuses) <= {200, 201}, statuses
        assert run_async(_runs_in_deleted_projects(srv.db_url)) == 0
        # Every run that started is either gone with the project or in its successor.
        listed = srv.request("GET", f"/api/v1/projects/{srv.user}/{project}/runs")
        alive = {r["id"] for r in listed[1]["runs"]} if listed[0] == 200 else set()
        for run in runs:
            status = srv.request("GET", f"/api/v1/runs/{run}")[0]
            assert (status == 200) == (run in alive), (run, status)


@pytest.mark.slow
def test_deletion_on_s3_keeps_the_other_runs_objects(start_server: Any, s3_store: Any) -> None:
    srv = start_server(store_url=s3_store)
    srv.s3 = s3_store
    shared = b"shared" * 100
    gone, kept = (_filled_run(srv, "s3-del", shared) for _ in range(2))
    pk = run_async(_run_pk(srv.db_url, gone))
    assert [k for k in list_objects(srv) if f"/runs/{gone}/blobs/" in k]
    assert srv.request("DELETE", f"/api/v1/runs/{gone}")[0] == 200
    assert _wait_reclaimed(srv, pk)["rows"] == {}
    deadline = time.monotonic() + 30
    while [k for k in list_objects(srv) if f"/runs/{gone}/" in k]:  # a late export, if any
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert [k for k in list_objects(srv) if f"/runs/{kept}/blobs/" in k]
    assert srv.request("GET", f"/api/v1/runs/{kept}/files/model.pt") == (200, shared)


# --- a crash halfway -------------------------------------------------------------------------

CRASH_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from gradexp.server.domain.accounts.users import get_account
    from gradexp.server.domain.manage import delete_runs
    from gradexp.server.domain.reclaim import Reclaimer
    from gradexp.server.storage.db import Database
    from gradexp.server.domain.accounts.users import User
    from gradexp.server.storage.objects import ObjectStore

    db_url, store_url, user, run_id = sys.argv[1:5]
    chunks = 0

    def progress(table, n):
        global chunks
        chunks += 1
        if chunks == 2:  # the process dies here: no cleanup, the lease stays taken
            print("dying", table, n, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        db = Database(db_url)
        account = await get_account(db, user)
        await delete_runs(db, User(id=account.id, name=account.name), [run_id])
        reclaimer = Reclaimer(db, ObjectStore(store_url), chunk_rows=100, lease_seconds=3.0,
                              progress=progress)
        await reclaimer.run_pass()

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_a_crash_in_the_middle_of_reclaiming_is_finished_by_the_next_server(
    start_server: Any, db_url: str, tmp_path: Path
) -> None:
    srv = start_server(db_url=db_url)
    run = _filled_run(srv, "crash", n=1000)
    pk = run_async(_run_pk(srv.db_url, run))
    srv.stop()  # so that only the script reclaims, and dies doing it
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, srv.db_url, srv.store_url, srv.user, run],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.returncode == -9 and "dying" in proc.stdout, proc.stderr
    half = run_async(_storage(srv.db_url, pk))
    assert half["tomb"] is not None and half["tomb"][0] is None  # still owed
    assert half["rows"]  # rows left behind, in the tables not reached yet
    srv.start()
    # Nothing of it is visible while it waits, and nothing can write to it.
    assert srv.request("GET", f"/api/v1/runs/{run}")[0] == 404
    assert run not in {r["id"] for r in get(srv, f"/api/v1/projects/{srv.user}/crash/runs")["runs"]}
    assert post(srv, run, steps_batch(2000, 1))[0] == 410
    # The restarted server takes the dead process's lease once it runs out, and finishes.
    assert _wait_reclaimed(srv, pk)["rows"] == {}
    assert not [k for k in list_objects_local(srv) if f"/runs/{run}/" in k]


# --- gradexp server gc -----------------------------------------------------------------------


@pytest.mark.slow
def test_gc_reports_then_removes_what_nothing_else_reclaims(start_server: Any) -> None:
    srv = start_server()
    gone, kept = (_filled_run(srv, "gc", n=5) for _ in range(2))
    pk = run_async(_run_pk(srv.db_url, gone))
    # Their exports first: one that finishes after the deletion is the race staged below
    # (on a busy machine it could otherwise happen here by itself).
    deadline = time.monotonic() + 60
    while not all(
        any(k.endswith(f"/runs/{r}/history.parquet") for k in list_objects_local(srv))
        for r in (gone, kept)
    ):
        assert time.monotonic() < deadline, srv.log_tail()
        time.sleep(0.1)
    assert srv.request("DELETE", f"/api/v1/runs/{gone}")[0] == 200
    _wait_reclaimed(srv, pk)
    srv.stop()
    # An export that finished after its run was deleted (the race the reclaimer can lose).
    kept_objects = {k for k in list_objects_local(srv) if f"/runs/{kept}/" in k}
    project_dir = next(Path(srv.store_url).glob(f"projects/*/runs/{kept}")).parent
    late = project_dir / gone / "history.parquet"
    # Reclaiming left no object of the deleted run (an empty folder may remain).
    assert not [k for k in list_objects_local(srv) if f"/runs/{gone}/" in k]
    late.parent.mkdir(parents=True, exist_ok=True)
    late.write_bytes(b"x" * 2048)

    report = srv.admin("gc", "--dry-run")
    assert "would reclaim (dry run)" in report
    assert "orphan objects: 1 (2.0 KiB), of which Parquet exports: 1" in report, report
    assert late.exists()  # a dry run changes nothing
    done = srv.admin("gc")
    assert "1 orphan objects removed" in done, done
    assert not late.exists()
    assert {k for k in list_objects_local(srv) if f"/runs/{kept}/" in k} == kept_objects
    assert "orphan objects: 0 (0 B)" in srv.admin("gc", "--dry-run")
