"""The ingest path and heartbeats serve API keys from a per-process cache (a database read
saved per batch); a key revoked by any process must still be refused at once."""

from __future__ import annotations

from typing import Any

from .helpers import new_id, post, put_run, steps_batch


def test_a_key_revoked_by_another_process_is_refused_at_once(start_server: Any) -> None:
    srv = start_server()
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
