"""Errors as HTTP replies: the one place where refusals become a status and a JSON body.

Two kinds of refusal reach a reply:

- :class:`~gradexp.server.domain.errors.DomainError` from the domain (a run not found, a
  bad batch...): :data:`DOMAIN_STATUS` gives the status of each class;
- :class:`HttpError` from this layer itself, for what only HTTP knows (a missing API key,
  a bad query parameter, an unsupported ``Content-Encoding``).

:func:`error_middleware` renders both, and every other failure, as the protocol's error
body ``{"error": {"code", "message", ...}}``, so no client ever parses an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from gradexp.server.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unprocessable,
)
from gradexp.server.storage.db import is_deadlock, is_disconnect

log = logging.getLogger("gradexp.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The HTTP status of each kind of domain refusal.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    Invalid: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    Unprocessable: 422,
    RateLimited: 429,
}

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class HttpError(Exception):
    """A request this layer refuses: an HTTP status, a machine code and one line for a person."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def status_for(exc: DomainError) -> int:
    """The HTTP status of a domain refusal (by its class, or the nearest base in the table)."""
    for cls in type(exc).__mro__:
        status = DOMAIN_STATUS.get(cls)
        if status is not None:
            return status
    return 400


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON reply encoded with orjson (NaN never appears: values are protocol-encoded)."""
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """The protocol's error body: ``{"error": {"code", "message", ...}}``."""
    return json_response({"error": {"code": code, "message": message, **extra}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error, so no client ever parses an HTML page."""
    try:
        return await handler(request)
    except DomainError as exc:
        return error_response(status_for(exc), exc.code, exc.message, **exc.extra)
    except HttpError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _DEFAULT_CODES.get(exc.status, "bad_request" if exc.status < 500 else "internal")
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return error_response(exc.status, code, message or exc.reason)
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception as exc:
        if is_disconnect(exc):
            # A database restart, say: nothing was done, and the same request will work
            # once the pool has new connections (the SDK retries a 503).
            log.warning("%s %s lost its database connection: %s", request.method, request.path, exc)
            resp = error_response(
                503,
                "database_unavailable",
                "the server lost its connection to its database; send the request again",
            )
            resp.headers["Retry-After"] = "1"
            return resp
        if is_deadlock(exc):
            # Retried already where it can happen; lost again, it is contention, not a
            # fault of the request: nothing was written, and it may be sent again.
            log.warning("%s %s lost a database deadlock: %s", request.method, request.path, exc)
            resp = error_response(
                503, "database_busy", "the database was busy with other writes; send it again"
            )
            resp.headers["Retry-After"] = "1"
            return resp
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal", "the server failed on this request; see its log")
