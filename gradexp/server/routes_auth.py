"""Browser sign-in and what hangs off it: sessions, first-run setup, ``gradexp login``'s
authorize flow and token exchange, and the API-keys page and API.

How a request is recognised (``gradexp.server.auth.authenticate`` calls :func:`session_user`):

- ``Authorization: Bearer <key>``: scripts and the SDK.
- The ``gradexp_session`` cookie (HttpOnly, SameSite=Lax, Secure over https): the browser.
  It is accepted for GET/HEAD; any other method must also carry the session's CSRF token in
  the ``X-CSRF-Token`` header (the web UI reads it from the ``gradexp_csrf`` cookie), so a
  form on another site can never write with a visitor's session.

The HTML forms here carry the CSRF token as a hidden field instead, checked by the route.
Sign-in, setup and sign-in-link forms, which come before any session exists, use a
pre-session token kept in the ``gradexp_login`` cookie (so nobody can sign a visitor in to
the attacker's account either).

``gradexp login`` (see ``gradexp/_login.py``) opens ``/authorize`` with the port of its
loopback listener, a random ``state`` and a PKCE S256 challenge. Authorize redirects to
``http://127.0.0.1:PORT/callback`` (never anywhere else) with a one-time code, which the CLI
trades once, with its PKCE verifier, for a new API key at ``POST /api/v1/auth/token``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
from aiohttp import web

from gradexp.protocol.wire import API_PREFIX, CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, TOKEN_PATH
from gradexp.server import accounts as acc
from gradexp.server import auth_pages as pages
from gradexp.server.auth import User
from gradexp.server.db import Database
from gradexp.server.errors import ApiError, json_response
from gradexp.server.state import base_url

routes = web.RouteTableDef()

POLICY = web.AppKey("gradexp_accounts_policy", acc.Policy)
LOGIN_COOKIE = "gradexp_login"  # the pre-session CSRF token of sign-in and setup forms
LOGIN_COOKIE_AGE = 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STATIC_DIR = Path(__file__).resolve().parent / "static" / "auth"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


# Paths the auth middleware lets through without credentials: these routes decide for
# themselves (a form post carries its CSRF token in the body, which middleware cannot read).
PUBLIC_API_PATHS = frozenset({TOKEN_PATH})

STATE_RE = re.compile(r"[A-Za-z0-9._~-]{8,128}")


# --- request helpers ---------------------------------------------------------------------


def _db(request: web.Request) -> Database:
    db: Database = request.app["db"]
    return db


def _policy(request: web.Request) -> acc.Policy:
    return request.app.get(POLICY) or acc.Policy()


def _ip(request: web.Request) -> str:
    return request.remote or ""


def _host(request: web.Request) -> str:
    return base_url(request)


def _secure(request: web.Request) -> bool:
    """Whether cookies must be Secure: served over https here or behind an https proxy."""
    return request.secure or _host(request).startswith("https://")


async def current_session(request: web.Request) -> acc.Session | None:
    """The signed-in session of this request (looked up once per request)."""
    if "gx_session" not in request:
        token = request.cookies.get(SESSION_COOKIE)
        request["gx_session"] = (
            await acc.find_session(_db(request), token, _policy(request)) if token else None
        )
    session: acc.Session | None = request["gx_session"]
    return session


async def session_user(request: web.Request) -> User | None:
    """The user of a session cookie, for the API (``auth.authenticate`` asks this).

    Writes must carry the session's CSRF token in ``X-CSRF-Token``: a cookie alone is
    what a cross-site form would send.
    """
    session = await current_session(request)
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not acc.same_secret(
        request.headers.get(CSRF_HEADER), session.csrf
    ):
        raise ApiError(
            403,
            "forbidden",
            f"a request signed in by session cookie must send the {CSRF_HEADER} header "
            f"(its value is in the {CSRF_COOKIE} cookie); reload the page and try again",
        )
    return User(id=session.user.id, name=session.user.name)


def safe_next(value: str | None) -> str:
    """A local path to return to after sign-in; anything else (other sites, schemes,
    protocol-relative ``//host`` or ``/\\host``) becomes ``/``."""
    if not value or len(value) > 2048 or not value.startswith("/"):
        return "/"
    if value.startswith(("//", "/\\")) or any(c < " " or c in "\\\x7f" for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    if parts.path in ("/login", "/logout", "/setup", "/login/link"):
        return "/"
    return value


def sign_in_url(next_path: str) -> str:
    """``/login?next=...`` for a local path."""
    return "/login?" + urlencode({"next": safe_next(next_path)})


def _wants_html(request: web.Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", "")


async def page_redirect(request: web.Request) -> web.StreamResponse | None:
    """For a UI page: None when signed in, else a redirect to sign-in (a browser) or a 401
    (anything that does not ask for HTML)."""
    if (await current_session(request)) is not None:
        return None
    from gradexp.server.auth import authenticate

    if request.headers.get("Authorization") and await authenticate(request) is not None:
        return None
    if _wants_html(request):
        return _see_other(sign_in_url(request.path_qs))
    raise ApiError(401, "unauthorized", "sign in first: open this page in a browser")


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _set_session_cookies(resp: web.StreamResponse, request: web.Request, s: acc.Session) -> None:
    age = int(_policy(request).session_max)
    secure = _secure(request)
    resp.set_cookie(
        SESSION_COOKIE, s.token, max_age=age, path="/", httponly=True, samesite="Lax", secure=secure
    )
    # Readable by the page's script (not HttpOnly): it is only the CSRF token, which is
    # useless without the HttpOnly session cookie beside it.
    resp.set_cookie(CSRF_COOKIE, s.csrf, max_age=age, path="/", samesite="Lax", secure=secure)
    resp.del_cookie(LOGIN_COOKIE, path="/")


def _clear_session_cookies(resp: web.StreamResponse) -> None:
    resp.del_cookie(SESSION_COOKIE, path="/")
    resp.del_cookie(CSRF_COOKIE, path="/")


def _login_token(request: web.Request) -> str:
    """The pre-session CSRF token for sign-in and setup forms (reused while the cookie lives)."""
    token = request.cookies.get(LOGIN_COOKIE)
    if token and 20 <= len(token) <= 64:
        return token
    return acc.new_token()


def _with_login_cookie(resp: web.Response, request: web.Request, token: str) -> web.Response:
    resp.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_COOKIE_AGE,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=_secure(request),
    )
    return resp


def _login_form_ok(request: web.Request, form: Any) -> bool:
    return acc.same_secret(str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE))


def _same_origin(request: web.Request) -> bool:
    """A browser's Origin header, when sent, must be this server (a second CSRF fence)."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin in (str(request.url.origin()), _host(request))


async def _form(request: web.Request) -> Any:
    try:
        return await request.post()
    except ValueError:
        raise ApiError(400, "bad_request", "could not read the form") from None


# --- sign in / out -----------------------------------------------------------------------


def _purpose(next_path: str) -> str | None:
    """What the sign-in is for, when it is on the way to authorizing a CLI."""
    parts = urlsplit(next_path)
    if parts.path != "/authorize":
        return None
    client = parse_qs(parts.query).get("client", [""])[0]
    return f"to authorize gradexp login on {acc.clean_client_name(client, 'your machine')}"


def _sign_in_page(
    request: web.Request,
    next_path: str,
    *,
    username: str = "",
    error: str | None = None,
    info: str | None = None,
    status: int = 200,
) -> web.Response:
    token = _login_token(request)
    resp = pages.sign_in(
        csrf=token,
        next_path=next_path,
        username=username,
        error=error,
        info=info,
        purpose=_purpose(next_path),
        host=_host(request),
        status=status,
    )
    return _with_login_cookie(resp, request, token)


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form (or straight on to ``next`` when already signed in)."""
    next_path = safe_next(request.query.get("next"))
    if await current_session(request) is not None:
        return _see_other(next_path)
    info = None
    if "signed_out" in request.query:
        info = "You are signed out."
    elif not await acc.user_count(_db(request)):
        info = (
            "This server has no account yet: open the setup link that gradexp server "
            "printed when it started."
        )
    resp = _sign_in_page(request, next_path, info=info)
    if request.cookies.get(SESSION_COOKIE):  # a dead session's cookie: tidy it away
        _clear_session_cookies(resp)
    return resp


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    """Check a user name and password; on success start a session and go to ``next``."""
    form = await _form(request)
    next_path = safe_next(str(form.get("next", "")))
    username = str(form.get("username", "")).strip()[:128]
    password = str(form.get("password", ""))
    if not _login_form_ok(request, form) or not _same_origin(request):
        return _sign_in_page(
            request,
            next_path,
            username=username,
            error="This sign-in form expired. Please sign in again.",
            status=400,
        )
    db, policy = _db(request), _policy(request)
    try:
        account = await acc.check_password(db, username, password, _ip(request), policy)
    except acc.AccountError as exc:
        status = 429 if exc.code == "locked" else 401
        return _sign_in_page(
            request, next_path, username=username, error=exc.message, status=status
        )
    await acc.prune_expired(db, policy)
    session = await acc.create_session(
        db, account, user_agent=request.headers.get("User-Agent"), ip=_ip(request)
    )
    resp = _see_other(next_path)
    _set_session_cookies(resp, request, session)
    return resp


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session (in the database, so every server process forgets it) and its cookies."""
    form = await _form(request)
    session = await current_session(request)
    if session is not None:
        if not acc.same_secret(str(form.get("csrf", "")), session.csrf):
            return pages.message(
                "Not signed out",
                "This page was out of date. Reload it and sign out again.",
                action=("Back to your keys", "/keys"),
                host=_host(request),
                status=403,
            )
        await acc.end_session(_db(request), session.token)
    query = {"signed_out": "1"}
    next_path = safe_next(str(form.get("next", "")))
    if next_path != "/":
        query["next"] = next_path  # "Not you?" on the authorize page: sign in, come back
    resp = _see_other("/login?" + urlencode(query))
    _clear_session_cookies(resp)
    return resp


# --- first run -----------------------------------------------------------------------------


def _setup_dead(request: web.Request, text: str = acc.SETUP_DEAD) -> web.Response:
    return pages.message(
        "Setup link used",
        text,
        action=("Sign in", "/login"),
        detail="An admin can add accounts with <code>gradexp server user add NAME</code>.",
        host=_host(request),
        status=410,
    )


@routes.get("/setup")
async def setup_page(request: web.Request) -> web.StreamResponse:
    """The first-run page behind the link the server prints when it has no user."""
    token = request.query.get("token", "")
    db = _db(request)
    if not await acc.code_is_live(db, token, acc.PURPOSE_SETUP) or await acc.user_count(db):
        return _setup_dead(request)
    csrf = _login_token(request)
    return _with_login_cookie(
        pages.setup(token=token, csrf=csrf, host=_host(request)), request, csrf
    )


@routes.post("/setup")
async def setup_submit(request: web.Request) -> web.StreamResponse:
    """Create the first account, sign it in, and show its keys page."""
    form = await _form(request)
    token = str(form.get("token", ""))
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    confirm = str(form.get("confirm", ""))

    def again(error: str) -> web.Response:
        csrf = _login_token(request)
        resp = pages.setup(
            token=token, csrf=csrf, host=_host(request), username=username[:128], error=error
        )
        return _with_login_cookie(resp, request, csrf)

    if not _login_form_ok(request, form) or not _same_origin(request):
        return again("This form expired. Please try again.")
    db = _db(request)
    try:
        acc.check_user_name(username)
        acc.check_new_password(password, confirm)
        account = await acc.create_first_account(db, token, username, password)
    except acc.AccountError as exc:
        if exc.code == "setup_used":
            return _setup_dead(request, exc.message)
        return again(exc.message)
    session = await acc.create_session(
        db, account, user_agent=request.headers.get("User-Agent"), ip=_ip(request)
    )
    resp = _see_other("/keys?welcome=1")
    _set_session_cookies(resp, request, session)
    return resp


# --- one-time sign-in links ------------------------------------------------------------------


def _link_dead(request: web.Request) -> web.Response:
    return pages.message(
        "Link used",
        acc.LINK_DEAD,
        action=("Sign in", "/login"),
        host=_host(request),
        status=410,
    )


@routes.get("/login/link")
async def link_page(request: web.Request) -> web.StreamResponse:
    """Confirm a one-time sign-in link (``gradexp server user login-link NAME``); an
    optional ``next`` (a local path) is where it leads once signed in."""
    token = request.query.get("token", "")
    account = await acc.peek_login_link(_db(request), token)
    if account is None:
        return _link_dead(request)
    csrf = _login_token(request)
    resp = pages.login_link(
        token=token,
        csrf=csrf,
        user=account.name,
        host=_host(request),
        next_path=safe_next(request.query.get("next")),
    )
    return _with_login_cookie(resp, request, csrf)


@routes.post("/login/link")
async def link_submit(request: web.Request) -> web.StreamResponse:
    """Spend the link: a new session for its user."""
    form = await _form(request)
    if not _login_form_ok(request, form) or not _same_origin(request):
        return pages.message(
            "Link not used",
            "This page expired. Open the sign-in link again.",
            host=_host(request),
            status=400,
        )
    db = _db(request)
    try:
        account = await acc.redeem_login_link(db, str(form.get("token", "")))
    except acc.AccountError:
        return _link_dead(request)
    session = await acc.create_session(
        db, account, user_agent=request.headers.get("User-Agent"), ip=_ip(request)
    )
    resp = _see_other(safe_next(str(form.get("next", ""))))
    _set_session_cookies(resp, request, session)
    return resp


# --- gradexp login: authorize and token exchange -----------------------------------------------

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
    if not acc.CHALLENGE_RE.fullmatch(fields["code_challenge"]):
        return None
    fields["port"] = str(port)
    fields["client"] = acc.clean_client_name(fields["client"], "your machine")
    return fields


def _bad_authorize(request: web.Request) -> web.Response:
    return pages.message(
        "Incomplete login link",
        "This page needs the link that gradexp login opens. Run gradexp login again.",
        host=_host(request),
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
        return _see_other(sign_in_url(request.path_qs))
    return pages.authorize(
        user=session.user.name,
        client=params["client"],
        fields=params,
        csrf=session.csrf,
        host=_host(request),
        here=request.path_qs,
    )


@routes.post("/authorize")
async def authorize_submit(request: web.Request) -> web.StreamResponse:
    """Authorize (a one-time code to the CLI's loopback listener) or cancel."""
    form = await _form(request)
    params = _authorize_params(form)
    if params is None:
        return _bad_authorize(request)
    session = await current_session(request)
    if session is None:
        query = urlencode({k: params[k] for k in AUTHORIZE_FIELDS})
        return _see_other(sign_in_url(f"/authorize?{query}"))
    if not acc.same_secret(str(form.get("csrf", "")), session.csrf) or not _same_origin(request):
        return pages.message(
            "Not authorized",
            "This page was out of date. Run gradexp login again.",
            host=_host(request),
            status=403,
        )
    redirect = acc.loopback_redirect(int(params["port"]))
    if form.get("decision") != "allow":
        return _see_other(
            f"{redirect}?{urlencode({'error': 'access_denied', 'state': params['state']})}"
        )
    code = await acc.create_code(
        _db(request),
        acc.PURPOSE_AUTHORIZE,
        _policy(request).code_ttl,
        user_id=session.user.id,
        challenge=params["code_challenge"],
        redirect_uri=redirect,
        client_name=params["client"],
    )
    return _see_other(f"{redirect}?{urlencode({'code': code, 'state': params['state']})}")


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
        host=_host(request),
        detail='Manage your machines\' keys on the <a href="/keys">API keys</a> page.'
        if result == "ok"
        else "",
    )


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise ApiError(400, "bad_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the request body must be a JSON object")
    return body


@routes.post(TOKEN_PATH)
async def token_exchange(request: web.Request) -> web.Response:
    """``{"code", "code_verifier", "redirect_uri"}`` -> a new API key (exactly once per code)."""
    body = await _json_body(request)
    try:
        new = await acc.exchange_code(
            _db(request),
            str(body.get("code") or ""),
            str(body.get("code_verifier") or ""),
            str(body.get("redirect_uri") or ""),
        )
    except acc.AccountError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    return json_response(
        {
            "api_key": new.api_key,
            "key": {"name": new.name, "prefix": new.prefix},
            "user": {"id": new.user.id, "name": new.user.name},
        },
        headers={"Cache-Control": "no-store"},
    )


# --- API keys: the page ------------------------------------------------------------------------


async def _keys_page(
    request: web.Request,
    session: acc.Session,
    *,
    new_key: tuple[str, str] | None = None,
    flash: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    rows = await acc.list_user_keys(_db(request), session.user.id)
    if flash is None and "revoked" in request.query:
        revoked = next((r for r in rows if str(r["id"]) == request.query["revoked"]), None)
        if revoked is not None:
            flash = f"Key “{revoked['name']}” revoked. Scripts using it are refused from now on."
    return pages.keys(
        user=session.user.name,
        csrf=session.csrf,
        rows=rows,
        host=_host(request),
        new_key=new_key,
        flash=flash,
        error=error,
        welcome="welcome" in request.query,
        status=status,
    )


async def _page_session(request: web.Request) -> acc.Session | web.Response:
    session = await current_session(request)
    if session is None:
        return _see_other(sign_in_url(request.path_qs if request.method == "GET" else "/keys"))
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
    form = await _form(request)
    if not acc.same_secret(str(form.get("csrf", "")), session.csrf) or not _same_origin(request):
        return await _keys_page(
            request, session, error="This page was out of date; nothing was created.", status=403
        )
    name = str(form.get("name", "")).strip()
    if not name:
        return await _keys_page(request, session, error="Give the key a name.", status=400)
    secret, entry = await acc.create_user_key(_db(request), session.user.id, name)
    return await _keys_page(request, session, new_key=(entry["name"], secret))


@routes.post(r"/keys/{key_id:\d{1,18}}/revoke")
async def keys_revoke(request: web.Request) -> web.StreamResponse:
    """Revoke a key: refused at once by every server process (it is in the database)."""
    session = await _page_session(request)
    if isinstance(session, web.Response):
        return session
    form = await _form(request)
    if not acc.same_secret(str(form.get("csrf", "")), session.csrf) or not _same_origin(request):
        return await _keys_page(
            request, session, error="This page was out of date; nothing was revoked.", status=403
        )
    key_id = int(request.match_info["key_id"])
    if await acc.revoke_user_key(_db(request), session.user.id, key_id) is None:
        return await _keys_page(request, session, error="No such key.", status=404)
    return _see_other(f"/keys?revoked={key_id}")


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
    user: User = request["user"]
    rows = await acc.list_user_keys(_db(request), user.id)
    return json_response({"keys": [_key_json(r, user.key_id) for r in rows]})


@routes.post(API_PREFIX + "/api-keys")
async def api_keys_create(request: web.Request) -> web.Response:
    """``{"name": "laptop"}`` -> ``201 {"api_key": "gx_...", "key": {...}}`` (shown once)."""
    user: User = request["user"]
    body = await _json_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "bad_request", 'give the key a name: {"name": "laptop"}')
    secret, entry = await acc.create_user_key(_db(request), user.id, name)
    return json_response(
        {"api_key": secret, "key": _key_json(entry)},
        status=201,
        headers={"Cache-Control": "no-store"},
    )


@routes.delete(API_PREFIX + r"/api-keys/{key_id:\d{1,18}}")
async def api_keys_revoke(request: web.Request) -> web.Response:
    """Revoke one of the caller's keys (it may be the key making this request)."""
    user: User = request["user"]
    row = await acc.revoke_user_key(_db(request), user.id, int(request.match_info["key_id"]))
    if row is None:
        raise ApiError(404, "not_found", "no such API key among yours")
    return json_response({"key": _key_json(row, user.key_id)})


# --- static files of these pages -------------------------------------------------------------


@routes.get(r"/static/auth/{name:[a-z]+\.(?:css|js|svg)}")
async def static_file(request: web.Request) -> web.StreamResponse:
    """The pages' stylesheet, script and mark (a fixed folder; no path traversal possible)."""
    path = STATIC_DIR / request.match_info["name"]
    if not path.is_file():
        raise ApiError(404, "not_found", "no such file")
    resp = web.FileResponse(path)
    resp.content_type = STATIC_TYPES[path.suffix]
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def setup(app: web.Application) -> None:
    """Add these routes to the app, with the account policy from the environment."""
    app[POLICY] = acc.policy_from_env()
    app.add_routes(routes)


async def first_run_banner(db: Database, url: str, policy: acc.Policy | None = None) -> str | None:
    """What ``gradexp server`` prints on a database without users: a one-time setup link
    (like Jupyter's token link) that lets the first visitor create the first account."""
    token = await acc.setup_token_if_needed(db, policy or acc.policy_from_env())
    if token is None:
        return None
    url = os.environ.get("GRADEXP_PUBLIC_URL") or url  # behind a proxy: the address people use
    return (
        "  no account yet: create the first one here (the link works once):\n"
        f"    {url.rstrip('/')}/setup?{urlencode({'token': token})}"
    )
