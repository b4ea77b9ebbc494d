"""The ingest path and heartbeats serve API keys from a per-process cache (a database read
saved per batch); a key revoked by any process must still be refused at once."""

from __future__ import annotations

from typing import Any

from .helpers import new_id, post, put_run, steps_batch


def test_a_key_revoked_by_another_process_is_refused_at_once(
    start_server: Any, db_url: str
) -> None:
    # (On PostgreSQL, batches and heartbeats of a run the process knows take one statement
    # that checks the key: ingest_pg.py.)
    srv = start_server(db_url=db_url)
    _user, key = srv.new_user()
    run = new_id()
    assert put_run(srv, run, key=key)[0] == 201
    for first in (1, 11, 21):  # the key is now in the server's cache
        assert post(srv, run, steps_batch(first, 10), key=key) == (200, {"acked_seq": first + 9})
    assert srv.request("POST", f"/api/v1/runs/{run}/heartbeat", key=key) == (200, {"acked_seq": 30})
    srv.admin("key", "revoke", key)  # another process, straight into the database
    status, body = post(srv, run, steps_batch(31, 10), key=key)
    assert status == 401 and "not valid" in body["error"]["message"]
    assert srv.request("POST", f"/api/v1/runs/{run}/heartbeat", key=key)[0] == 401
    # ... also for a run that does not exist (the key is refused before the run is looked up)
    assert post(srv, new_id(), steps_batch(1, 10), key=key)[0] == 401


def test_heartbeats_are_for_the_callers_own_runs(start_server: Any) -> None:
    srv = start_server()
    run = new_id()
    assert put_run(srv, run)[0] == 201
    _other, key = srv.new_user()
    status, body = srv.request("POST", f"/api/v1/runs/{run}/heartbeat", key=key)
    assert status == 404 and body["error"]["code"] == "run_not_found"
    assert srv.request("POST", f"/api/v1/runs/{new_id()}/heartbeat")[0] == 404
    assert srv.request("POST", f"/api/v1/runs/{run}/heartbeat") == (200, {"acked_seq": 0})


def test_the_key_id_cache_is_bounded_in_runs_and_in_ids() -> None:
    from gradexp.server.domain.ingest import KeyIdCache

    cache = KeyIdCache(max_runs=3, max_ids=10)
    for i in range(3):
        cache.add(f"r{i}", {"a": 1, "b": 2}, project_id=7)
    assert cache.get("r0") == {"a": 1, "b": 2} and cache.project("r0") == 7
    cache.add("r3", {"a": 1}, project_id=8)  # a fourth run: the least recently used goes
    assert cache.get("r1") == {} and cache.project("r1") is None
    assert cache.project("r3") == 8
    cache.add("r4", {f"k{i}": i for i in range(9)}, project_id=9)  # 9 ids: others go
    assert cache.get("r4") and cache.project("r4") == 9
    assert sum(1 for r in ("r0", "r2", "r3") if cache.project(r) is not None) <= 1
    cache.add("big", {f"k{i}": i for i in range(50)}, project_id=1)  # alone over the bound
    assert cache.project("big") == 1  # kept: the newest run is never evicted by itself
