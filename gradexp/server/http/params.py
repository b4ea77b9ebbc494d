"""Reading a request's parameters: integers, key lists, page cursors, the project path."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gradexp.server.domain.access import Role
from gradexp.server.domain.projects import owned_project, project_access
from gradexp.server.http.errors import HttpError
from gradexp.server.http.sessions import USER


def int_param(
    request: web.Request, name: str, default: int | None = None, minimum: int | None = None
) -> int | None:
    """Query parameter ``name`` as an integer (``default`` when absent or empty)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(
            400, "bad_request", f"query parameter {name} must be an integer, got {raw!r}"
        ) from None
    if minimum is not None and value < minimum:
        raise HttpError(400, "bad_request", f"query parameter {name} must be >= {minimum}")
    return value


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
    try:
        return max(0, int(raw))
    except ValueError:
        raise HttpError(
            400, "bad_request", "invalid cursor: pass next_cursor from the previous page"
        ) from None


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
