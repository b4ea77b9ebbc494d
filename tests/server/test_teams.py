"""Teams, roles and sharing against a real server, on SQLite, PostgreSQL and MariaDB.

Every role in a team's project is tried on every action (a table), then removal from a
team on an open live stream, project visibility, and share links opened without any
credential (revoked, expired, and limited to the shared run).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from tests.helpers import make_team
from tests.server.helpers import (
    SSE,
    anonymous_get,
    get,
    new_id,
    post,
    put_run,
    steps_batch,
)


class Team:
    """A team on ``srv`` with one user per role (each with an API key) and an outsider."""

    def __init__(self, srv: Any) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"team-{tag}"
        self.keys: dict[str, str] = {}
        self.users: dict[str, str] = {}
        for role in ("admin", "member", "viewer", "outsider"):
            self.users[role], self.keys[role] = srv.new_user(f"{role}-{tag}")
        make_team(srv.db_url, self.name, {self.users[r]: r for r in ("admin", "member", "viewer")})


@pytest.fixture(scope="module")
def team(db_server: Any) -> Team:
    return Team(db_server)


@pytest.fixture(scope="module")
def team_run(db_server: Any, team: Team) -> str:
    """A run of the team's project ``T/shared``, made by the member, with 5 rows."""
    run_id = new_id("team")
    status, body = put_run(db_server, run_id, "shared", key=team.keys["member"], entity=team.name)
    assert status == 201, body
    assert body["run"]["owner"] == team.name
    assert post(db_server, run_id, steps_batch(1, 5), key=team.keys["member"])[0] == 200
    return run_id


ROLES = ("admin", "member", "viewer", "outsider")


def _read_project(srv: Any, team: Team, key: str, run_id: str) -> int:
    return int(srv.request("GET", f"/api/v1/projects/{team.name}/shared/runs", key=key)[0])


def _read_run(srv: Any, team: Team, key: str, run_id: str) -> int:
    return int(srv.request("GET", f"/api/v1/runs/{run_id}/history", key=key)[0])


def _export(srv: Any, team: Team, key: str, run_id: str) -> int:
    return int(srv.request("GET", f"/api/v1/runs/{run_id}/history.parquet", key=key)[0])


def _files(srv: Any, team: Team, key: str, run_id: str) -> int:
    return int(srv.request("GET", f"/api/v1/runs/{run_id}/files", key=key)[0])


def _live(srv: Any, team: Team, key: str, run_id: str) -> int:
    stream = SSE(srv, f"/api/v1/runs/{run_id}/events", key=key)
    stream.close()
    return int(stream.status)


def _create_run(srv: Any, team: Team, key: str, run_id: str) -> int:
    return int(put_run(srv, new_id("new"), "shared", key=key, entity=team.name)[0])


def _log_to_run(srv: Any, team: Team, key: str, run_id: str) -> int:
    # Sequence 6 onward: a refused batch leaves the run as it was for the next role.
    seq = len(get(srv, f"/api/v1/runs/{run_id}/history/rows", key=team.keys["admin"])["rows"]) + 1
    return int(post(srv, run_id, steps_batch(seq, 1), key=key)[0])


def _manage_members(srv: Any, team: Team, key: str, run_id: str) -> int:
    path = f"/api/v1/teams/{team.name}/members/{team.users['viewer']}"
    return int(srv.request("PUT", path, {"role": "viewer"}, key=key)[0])


def _share(srv: Any, team: Team, key: str, run_id: str) -> int:
    path = f"/api/v1/projects/{team.name}/shared/shares"
    return int(srv.request("POST", path, {"runs": [run_id]}, key=key)[0])


def _fresh_run(srv: Any, team: Team, by: str, project: str = "shared") -> str:
    run_id = new_id("own")
    status, body = put_run(srv, run_id, project, key=team.keys[by], entity=team.name)
    assert status == 201, body
    return run_id


def _edit_members_run(srv: Any, team: Team, key: str, run_id: str) -> int:
    return int(srv.request("PATCH", f"/api/v1/runs/{run_id}", {"notes": "seen"}, key=key)[0])


def _edit_admins_run(srv: Any, team: Team, key: str, run_id: str) -> int:
    other = _fresh_run(srv, team, "admin")
    return int(srv.request("PATCH", f"/api/v1/runs/{other}", {"tags": ["x"]}, key=key)[0])


def _delete_members_run(srv: Any, team: Team, key: str, run_id: str) -> int:
    mine = _fresh_run(srv, team, "member")
    return int(srv.request("DELETE", f"/api/v1/runs/{mine}", key=key)[0])


def _delete_admins_run(srv: Any, team: Team, key: str, run_id: str) -> int:
    other = _fresh_run(srv, team, "admin")
    return int(srv.request("DELETE", f"/api/v1/runs/{other}", key=key)[0])


def _delete_project(srv: Any, team: Team, key: str, run_id: str) -> int:
    project = f"gone-{uuid.uuid4().hex[:6]}"
    _fresh_run(srv, team, "member", project)
    return int(srv.request("DELETE", f"/api/v1/projects/{team.name}/{project}", key=key)[0])


# action -> the status each role gets: admin, member, viewer, outsider
ROLE_TABLE: dict[str, tuple[Any, tuple[int, int, int, int]]] = {
    "read the project's runs": (_read_project, (200, 200, 200, 404)),
    "read a run's history": (_read_run, (200, 200, 200, 404)),
    "export a run": (_export, (200, 200, 200, 404)),
    "list a run's files": (_files, (200, 200, 200, 404)),
    "open a live stream": (_live, (200, 200, 200, 404)),
    "create a run": (_create_run, (201, 201, 403, 404)),
    "log to a run": (_log_to_run, (200, 200, 404, 404)),
    "manage members": (_manage_members, (200, 403, 403, 404)),
    "share a run": (_share, (201, 403, 403, 404)),
    "edit a run the member made": (_edit_members_run, (200, 200, 403, 404)),
    "edit a run the admin made": (_edit_admins_run, (200, 403, 403, 404)),
    "delete a run the member made": (_delete_members_run, (200, 200, 403, 404)),
    "delete a run the admin made": (_delete_admins_run, (200, 403, 403, 404)),
    "delete the project": (_delete_project, (200, 403, 403, 404)),
}


@pytest.mark.parametrize("action", list(ROLE_TABLE))
def test_every_role_on_every_action(db_server: Any, team: Team, team_run: str, action: str) -> None:
    do, expected = ROLE_TABLE[action]
    got = tuple(do(db_server, team, team.keys[role], team_run) for role in ROLES)
    assert dict(zip(ROLES, got, strict=True)) == dict(zip(ROLES, expected, strict=True))


def test_policy_predicates() -> None:
    from gradexp.server.domain.access import (
        Role,
        can_delete_project,
        can_edit_run,
        can_log,
        can_manage_members,
        can_read,
    )

    assert [can_read(r) for r in Role] == [False, True, True, True, True]
    assert [can_log(r) for r in Role] == [False, False, True, True, True]
    assert [can_delete_project(r) for r in Role] == [False, False, False, True, True]
    assert [can_manage_members(r) for r in Role] == [False, False, False, True, True]
    # A member edits the runs they created, an admin any run, a viewer none.
    assert can_edit_run(Role.MEMBER, 7, 7) and not can_edit_run(Role.MEMBER, 8, 7)
    assert can_edit_run(Role.ADMIN, 8, 7) and not can_edit_run(Role.VIEWER, 7, 7)


def test_projects_list_own_and_teams(db_server: Any, team: Team, team_run: str) -> None:
    for role in ("admin", "member", "viewer"):
        listed = get(db_server, "/api/v1/projects", key=team.keys[role])["projects"]
        mine = [p for p in listed if p["owner"] == team.name and p["name"] == "shared"]
        assert len(mine) == 1 and mine[0]["role"] == role
        assert mine[0]["run_count"] >= 1
    outsider = get(db_server, "/api/v1/projects", key=team.keys["outsider"])["projects"]
    assert all(p["owner"] != team.name for p in outsider)
    viewer = get(db_server, "/api/v1/viewer", key=team.keys["viewer"])
    assert {"name": team.name, "role": "viewer"} in viewer["teams"]
    run = get(db_server, f"/api/v1/runs/{team_run}", key=team.keys["member"])
    assert run["owner"] == team.name and run["role"] == "member"


def test_refusals_say_what_to_do(db_server: Any, team: Team) -> None:
    status, body = put_run(db_server, new_id(), "shared", key=team.keys["viewer"], entity=team.name)
    assert status == 403 and "only members and admins log runs" in body["error"]["message"]
    status, body = put_run(
        db_server, new_id(), "shared", key=team.keys["outsider"], entity=team.name
    )
    assert status == 404 and "ask a team admin to add you" in body["error"]["message"]


def test_removal_ends_an_open_stream_at_once(db_server: Any) -> None:
    team = Team(db_server)
    run_id = new_id("rm")
    assert put_run(db_server, run_id, "p", key=team.keys["admin"], entity=team.name)[0] == 201
    stream = SSE(db_server, f"/api/v1/runs/{run_id}/events", key=team.keys["member"])
    assert stream.status == 200
    post(db_server, run_id, steps_batch(1, 3), key=team.keys["admin"])
    stream.next(event="rows")  # the stream is live
    path = f"/api/v1/teams/{team.name}/members/{team.users['member']}"
    assert db_server.request("DELETE", path, key=team.keys["admin"])[0] == 200
    end = stream.next(event="end", timeout=10)
    assert end["data"]["reason"] == "access_removed"
    assert stream.closed.wait(10)
    status, _ = db_server.request("GET", f"/api/v1/runs/{run_id}", key=team.keys["member"])
    assert status == 404


def test_removal_by_another_process_ends_the_stream(db_server: Any) -> None:
    team = Team(db_server)
    run_id = new_id("rm2")
    assert put_run(db_server, run_id, "p", key=team.keys["admin"], entity=team.name)[0] == 201
    stream = SSE(db_server, f"/api/v1/projects/{team.name}/p/events", key=team.keys["viewer"])
    assert stream.status == 200
    stream.wait_ready()
    db_server.admin("team", "remove", team.name, team.users["viewer"])  # the CLI's process
    end = stream.next(event="end", timeout=20)  # the hub's re-check (every 2 s)
    assert end["data"]["reason"] == "access_removed"


def test_visibility_signed_in_users_read_only(db_server: Any) -> None:
    owner, owner_key = db_server.new_user()
    _other, other_key = db_server.new_user()
    run_id = new_id("vis")
    assert put_run(db_server, run_id, "open", key=owner_key)[0] == 201
    path = f"/api/v1/projects/{owner}/open"
    assert db_server.request("GET", path + "/runs", key=other_key)[0] == 404
    status, _ = db_server.request(
        "PUT", path + "/visibility", {"visibility": "signed_in"}, key=other_key
    )
    assert status == 404  # out of reach: as if it did not exist
    assert (
        db_server.request("PUT", path + "/visibility", {"visibility": "signed_in"}, key=owner_key)[
            0
        ]
        == 200
    )
    assert db_server.request("GET", path + "/runs", key=other_key)[0] == 200
    assert db_server.request("GET", f"/api/v1/runs/{run_id}/history", key=other_key)[0] == 200
    listed = get(db_server, "/api/v1/projects", key=other_key)["projects"]
    assert {"owner": owner, "name": "open", "role": "viewer"}.items() <= next(
        p for p in listed if p["owner"] == owner
    ).items()
    # Read-only: logging to it is refused as for anyone outside.
    assert post(db_server, run_id, steps_batch(1, 1), key=other_key)[0] == 404
    assert (
        db_server.request("PUT", path + "/visibility", {"visibility": "private"}, key=owner_key)[0]
        == 200
    )
    assert db_server.request("GET", f"/api/v1/runs/{run_id}", key=other_key)[0] == 404


def test_share_link_opens_one_run_without_credentials(db_server: Any) -> None:
    owner, key = db_server.new_user()
    shared, other = new_id("sh"), new_id("sh")
    for run_id in (shared, other):
        assert put_run(db_server, run_id, "demo", key=key)[0] == 201
        post(db_server, run_id, steps_batch(1, 4), key=key)
    status, link = db_server.request(
        "POST", f"/api/v1/projects/{owner}/demo/shares", {"runs": [shared]}, key=key
    )
    assert status == 201 and link["url"].endswith("/s/" + link["token"])
    token = link["token"]
    assert len(token) > 40
    q = f"?share={token}"
    assert anonymous_get(db_server, f"/api/v1/share{q}") == (200, {"runs": [shared]})
    status, run = anonymous_get(db_server, f"/api/v1/runs/{shared}{q}")
    assert status == 200 and run["id"] == shared and run["role"] == "viewer"
    status, body = anonymous_get(db_server, f"/api/v1/runs/{shared}/history/rows{q}")
    assert status == 200 and len(body["rows"]) == 4
    # That run and nothing else: not its neighbour, not the project's listing.
    assert anonymous_get(db_server, f"/api/v1/runs/{other}{q}")[0] == 404
    assert anonymous_get(db_server, f"/api/v1/projects/{owner}/demo/runs{q}")[0] == 404
    assert anonymous_get(db_server, f"/api/v1/projects{q}")[0] == 200  # (an empty list)
    assert anonymous_get(db_server, f"/api/v1/projects{q}")[1]["projects"] == []
    # Live: the shared run's stream opens without an account and follows new rows.
    stream = SSE(db_server, f"/api/v1/runs/{shared}/events{q}", cookie="x=1")
    assert stream.status == 200
    post(db_server, shared, steps_batch(5, 2), key=key)
    seen: list[int] = []
    while 5 not in seen:
        seen += [r["_step"] for r in stream.next(event="rows")["data"]["rows"]]
    # The page itself opens without signing in.
    with urllib.request.urlopen(f"{db_server.url}/s/{token}", timeout=30) as page:
        assert page.status == 200 and b"app.js" in page.read()
    # Revoked: the open stream ends, and the link opens nothing any more.
    listed = get(db_server, f"/api/v1/projects/{owner}/demo/shares", key=key)["shares"]
    assert [x["runs"] for x in listed] == [[shared]] and "token" not in listed[0]
    assert (
        db_server.request("DELETE", f"/api/v1/projects/{owner}/demo/shares/{link['id']}", key=key)[
            0
        ]
        == 200
    )
    assert stream.next(event="end", timeout=10)["data"]["reason"] == "access_removed"
    status, body = anonymous_get(db_server, f"/api/v1/runs/{shared}{q}")
    assert status == 404 and body["error"]["code"] == "share_not_found"


def test_share_link_expires_and_never_writes(db_server: Any) -> None:
    owner, key = db_server.new_user()
    run_id = new_id("exp")
    assert put_run(db_server, run_id, "demo", key=key)[0] == 201
    status, link = db_server.request(
        "POST",
        f"/api/v1/projects/{owner}/demo/shares",
        {"runs": [run_id], "expires_in": 1.5},
        key=key,
    )
    assert status == 201
    q = f"?share={link['token']}"
    assert anonymous_get(db_server, f"/api/v1/runs/{run_id}{q}")[0] == 200
    req = urllib.request.Request(
        f"{db_server.url}/api/v1/runs/{run_id}/records{q}", data=b"{}", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30)
    assert refused.value.code == 403
    deadline = time.monotonic() + 30
    while anonymous_get(db_server, f"/api/v1/runs/{run_id}{q}")[0] == 200:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert anonymous_get(db_server, f"/api/v1/runs/{run_id}{q}")[0] == 404
    # A made-up token opens nothing either.
    fake = "?share=gxs_" + "A" * 43
    assert anonymous_get(db_server, f"/api/v1/runs/{run_id}{fake}")[0] == 404


@pytest.mark.slow
def test_team_commands(db_server: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    user, _key = db_server.new_user(f"cli-{tag}")
    name = f"cli-team-{tag}"
    assert f"created team {name}" in db_server.admin("team", "create", name)
    assert "member" in db_server.admin("team", "add", name, user)
    assert "changed" in db_server.admin("team", "add", name, user, "--role", "admin")
    assert f"{name}\t{user} (admin)" in db_server.admin("team", "list")
    # Teams and users share names; a team is not an account.
    with pytest.raises(RuntimeError, match="taken by a user or team"):
        db_server.admin("team", "create", user)
    with pytest.raises(RuntimeError, match="no user"):
        db_server.admin("key", "create", name)
    assert "removed" in db_server.admin("team", "remove", name, user)
    assert f"{name}\tno members" in db_server.admin("team", "list")
