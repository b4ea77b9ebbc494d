"""Who a request is from, and the browser session's cookies and forms.

How a request is recognised (:func:`authenticate`, the one place that decides):

- ``Authorization: Bearer <key>``: scripts and the SDK.
- The ``gradexp_session`` cookie (HttpOnly, SameSite=Lax, Secure over https): the browser.
  It is accepted for GET/HEAD; any other method must also carry the session's CSRF token in
  the ``X-CSRF-Token`` header (the web UI reads it from the ``gradexp_csrf`` cookie), so a
  form on another site can never write with a visitor's session.

The HTML forms carry the CSRF token as a hidden field instead, checked by their routes.
Sign-in, setup and sign-in-link forms, which come before any session exists, use a
pre-session token kept in the ``gradexp_login`` cookie (so nobody can sign a visitor in to
the attacker's account either).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from gradexp.protocol.wire import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from gradexp.server.domain import shares
from gradexp.server.domain.accounts import sessions
from gradexp.server.domain.accounts.keys import KeyCache, user_for_key
from gradexp.server.domain.accounts.tokens import new_token, same_secret
from gradexp.server.domain.accounts.users import User
from gradexp.server.http.bodies import read_small_body
from gradexp.server.http.errors import HttpError
from gradexp.server.http.state import app_state, public_url
from gradexp.server.settings import IPNetwork

#: The query parameter that carries a share link's token (docs/teams.md).
SHARE_PARAM = "share"

#: The caller of an API request (set by the auth middleware: ``http/auth.py``).
USER = web.RequestKey("user", User)
#: The request's signed-in session, looked up once per request.
_SESSION = web.RequestKey[sessions.Session | None]("session")

LOGIN_COOKIE = "gradexp_login"  # the pre-session CSRF token of sign-in and setup forms
DEVICE_COOKIE = "gradexp_device"  # "this browser has signed in as this user before"
LOGIN_COOKIE_AGE = 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_ip(request: web.Request) -> str:
    """The client's address, as sign-in limits count it and sessions record it.

    The connection's address, unless it is a trusted proxy (``--trusted-proxy``): then the
    ``X-Forwarded-For`` header is read from the right, past every trusted proxy, and the
    first address that is not one is the client. Without a trusted proxy the header is
    ignored: anyone can write it.
    """
    remote = request.remote or ""
    proxies = app_state(request).settings.trusted_proxies
    if not proxies or not _among(remote, proxies):
        return remote
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
    ]
    client = remote
    for hop in reversed(hops):
        address = _hop_address(hop)
        if address is None:  # not written by a proxy of ours: stop at the last one that was
            break
        client = address
        if not _among(client, proxies):
            break
    return client


def _hop_address(hop: str) -> str | None:
    """The address in one ``X-Forwarded-For`` entry (some proxies add a port:
    ``1.2.3.4:5678``, ``[2001:db8::1]:5678``); None if there is none."""
    candidates = [hop]
    if hop.startswith("[") and "]" in hop:
        candidates = [hop[1 : hop.index("]")]]
    elif hop.count(":") == 1:
        candidates.append(hop.partition(":")[0])
    return next((ip for ip in map(_ip, candidates) if ip is not None), None)


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _among(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def secure(request: web.Request) -> bool:
    """Whether cookies must be Secure: served over https here or behind an https proxy."""
    return request.secure or public_url(request).startswith("https://")


async def current_session(request: web.Request) -> sessions.Session | None:
    """The signed-in session of this request (looked up once per request)."""
    if _SESSION not in request:
        token = request.cookies.get(SESSION_COOKIE)
        state = app_state(request)
        request[_SESSION] = (
            await sessions.find_session(state.db, token, state.settings.policy) if token else None
        )
    return request[_SESSION]


async def session_user(request: web.Request) -> User | None:
    """The user of a session cookie, for the API.

    Writes must carry the session's CSRF token in ``X-CSRF-Token``: a cookie alone is
    what a cross-site form would send.
    """
    session = await current_session(request)
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not same_secret(
        request.headers.get(CSRF_HEADER), session.csrf
    ):
        raise HttpError(
            403,
            "forbidden",
            f"a request signed in by session cookie must send the {CSRF_HEADER} header "
            f"(its value is in the {CSRF_COOKIE} cookie); reload the page and try again",
        )
    return User(id=session.user.id, name=session.user.name)


async def authenticate(request: web.Request, cache: KeyCache | None = None) -> User | None:
    """Who sent this request, or None: a bearer API key, else a browser's session cookie
    (which needs the CSRF header on writes: :func:`session_user`).

    ``cache``: keys this process found valid lately, for a route that checks revocation
    in its own transaction (see ``auth.key_checked_in_transaction``)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        key = token.strip()
        if cache is None:
            return await user_for_key(app_state(request).db, key)
        user = cache.get(key)
        if user is None:
            user = await user_for_key(app_state(request).db, key)
            if user is not None:
                cache.add(key, user)
        return user
    return await session_user(request)


async def share_visitor(request: web.Request) -> User:
    """The visitor of a share link (``?share=TOKEN``): reads only, and only while the link
    lives; a dead link answers 404 ``share_not_found``. Cookies are not looked at: a
    shared page shows what the link shares, whoever opens it."""
    if request.method not in SAFE_METHODS:
        raise HttpError(403, "forbidden", "a share link only reads")
    visitor = await shares.open_share(app_state(request).db, request.query[SHARE_PARAM])
    if visitor is None:
        raise HttpError(
            404,
            "share_not_found",
            "this share link was revoked or has expired; ask whoever shared it for a new one",
        )
    return visitor


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
    if request.headers.get("Authorization") and await authenticate(request) is not None:
        return None
    if _wants_html(request):
        return see_other(sign_in_url(request.path_qs))
    raise HttpError(401, "unauthorized", "sign in first: open this page in a browser")


def see_other(location: str) -> web.Response:
    """A 303 to ``location`` (after a form post, the browser follows with a GET)."""
    return web.Response(status=303, headers={"Location": location})


def set_session_cookies(
    resp: web.StreamResponse, request: web.Request, s: sessions.Session
) -> None:
    """Sign the browser in: the session cookie, its CSRF cookie, and no more login cookie."""
    age = int(app_state(request).settings.policy.session_max)
    is_secure = secure(request)
    resp.set_cookie(
        SESSION_COOKIE,
        s.token,
        max_age=age,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=is_secure,
    )
    # Readable by the page's script (not HttpOnly): it is only the CSRF token, which is
    # useless without the HttpOnly session cookie beside it.
    resp.set_cookie(CSRF_COOKIE, s.csrf, max_age=age, path="/", samesite="Lax", secure=is_secure)
    resp.del_cookie(LOGIN_COOKIE, path="/")


def set_device_cookie(resp: web.StreamResponse, request: web.Request, value: str) -> None:
    """Remember this browser as one its user signs in from (``domain/accounts/devices.py``):
    only sign-in reads it, so it is sent to ``/login`` only, and never to scripts."""
    resp.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=int(app_state(request).settings.policy.known_device_ttl),
        path="/login",
        httponly=True,
        samesite="Strict",
        secure=secure(request),
    )


def clear_session_cookies(resp: web.StreamResponse) -> None:
    """Forget the session's cookies in the browser."""
    resp.del_cookie(SESSION_COOKIE, path="/")
    resp.del_cookie(CSRF_COOKIE, path="/")


def login_token(request: web.Request) -> str:
    """The pre-session CSRF token for sign-in and setup forms (reused while the cookie lives)."""
    token = request.cookies.get(LOGIN_COOKIE)
    if token and 20 <= len(token) <= 64:
        return token
    return new_token()


def with_login_cookie(resp: web.Response, request: web.Request, token: str) -> web.Response:
    """``resp`` with the pre-session token's cookie set."""
    resp.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_COOKIE_AGE,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure(request),
    )
    return resp


def login_form_ok(request: web.Request, form: Any) -> bool:
    """Whether a pre-session form carries the token of this browser's login cookie."""
    return same_secret(str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE))


def same_origin(request: web.Request) -> bool:
    """A browser's Origin header, when sent, must be this server (a second CSRF fence)."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin in (str(request.url.origin()), public_url(request))


FORM_TYPE = "application/x-www-form-urlencoded"
FORM_MAX_FIELDS = 64


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """The posted form: URL-encoded, at most 64 KiB (``bodies.SMALL_BODY_BYTES``; 413 past
    it, before reading the body) and 64 fields; 400 when it cannot be read. A body of
    another type reads as an empty form, as aiohttp's own ``post()`` does."""
    if request.content_type == "multipart/form-data":
        raise HttpError(415, "unsupported_media_type", f"send the form as {FORM_TYPE}")
    if request.content_type != FORM_TYPE:
        return MultiDictProxy(MultiDict())
    body = await read_small_body(request, "form")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=FORM_MAX_FIELDS
        )
    except ValueError:  # not UTF-8, or too many fields
        raise HttpError(400, "bad_request", "could not read the form") from None
    return MultiDictProxy(MultiDict(pairs))
