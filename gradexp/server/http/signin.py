"""Browser sign-in: the sign-in form, sign-out, first-run setup and one-time sign-in links.

Each flow is a page (``auth_pages.py``) and a form post. The forms that come before any
session exists (sign-in, setup, sign-in link) carry the pre-session token of the
``gradexp_login`` cookie, and every form post must come from this origin
(``sessions.same_origin``); see ``sessions.py`` for how a signed-in request is recognised.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from aiohttp import web

from gradexp.protocol.wire import SESSION_COOKIE
from gradexp.server.domain.accounts import codes, sessions
from gradexp.server.domain.accounts.keys import clean_client_name
from gradexp.server.domain.accounts.passwords import check_new_password
from gradexp.server.domain.accounts.tokens import same_secret
from gradexp.server.domain.accounts.users import check_user_name, user_count
from gradexp.server.domain.errors import DomainError, Gone
from gradexp.server.http import auth_pages as pages
from gradexp.server.http.errors import status_for
from gradexp.server.http.sessions import (
    DEVICE_COOKIE,
    clear_session_cookies,
    client_ip,
    current_session,
    login_form_ok,
    login_token,
    read_form,
    safe_next,
    same_origin,
    see_other,
    set_device_cookie,
    set_session_cookies,
    with_login_cookie,
)
from gradexp.server.http.state import app_state, public_url

routes = web.RouteTableDef()


def _purpose(next_path: str) -> str | None:
    """What the sign-in is for, when it is on the way to authorizing a CLI."""
    parts = urlsplit(next_path)
    if parts.path != "/authorize":
        return None
    client = parse_qs(parts.query).get("client", [""])[0]
    return f"to authorize gradexp login on {clean_client_name(client, 'your machine')}"


def _sign_in_page(
    request: web.Request,
    next_path: str,
    *,
    username: str = "",
    error: str | None = None,
    info: str | None = None,
    status: int = 200,
) -> web.Response:
    token = login_token(request)
    resp = pages.sign_in(
        csrf=token,
        next_path=next_path,
        username=username,
        error=error,
        info=info,
        purpose=_purpose(next_path),
        host=public_url(request),
        status=status,
    )
    return with_login_cookie(resp, request, token)


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form (or straight on to ``next`` when already signed in)."""
    next_path = safe_next(request.query.get("next"))
    if await current_session(request) is not None:
        return see_other(next_path)
    info = None
    if "signed_out" in request.query:
        info = "You are signed out."
    elif not await user_count(app_state(request).db):
        info = (
            "This server has no account yet: open the setup link that gradexp server "
            "printed when it started."
        )
    resp = _sign_in_page(request, next_path, info=info)
    if request.cookies.get(SESSION_COOKIE):  # a dead session's cookie: tidy it away
        clear_session_cookies(resp)
    return resp


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    """Check a user name and password; on success start a session and go to ``next``."""
    form = await read_form(request)
    next_path = safe_next(str(form.get("next", "")))
    username = str(form.get("username", "")).strip()[:128]
    password = str(form.get("password", ""))
    if not login_form_ok(request, form) or not same_origin(request):
        return _sign_in_page(
            request,
            next_path,
            username=username,
            error="This sign-in form expired. Please sign in again.",
            status=400,
        )
    state = app_state(request)
    db, policy = state.db, state.settings.policy
    try:
        signed_in = await state.sign_ins.check(
            username,
            password,
            ip=client_ip(request),
            device_cookie=request.cookies.get(DEVICE_COOKIE),
        )
    except DomainError as exc:  # wrong password (401); locked out, too many or busy (429)
        resp = _sign_in_page(
            request, next_path, username=username, error=exc.message, status=status_for(exc)
        )
        if "retry_after" in exc.extra:
            resp.headers["Retry-After"] = str(exc.extra["retry_after"])
        return resp
    await sessions.prune_expired(db, policy)
    session = await sessions.create_session(
        db, signed_in.account, user_agent=request.headers.get("User-Agent"), ip=client_ip(request)
    )
    resp = see_other(next_path)
    set_session_cookies(resp, request, session)
    set_device_cookie(resp, request, signed_in.device_cookie)
    return resp


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session (in the database, so every server process forgets it) and its cookies."""
    form = await read_form(request)
    session = await current_session(request)
    if session is not None:
        if not same_secret(str(form.get("csrf", "")), session.csrf):
            return pages.message(
                "Not signed out",
                "This page was out of date. Reload it and sign out again.",
                action=("Back to your keys", "/keys"),
                host=public_url(request),
                status=403,
            )
        state = app_state(request)
        await sessions.end_session(state.db, session.token, revocations=state.revocations)
    query = {"signed_out": "1"}
    next_path = safe_next(str(form.get("next", "")))
    if next_path != "/":
        query["next"] = next_path  # "Not you?" on the authorize page: sign in, come back
    resp = see_other("/login?" + urlencode(query))
    clear_session_cookies(resp)
    return resp


# --- first run -----------------------------------------------------------------------------


def _setup_dead(request: web.Request, text: str = codes.SETUP_DEAD) -> web.Response:
    return pages.message(
        "Setup link used",
        text,
        action=("Sign in", "/login"),
        detail="An admin can add accounts with <code>gradexp server user add NAME</code>.",
        host=public_url(request),
        status=410,
    )


@routes.get("/setup")
async def setup_page(request: web.Request) -> web.StreamResponse:
    """The first-run page behind the link the server prints when it has no user."""
    token = request.query.get("token", "")
    db = app_state(request).db
    if not await codes.code_is_live(db, token, codes.PURPOSE_SETUP) or await user_count(db):
        return _setup_dead(request)
    csrf = login_token(request)
    return with_login_cookie(
        pages.setup(token=token, csrf=csrf, host=public_url(request)), request, csrf
    )


@routes.post("/setup")
async def setup_submit(request: web.Request) -> web.StreamResponse:
    """Create the first account, sign it in, and show its keys page."""
    form = await read_form(request)
    token = str(form.get("token", ""))
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    confirm = str(form.get("confirm", ""))

    def again(error: str) -> web.Response:
        csrf = login_token(request)
        resp = pages.setup(
            token=token, csrf=csrf, host=public_url(request), username=username[:128], error=error
        )
        return with_login_cookie(resp, request, csrf)

    if not login_form_ok(request, form) or not same_origin(request):
        return again("This form expired. Please try again.")
    state = app_state(request)
    db = state.db
    try:
        check_user_name(username)
        check_new_password(password, confirm)
        account = await codes.create_first_account(
            db, token, username, password, passwords=state.passwords
        )
    except Gone as exc:
        return _setup_dead(request, exc.message)
    except DomainError as exc:
        return again(exc.message)
    session = await sessions.create_session(
        db, account, user_agent=request.headers.get("User-Agent"), ip=client_ip(request)
    )
    resp = see_other("/keys?welcome=1")
    set_session_cookies(resp, request, session)
    return resp


# --- one-time sign-in links ------------------------------------------------------------------


def _link_dead(request: web.Request) -> web.Response:
    return pages.message(
        "Link used",
        codes.LINK_DEAD,
        action=("Sign in", "/login"),
        host=public_url(request),
        status=410,
    )


@routes.get("/login/link")
async def link_page(request: web.Request) -> web.StreamResponse:
    """Confirm a one-time sign-in link (``gradexp server user login-link NAME``); an
    optional ``next`` (a local path) is where it leads once signed in."""
    token = request.query.get("token", "")
    account = await codes.peek_login_link(app_state(request).db, token)
    if account is None:
        return _link_dead(request)
    csrf = login_token(request)
    resp = pages.login_link(
        token=token,
        csrf=csrf,
        user=account.name,
        host=public_url(request),
        next_path=safe_next(request.query.get("next")),
    )
    return with_login_cookie(resp, request, csrf)


@routes.post("/login/link")
async def link_submit(request: web.Request) -> web.StreamResponse:
    """Spend the link: a new session for its user."""
    form = await read_form(request)
    if not login_form_ok(request, form) or not same_origin(request):
        return pages.message(
            "Link not used",
            "This page expired. Open the sign-in link again.",
            host=public_url(request),
            status=400,
        )
    db = app_state(request).db
    try:
        account = await codes.redeem_login_link(db, str(form.get("token", "")))
    except Gone:
        return _link_dead(request)
    session = await sessions.create_session(
        db, account, user_agent=request.headers.get("User-Agent"), ip=client_ip(request)
    )
    resp = see_other(safe_next(str(form.get("next", ""))))
    set_session_cookies(resp, request, session)
    return resp
