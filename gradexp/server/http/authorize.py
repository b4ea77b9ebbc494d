"""``gradexp login``'s side of the server: the Authorize page and the token exchange.

``gradexp login`` (see ``gradexp/sdk/login.py``) opens ``/authorize`` with the port of its
loopback listener, a random ``state`` and a PKCE S256 challenge. Authorize redirects to
``http://127.0.0.1:PORT/callback`` (never anywhere else) with a one-time code, which the CLI
trades once, with its PKCE verifier, for a new API key at ``POST /api/v1/auth/token``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gradexp.protocol.wire import TOKEN_PATH
from gradexp.server.domain.accounts import codes
from gradexp.server.domain.accounts.keys import clean_client_name
from gradexp.server.domain.accounts.tokens import same_secret
from gradexp.server.http import auth_pages as pages
from gradexp.server.http.bodies import read_json_object
from gradexp.server.http.errors import json_response
from gradexp.server.http.sessions import (
    current_session,
    read_form,
    same_origin,
    see_other,
    sign_in_url,
)
from gradexp.server.http.state import app_state, public_url

routes = web.RouteTableDef()

STATE_RE = re.compile(r"[A-Za-z0-9._~-]{8,128}")


AUTHORIZE_FIELDS = ("port", "state", "code_challenge", "code_challenge_method", "client")


def _authorize_params(source: Any) -> dict[str, str] | None:
    """The login request's parameters, validated; None when any is missing or malformed."""
    fields = {k: str(source.get(k, "")) for k in AUTHORIZE_FIELDS}
    try:
        port = int(fields["port"])
    except ValueError:
        return None
    if not 1024 <= port <= 65535 or fields["code_challenge_method"] != "S256":
        return None
    if not STATE_RE.fullmatch(fields["state"]):
        return None
    if not codes.CHALLENGE_RE.fullmatch(fields["code_challenge"]):
        return None
    fields["port"] = str(port)
    fields["client"] = clean_client_name(fields["client"], "your machine")
    return fields


def _bad_authorize(request: web.Request) -> web.Response:
    return pages.message(
        "Incomplete login link",
        "This page needs the link that gradexp login opens. Run gradexp login again.",
        host=public_url(request),
        status=400,
    )


@routes.get("/authorize")
async def authorize_page(request: web.Request) -> web.StreamResponse:
    """The consent page ``gradexp login`` opens (sign-in first when needed)."""
    params = _authorize_params(request.query)
    if params is None:
        return _bad_authorize(request)
    session = await current_session(request)
    if session is None:
        return see_other(sign_in_url(request.path_qs))
    return pages.authorize(
        user=session.user.name,
        client=params["client"],
        fields=params,
        csrf=session.csrf,
        host=public_url(request),
        here=request.path_qs,
    )


@routes.post("/authorize")
async def authorize_submit(request: web.Request) -> web.StreamResponse:
    """Authorize (a one-time code to the CLI's loopback listener) or cancel."""
    form = await read_form(request)
    params = _authorize_params(form)
    if params is None:
        return _bad_authorize(request)
    session = await current_session(request)
    if session is None:
        query = urlencode({k: params[k] for k in AUTHORIZE_FIELDS})
        return see_other(sign_in_url(f"/authorize?{query}"))
    if not same_secret(str(form.get("csrf", "")), session.csrf) or not same_origin(request):
        return pages.message(
            "Not authorized",
            "This page was out of date. Run gradexp login again.",
            host=public_url(request),
            status=403,
        )
    redirect = codes.loopback_redirect(int(params["port"]))
    if form.get("decision") != "allow":
        return see_other(
            f"{redirect}?{urlencode({'error': 'access_denied', 'state': params['state']})}"
        )
    state = app_state(request)
    code = await codes.create_code(
        state.db,
        codes.PURPOSE_AUTHORIZE,
        state.settings.policy.code_ttl,
        user_id=session.user.id,
        challenge=params["code_challenge"],
        redirect_uri=redirect,
        client_name=params["client"],
    )
    return see_other(f"{redirect}?{urlencode({'code': code, 'state': params['state']})}")


DONE_MESSAGES = {
    "ok": ("You are logged in", "The command line is logged in. You can close this tab."),
    "denied": ("Login cancelled", "Nothing was authorized. You can close this tab."),
    "state": (
        "Login did not finish",
        "The answer did not match the login that was waiting. Run gradexp login again.",
    ),
    "expired": (
        "Login did not finish",
        "The login code expired or was already used. Run gradexp login again.",
    ),
    "error": ("Login did not finish", "Look at your terminal for what went wrong."),
}


@routes.get("/login/done")
async def login_done(request: web.Request) -> web.StreamResponse:
    """Where the CLI's listener sends the browser at the end (a fixed set of messages)."""
    result = request.query.get("result", "error")
    title, text = DONE_MESSAGES.get(result, DONE_MESSAGES["error"])
    session = await current_session(request)
    if result == "ok" and session is not None:
        text = f"The command line is logged in as {session.user.name}. You can close this tab."
    return pages.message(
        title,
        text,
        kind="ok" if result in ("ok", "denied") else "error",
        host=public_url(request),
        detail='Manage your machines\' keys on the <a href="/keys">API keys</a> page.'
        if result == "ok"
        else "",
    )


@routes.post(TOKEN_PATH)
async def token_exchange(request: web.Request) -> web.Response:
    """``{"code", "code_verifier", "redirect_uri"}`` -> a new API key (exactly once per code)."""
    body = await read_json_object(request)
    new = await codes.exchange_code(  # a refusal is Invalid ``invalid_grant``: a 400
        app_state(request).db,
        str(body.get("code") or ""),
        str(body.get("code_verifier") or ""),
        str(body.get("redirect_uri") or ""),
    )
    return json_response(
        {
            "api_key": new.api_key,
            "key": {"name": new.name, "prefix": new.prefix},
            "user": {"id": new.user.id, "name": new.user.name},
        },
        headers={"Cache-Control": "no-store"},
    )
