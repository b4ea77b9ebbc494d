"""API keys as their owner manages them: the keys page (a session and its forms) and the
keys API (a bearer key, or a session cookie with ``X-CSRF-Token``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain.accounts.keys import create_user_key, list_user_keys, revoke_user_key
from gradexp.server.domain.accounts.sessions import Session
from gradexp.server.domain.accounts.tokens import same_secret
from gradexp.server.http import auth_pages as pages
from gradexp.server.http.bodies import read_json_object
from gradexp.server.http.errors import HttpError, json_response
from gradexp.server.http.sessions import (
    USER,
    current_session,
    read_form,
    same_origin,
    see_other,
    sign_in_url,
)
from gradexp.server.http.state import app_state, public_url

routes = web.RouteTableDef()


async def _keys_page(
    request: web.Request,
    session: Session,
    *,
    new_key: tuple[str, str] | None = None,
    flash: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    rows = await list_user_keys(app_state(request).db, session.user.id)
    if flash is None and "revoked" in request.query:
        revoked = next((r for r in rows if str(r["id"]) == request.query["revoked"]), None)
        if revoked is not None:
            flash = f"Key “{revoked['name']}” revoked. Scripts using it are refused from now on."
    return pages.keys(
        user=session.user.name,
        csrf=session.csrf,
        rows=rows,
        host=public_url(request),
        new_key=new_key,
        flash=flash,
        error=error,
        welcome="welcome" in request.query,
        status=status,
    )


async def _page_session(request: web.Request) -> Session | web.Response:
    session = await current_session(request)
    if session is None:
        return see_other(sign_in_url(request.path_qs if request.method == "GET" else "/keys"))
    return session


@routes.get("/keys")
async def keys_page(request: web.Request) -> web.StreamResponse:
    """The signed-in user's API keys."""
    session = await _page_session(request)
    if isinstance(session, web.Response):
        return session
    return await _keys_page(request, session)


@routes.post("/keys")
async def keys_create(request: web.Request) -> web.StreamResponse:
    """Create a key and show it once."""
    session = await _page_session(request)
    if isinstance(session, web.Response):
        return session
    form = await read_form(request)
    if not same_secret(str(form.get("csrf", "")), session.csrf) or not same_origin(request):
        return await _keys_page(
            request, session, error="This page was out of date; nothing was created.", status=403
        )
    name = str(form.get("name", "")).strip()
    if not name:
        return await _keys_page(request, session, error="Give the key a name.", status=400)
    secret, entry = await create_user_key(app_state(request).db, session.user.id, name)
    return await _keys_page(request, session, new_key=(entry["name"], secret))


@routes.post(r"/keys/{key_id:\d{1,18}}/revoke")
async def keys_revoke(request: web.Request) -> web.StreamResponse:
    """Revoke a key: refused at once by every server process (it is in the database)."""
    session = await _page_session(request)
    if isinstance(session, web.Response):
        return session
    form = await read_form(request)
    if not same_secret(str(form.get("csrf", "")), session.csrf) or not same_origin(request):
        return await _keys_page(
            request, session, error="This page was out of date; nothing was revoked.", status=403
        )
    key_id = int(request.match_info["key_id"])
    state = app_state(request)
    if (
        await revoke_user_key(state.db, session.user.id, key_id, revocations=state.revocations)
        is None
    ):
        return await _keys_page(request, session, error="No such key.", status=404)
    return see_other(f"/keys?revoked={key_id}")


# --- API keys: the API (bearer key, or session cookie + X-CSRF-Token) ------------------------


def _key_json(row: dict[str, Any], current: int | None = None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "created_at": row["created_at"],
        "last_used_at": row["last_used_at"],
        "revoked_at": row["revoked_at"],
        "current": row["id"] == current,
    }


@routes.get(API_PREFIX + "/api-keys")
async def api_keys_list(request: web.Request) -> web.Response:
    """The caller's API keys, newest first (no secrets)."""
    user = request[USER]
    rows = await list_user_keys(app_state(request).db, user.id)
    return json_response({"keys": [_key_json(r, user.key_id) for r in rows]})


@routes.post(API_PREFIX + "/api-keys")
async def api_keys_create(request: web.Request) -> web.Response:
    """``{"name": "laptop"}`` -> ``201 {"api_key": "gx_...", "key": {...}}`` (shown once)."""
    user = request[USER]
    body = await read_json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HttpError(400, "bad_request", 'give the key a name: {"name": "laptop"}')
    secret, entry = await create_user_key(app_state(request).db, user.id, name)
    return json_response(
        {"api_key": secret, "key": _key_json(entry)},
        status=201,
        headers={"Cache-Control": "no-store"},
    )


@routes.delete(API_PREFIX + r"/api-keys/{key_id:\d{1,18}}")
async def api_keys_revoke(request: web.Request) -> web.Response:
    """Revoke one of the caller's keys (it may be the key making this request)."""
    user = request[USER]
    state = app_state(request)
    key_id = int(request.match_info["key_id"])
    row = await revoke_user_key(state.db, user.id, key_id, revocations=state.revocations)
    if row is None:
        raise HttpError(404, "not_found", "no such API key among yours")
    return json_response({"key": _key_json(row, user.key_id)})
