"""Logging to a team's project from the SDK, reading it with ``Api``, and the refusals a
viewer or an outsider gets: at ``init`` online, at ``gradexp sync`` offline (nothing lost)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

import gradexp
from gradexp.errors import GradexpError
from tests.helpers import make_team, run_async

from .conftest import gradexp_cli


@pytest.fixture
def team(online: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A team with a member (whose key the SDK uses) and a viewer."""
    tag = uuid.uuid4().hex[:6]
    name = f"lab-{tag}"
    member, member_key = online.new_user(f"m-{tag}")
    viewer, viewer_key = online.new_user(f"v-{tag}")
    make_team(online.db_url, name, {member: "member", viewer: "viewer"})
    monkeypatch.setenv("GRADEXP_API_KEY", member_key)
    return {
        "name": name,
        "member": member,
        "viewer": viewer,
        "viewer_key": viewer_key,
        "member_key": member_key,
        "db_url": online.db_url,
    }


def test_member_logs_to_team_project_and_reads_it_back(
    team: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = team["name"]
    run = gradexp.init(project=f"{name}/vision")
    for i in range(5):
        gradexp.log({"loss": 1 / (i + 1)})
    gradexp.finish()
    monkeypatch.setenv("GRADEXP_ENTITY", name)  # the same team, named by the environment
    second = gradexp.init(project="vision")
    gradexp.log({"loss": 0.1})
    gradexp.finish()
    third = gradexp.init(project="vision", entity=name)
    gradexp.finish()

    api = gradexp.Api()
    runs = api.runs(f"{name}/vision")
    assert {r.id for r in runs} == {run.id, second.id, third.id}
    assert all(r.owner == name for r in runs)
    assert [r["loss"] for r in api.run(run.id).history()] == [1 / (i + 1) for i in range(5)]
    listed = [(p["owner"], p["name"], p["role"]) for p in api.projects()]
    assert (name, "vision", "member") in listed
    # The member's own namespace is untouched.
    assert all(p["owner"] in (name, team["member"]) for p in api.projects())


def test_viewer_is_refused_at_init(team: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADEXP_API_KEY", team["viewer_key"])
    with pytest.raises(GradexpError, match=r"viewer of team .*only members and admins log runs"):
        gradexp.init(project=f"{team['name']}/vision")
    with pytest.raises(GradexpError, match="is not in a team 'nobody-here'"):
        gradexp.init(project="vision", entity="nobody-here")
    assert gradexp.run is None


def test_offline_run_of_a_viewer_is_refused_at_sync_and_kept(
    team: dict[str, Any], monkeypatch: pytest.MonkeyPatch, gx_env: Path
) -> None:
    monkeypatch.setenv("GRADEXP_API_KEY", team["viewer_key"])
    run = gradexp.init(project=f"{team['name']}/vision", mode="offline")
    gradexp.log({"loss": 1.0})
    gradexp.finish()
    result = gradexp_cli("sync")
    assert "only members and admins log runs" in result.stdout + result.stderr
    assert run.dir is not None and Path(run.dir).is_dir()  # nothing lost
    assert "1 not synced" in gradexp_cli("status").stdout
    # Made a member, the same run file syncs.
    run_async(_promote(team))
    again = gradexp_cli("sync")
    assert again.returncode == 0, again.stderr
    monkeypatch.setenv("GRADEXP_API_KEY", team["member_key"])
    assert gradexp.Api().run(run.id).owner == team["name"]


async def _promote(team: dict[str, Any]) -> None:
    from gradexp.server.domain.teams import set_member
    from gradexp.server.storage.db import Database

    db = Database(team["db_url"])
    try:
        await set_member(db, team["name"], team["viewer"], "member")
    finally:
        await db.dispose()
