"""Authentication and authorization across two users, on every database."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

import pytest

from .helpers import GZIP, batch, get, gz, history, new_id, post, put_run, rows, run_async


@pytest.fixture(scope="module")
def bob(db_server):
    """A second user: (name, key)."""
    return db_server.new_user(f"bob-{new_id('')[:6]}")


@pytest.fixture
def ada_run(db_server):
    run_id = new_id()
    assert put_run(db_server, run_id, project="secret")[0] == 201
    assert post(db_server, run_id, batch([history(1, 0, {"loss": 1.0})]))[0] == 200
    blob = b"weights"
    sha = hashlib.sha256(blob).hexdigest()
    assert db_server.request("PUT", f"/api/v1/runs/{run_id}/blobs/{sha}", raw=blob)[0] == 201
    return run_id, sha


def test_health_needs_no_key(db_server):
    status, body = db_server.request("GET", "/healthz", headers={"Authorization": ""})
    assert status == 200 and body["ok"] is True


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer gx_short", "Basic dXNlcjpwYXNz", "Bearer gx_" + "A" * 40],
    ids=["missing", "empty", "malformed", "basic", "unknown"],
)
def test_bad_or_missing_key(db_server, ada_run, header):
    run_id, _ = ada_run
    headers = {"Authorization": header} if header is not None else {}

    for method, path, data in [
        ("GET", "/api/v1/viewer", None),
        ("GET", "/api/v1/projects", None),
        ("GET", f"/api/v1/runs/{run_id}", None),
        ("POST", f"/api/v1/runs/{run_id}/records", gz(batch([history(2, 1, {"x": 1})]))),
    ]:
        req = urllib.request.Request(
            db_server.url + path, data=data, method=method, headers={**GZIP, **headers}
        )
        if header is None:
            req.remove_header("Authorization")
        try:
            urllib.request.urlopen(req, timeout=30)
            pytest.fail(f"{method} {path} was accepted")
        except urllib.error.HTTPError as err:
            assert err.code == 401
            body = err.read()
            assert b'"unauthorized"' in body
    assert [r["_seq"] for r in rows(db_server, run_id)] == [1]


def test_revoked_key(db_server):
    _name, key = db_server.new_user(f"eve-{new_id('')[:6]}")
    assert db_server.request("GET", "/api/v1/viewer", key=key)[0] == 200
    out = db_server.admin("key", "revoke", key)
    assert "revoked 1 key" in out
    status, body = db_server.request("GET", "/api/v1/viewer", key=key)
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def _add_key_with_prefix(db_url: str, user: str, prefix: str) -> str:
    """Give ``user`` a key that starts like another one (prefixes are 7 characters, so
    keys of different users collide by chance): stored as the server stores keys."""
    import secrets
    import time

    from sqlalchemy import insert

    from gradexp.server.domain.accounts.keys import hash_key, key_prefix
    from gradexp.server.domain.accounts.users import get_account
    from gradexp.server.storage import schema as s
    from gradexp.server.storage.db import Database

    key = prefix + secrets.token_urlsafe(40)[: 43 - len(prefix)].replace("-", "a")
    db = Database(db_url)
    try:
        account = await get_account(db, user)

        def write(conn):
            conn.execute(
                insert(s.api_keys).values(
                    user_id=account.id,
                    name="twin",
                    prefix=key_prefix(key),
                    key_hash=hash_key(key),
                    created_at=time.time(),
                )
            )

        await db.write(write)
    finally:
        await db.dispose()
    return key


def test_a_prefix_shared_by_two_users_keys_revokes_nothing(db_server):
    ada, ada_key = db_server.new_user(f"ada-{new_id('')[:6]}")
    bob, _ = db_server.new_user(f"bob-{new_id('')[:6]}")
    bob_key = run_async(_add_key_with_prefix(db_server.db_url, bob, ada_key[:7]))
    assert bob_key[:7] == ada_key[:7] and bob_key != ada_key
    for key in (ada_key, bob_key):
        assert db_server.request("GET", "/api/v1/viewer", key=key)[0] == 200
    with pytest.raises(RuntimeError) as refused:
        db_server.admin("key", "revoke", ada_key[:7])
    message = str(refused.value)
    assert "matches 2 active keys" in message and "by its id" in message
    assert ada in message and bob in message and "Traceback" not in message
    for key in (ada_key, bob_key):  # nothing was revoked
        assert db_server.request("GET", "/api/v1/viewer", key=key)[0] == 200
    # Precise: the owner narrows the prefix to one key; an id names one key.
    out = db_server.admin("key", "revoke", ada_key[:7], "--user", bob)
    assert "revoked 1 key" in out and bob in out and bob_key not in out
    assert db_server.request("GET", "/api/v1/viewer", key=bob_key)[0] == 401
    assert db_server.request("GET", "/api/v1/viewer", key=ada_key)[0] == 200
    listed = db_server.admin("key", "list", ada)
    key_id = listed.split("\tid ")[-1].strip()
    assert key_id.isdigit(), listed
    assert "revoked 1 key" in db_server.admin("key", "revoke", key_id)
    assert db_server.request("GET", "/api/v1/viewer", key=ada_key)[0] == 401


def test_another_users_run_looks_missing(db_server, ada_run, bob):
    run_id, sha = ada_run
    _, key = bob
    missing = new_id()
    for path in [
        f"/api/v1/runs/{run_id}",
        f"/api/v1/runs/{run_id}/keys",
        f"/api/v1/runs/{run_id}/history?keys=loss",
        f"/api/v1/runs/{run_id}/history/rows",
        f"/api/v1/runs/{run_id}/files",
        f"/api/v1/runs/{run_id}/history.parquet",
        f"/api/v1/runs/{run_id}/blobs/{sha}",
        f"/api/v1/runs/{run_id}/events",
    ]:
        status, body = db_server.request("GET", path, key=key)
        status_missing, body_missing = db_server.request(
            "GET", path.replace(run_id, missing), key=key
        )
        assert (status, status_missing) == (404, 404), path
        # The same answer as for a run that does not exist (only the id differs).
        assert body["error"]["code"] == body_missing["error"]["code"] == "run_not_found"
        assert body["error"]["message"].replace(run_id, "X") == body_missing["error"][
            "message"
        ].replace(missing, "X")
    # Writes: ingest and blobs answer 404 too; nothing is written.
    status, body = post(db_server, run_id, batch([history(2, 1, {"loss": 0.0})]), key=key)
    assert status == 404 and body["error"]["code"] == "run_not_found"
    status, _ = db_server.request(
        "PUT", f"/api/v1/runs/{run_id}/blobs/{'c' * 64}", raw=b"x", key=key
    )
    assert status == 404
    status, _ = db_server.request("HEAD", f"/api/v1/runs/{run_id}/blobs/{sha}", key=key)
    assert status == 404
    # Creating a run under an id another user holds: 403, and the run is unchanged.
    status, body = put_run(
        db_server, run_id, project="secret", key=key, attempt="steal", resume=True
    )
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert [r["_seq"] for r in rows(db_server, run_id)] == [1]
    assert get(db_server, f"/api/v1/runs/{run_id}")["acked_seq"] == 1


def test_projects_are_per_user(db_server, ada_run, bob):
    name, key = bob
    ada_projects = {p["name"] for p in get(db_server, "/api/v1/projects")["projects"]}
    assert "secret" in ada_projects
    assert "secret" not in {
        p["name"] for p in get(db_server, "/api/v1/projects", key=key)["projects"]
    }
    status, body = db_server.request(
        "GET", f"/api/v1/projects/{db_server.user}/secret/runs", key=key
    )
    assert status == 404 and body["error"]["code"] == "project_not_found"
    status, _ = db_server.request(
        "GET", f"/api/v1/projects/{db_server.user}/secret/events", key=key
    )
    assert status == 404
    # Bob may have a project of the same name: a different project.
    bob_run = new_id()
    assert put_run(db_server, bob_run, project="secret", key=key)[0] == 201
    runs = get(db_server, f"/api/v1/projects/{name}/secret/runs", key=key)["runs"]
    assert [r["id"] for r in runs] == [bob_run]
    ada_runs = [
        r["id"] for r in get(db_server, f"/api/v1/projects/{db_server.user}/secret/runs")["runs"]
    ]
    assert ada_runs and bob_run not in ada_runs
    assert get(db_server, "/api/v1/viewer", key=key)["user"]["name"] == name
