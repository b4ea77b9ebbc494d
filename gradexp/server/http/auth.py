"""The middleware that puts the caller on every API request, or refuses the request.

Every route under ``/api/`` reads ``request[USER]`` (a
:class:`~gradexp.server.domain.accounts.users.User`), set here from
:func:`~gradexp.server.http.sessions.authenticate`, or from a share link's token
(``?share=``: :func:`~gradexp.server.http.sessions.share_visitor`), which only reads. UI pages ask
:func:`~gradexp.server.http.sessions.page_redirect` instead.
"""

from __future__ import annotations

from aiohttp import web

from gradexp.protocol.wire import SESSION_COOKIE, TOKEN_PATH
from gradexp.server.http.errors import Handler, HttpError
from gradexp.server.http.sessions import SHARE_PARAM, USER, authenticate, share_visitor
from gradexp.server.http.state import app_state

# API paths that authenticate themselves: trading a one-time login code for a key.
PUBLIC_API_PATHS = frozenset({TOKEN_PATH})

KEY_CHECKED_IN_TRANSACTION = "_gradexp_key_checked_in_transaction"


def key_checked_in_transaction(handler: Handler) -> Handler:
    """Mark a route that checks its API key's revocation inside its own transaction
    (``ingest_batch``'s ``api_key_id``): its keys may come from the process's
    :class:`~gradexp.server.domain.accounts.keys.KeyCache`, which saves the database read
    of each request."""
    setattr(handler, KEY_CHECKED_IN_TRANSACTION, True)
    return handler


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``request[USER]`` for every API request, or a 401 that says what to do."""
    if not request.path.startswith("/api/") or request.path in PUBLIC_API_PATHS:
        return await handler(request)
    if SHARE_PARAM in request.query:  # a share link's page: its token, never a cookie
        request[USER] = await share_visitor(request)
        return await handler(request)
    if getattr(request.match_info.handler, KEY_CHECKED_IN_TRANSACTION, False):
        user = await authenticate(request, app_state(request).api_keys)
    else:
        user = await authenticate(request)
    if user is None:
        if "Authorization" in request.headers:
            message = "this API key is not valid (revoked or mistyped); create one with `gradexp server key create NAME`"
        elif SESSION_COOKIE in request.cookies:
            message = "your sign-in session has ended: sign in again at /login"
        else:
            message = "missing API key: send `Authorization: Bearer <key>` (see `gradexp login`)"
        raise HttpError(401, "unauthorized", message)
    request[USER] = user
    return await handler(request)
