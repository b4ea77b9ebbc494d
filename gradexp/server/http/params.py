"""Reading a request's parameters: integers, key lists, page cursors, the project path."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gradexp.server.domain.access import Role
from gradexp.server.domain.projects import owned_project, project_access
from gradexp.server.http.errors import HttpError
from gradexp.server.http.sessions import USER

#: The largest integer a query parameter may hold: every count, step and sequence number
#: is a signed 64-bit integer in the database.
MAX_QUERY_INT = 2**63 - 1


def parse_int(raw: str, what: str, minimum: int | None = None) -> int:
    """``raw`` as an integer within [``minimum``, 2^63-1]; a 400 naming ``what`` otherwise."""
    try:
        # Bounded before int(): a 5,000-digit string is refused without the quadratic parse.
        value = int(raw) if len(raw) <= 24 else None
    except ValueError:
        value = None
    if value is None:
        raise HttpError(400, "bad_request", f"{what} must be an integer, got {raw[:40]!r}")
    if value > MAX_QUERY_INT:
        raise HttpError(400, "bad_request", f"{what} must be an integer up to 2^63-1")
    if minimum is not None and value < minimum:
        raise HttpError(400, "bad_request", f"{what} must be an integer >= {minimum}")
    return value


def int_param(
    request: web.Request, name: str, default: int | None = None, minimum: int | None = None
) -> int | None:
    """Query parameter ``name`` as an integer (``default`` when absent or empty)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    return parse_int(raw, f"query parameter {name}", minimum)


def keys_param(request: web.Request) -> list[str] | None:
    """``?keys=a,b`` as a list (None when absent or empty)."""
    raw = request.query.get("keys")
    if raw is None or raw == "":
        return None
    return [k for k in raw.split(",") if k]


def page_offset(raw: str | None) -> int:
    """The offset a page cursor (``next_cursor`` of the page before) stands for."""
    if not raw:
        return 0
    return parse_int(raw, "cursor (pass next_cursor from the previous page)", minimum=0)


async def owned_project_id(request: web.Request, conn: Any) -> int:
    """The id of the path's ``{owner}/{project}`` if the caller may see it, else 404."""
    return await owned_project(
        conn, request[USER], request.match_info["owner"], request.match_info["project"]
    )


async def project_id_role(request: web.Request, conn: Any) -> tuple[int, Role]:
    """The path's ``{owner}/{project}`` and the caller's role in it, else 404."""
    return await project_access(
        conn, request[USER], request.match_info["owner"], request.match_info["project"]
    )
