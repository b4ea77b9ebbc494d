"""Teams, members, project visibility and share links over HTTP (docs/protocol.md, "Teams
and sharing"). Every decision is the access resolver's (``domain/access.py``): a team or
project out of the caller's reach answers 404, a role too low for the action 403."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain import shares, teams
from gradexp.server.domain.access import Role, can_manage_members, can_share
from gradexp.server.domain.errors import Forbidden, Invalid
from gradexp.server.domain.projects import project_access
from gradexp.server.http.bodies import read_json_object
from gradexp.server.http.errors import json_response
from gradexp.server.http.sessions import USER
from gradexp.server.http.state import app_state, public_url

routes = web.RouteTableDef()

_TEAM = API_PREFIX + "/teams/{team}"
_PROJECT = API_PREFIX + "/projects/{owner}/{project}"


@routes.get(API_PREFIX + "/teams")
async def get_teams(request: web.Request) -> web.Response:
    """The caller's teams, with their role in each."""
    async with app_state(request).db.read() as conn:
        found = await teams.user_teams(conn, request[USER])
    return json_response({"teams": found})


@routes.get(_TEAM)
async def get_team(request: web.Request) -> web.Response:
    """One of the caller's teams: the caller's role and the members."""
    name = request.match_info["team"]
    async with app_state(request).db.read() as conn:
        team_id, role = await teams.team_role(conn, request[USER], name)
        members = await teams.members(conn, team_id)
    return json_response({"name": name, "role": role.label, "members": members})


async def _admin_of(request: web.Request) -> str:
    """The path's team, when the caller may manage its members (else 404 or 403)."""
    name = request.match_info["team"]
    async with app_state(request).db.read() as conn:
        _team_id, role = await teams.team_role(conn, request[USER], name)
    if not can_manage_members(role):
        raise Forbidden(f"only admins of {name} manage its members", code="not_team_admin")
    return name


@routes.put(_TEAM + "/members/{user}")
async def put_member(request: web.Request) -> web.Response:
    """Add an existing user to the team, or change their role: ``{"role": "member"}``."""
    team = await _admin_of(request)
    body = await read_json_object(request)
    state = app_state(request)
    added = await teams.set_member(
        state.db,
        team,
        request.match_info["user"],
        str(body.get("role") or "member"),
        revocations=state.revocations,
        keep_an_admin=True,
    )
    return json_response({"added": added}, status=201 if added else 200)


@routes.delete(_TEAM + "/members/{user}")
async def delete_member(request: web.Request) -> web.Response:
    """Remove a member (their open pages of the team's projects end at once)."""
    team = await _admin_of(request)
    state = app_state(request)
    await teams.remove_member(
        state.db,
        team,
        request.match_info["user"],
        revocations=state.revocations,
        keep_an_admin=True,
    )
    return json_response({"removed": True})


async def _project(request: web.Request, *, sharing: bool = False) -> tuple[int, Role]:
    async with app_state(request).db.read() as conn:
        pid, role = await project_access(
            conn, request[USER], request.match_info["owner"], request.match_info["project"]
        )
    if sharing and not can_share(role):
        raise Forbidden(
            "only the project's owner or its team's admins change its visibility and sharing",
            code="cannot_share",
        )
    return pid, role


@routes.get(_PROJECT)
async def get_project(request: web.Request) -> web.Response:
    """The project as the caller sees it: owner, visibility and the caller's role."""
    _pid, role = await _project(request)
    async with app_state(request).db.read() as conn:
        listing = await _project_entry(conn, request)
    return json_response({**listing, "role": role.label})


async def _project_entry(conn: Any, request: web.Request) -> dict[str, Any]:
    from gradexp.server.domain.projects import list_projects

    owner, name = request.match_info["owner"], request.match_info["project"]
    for entry in await list_projects(conn, request[USER]):
        if entry["owner"] == owner and entry["name"] == name:
            return dict(entry)
    return {"owner": owner, "name": name}


@routes.put(_PROJECT + "/visibility")
async def put_visibility(request: web.Request) -> web.Response:
    """``{"visibility": "private" | "signed_in"}`` (owner or team admin)."""
    pid, _role = await _project(request, sharing=True)
    body = await read_json_object(request)
    state = app_state(request)
    visibility = str(body.get("visibility") or "")
    await shares.set_visibility(state.db, pid, visibility, revocations=state.revocations)
    return json_response({"visibility": visibility})


@routes.get(_PROJECT + "/shares")
async def get_shares(request: web.Request) -> web.Response:
    """The project's share links (owner or team admin)."""
    pid, _role = await _project(request, sharing=True)
    async with app_state(request).db.read() as conn:
        links = await shares.list_shares(conn, pid)
    return json_response({"shares": links})


@routes.post(_PROJECT + "/shares")
async def post_share(request: web.Request) -> web.Response:
    """A new read-only link: ``{"runs": [ids], "expires_in": seconds | null}``; the answer
    holds its URL, with the token, shown this once."""
    pid, _role = await _project(request, sharing=True)
    body = await read_json_object(request)
    runs = body.get("runs")
    if type(runs) is not list or not all(type(r) is str for r in runs):
        raise Invalid("runs must be a list of run ids", code="bad_share")
    expires_in = body.get("expires_in")
    if expires_in is not None and type(expires_in) not in (int, float):
        raise Invalid("expires_in must be a number of seconds or null", code="bad_share")
    token, link = await shares.create_share(
        app_state(request).db, request[USER], pid, runs, expires_in
    )
    url = f"{public_url(request)}/s/{token}"
    return json_response({**link, "token": token, "url": url}, status=201)


@routes.delete(_PROJECT + r"/shares/{share_id:\d{1,18}}")
async def delete_share(request: web.Request) -> web.Response:
    """Revoke a share link: it opens nothing from now on, open pages included."""
    pid, _role = await _project(request, sharing=True)
    state = app_state(request)
    await shares.revoke_share(
        state.db, pid, int(request.match_info["share_id"]), revocations=state.revocations
    )
    return json_response({"revoked": True})


@routes.get(API_PREFIX + "/share")
async def get_share(request: web.Request) -> web.Response:
    """What the share link in ``?share=`` opens: its runs (the shared page's first read)."""
    view = request[USER].share
    if view is None:
        raise Invalid("open this with a share link's token: ?share=TOKEN", code="bad_request")
    return json_response({"runs": sorted(view.run_ids)})
