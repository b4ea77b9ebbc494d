"""Which namespace a run logs to: the API key's user, or one of their teams.

``init(project="TEAM/NAME")``, ``init(entity="TEAM")`` and ``GRADEXP_ENTITY`` name a team.
Online, ``init`` asks the server once (``GET /api/v1/viewer``, bounded) whether the key's
user may log there, so a viewer or an outsider hears it at once rather than from the
stream thread later; offline runs hear it at ``gradexp sync``, which keeps the run file.
"""

from __future__ import annotations

from gradexp.errors import GradexpError

ENTITY_CHECK_TIMEOUT = 10.0
LOGGING_ROLES = ("member", "admin")


def split_project(project: str, entity: str | None) -> tuple[str, str | None]:
    """``("TEAM/NAME", None)`` -> ``("NAME", "TEAM")``; a plain name keeps ``entity``.
    Naming two different entities is an error."""
    owner, slash, name = project.partition("/")
    if not slash:
        return project, entity
    if entity is not None and entity != owner:
        raise GradexpError(
            f"project={project!r} names {owner!r} but entity={entity!r}: name the team once."
        )
    return name, owner


def check_entity(base_url: str, api_key: str, entity: str) -> str | None:
    """Raise GradexpError when the key's user may not log to ``entity``; returns the
    user's name (None when the server could not be asked: the upload reports it later)."""
    from gradexp.protocol.wire import API_PREFIX
    from gradexp.sdk.login import LoginError, _http

    try:
        status, body = _http(
            "GET",
            base_url.rstrip("/"),
            API_PREFIX + "/viewer",
            key=api_key,
            timeout=ENTITY_CHECK_TIMEOUT,
        )
    except LoginError:
        return None  # unreachable: the run file keeps everything, the upload will say
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("user"), dict):
        return None
    user = str(body["user"].get("name"))
    if entity == user:
        return user
    roles = {t.get("name"): t.get("role") for t in body.get("teams") or [] if isinstance(t, dict)}
    role = roles.get(entity)
    if role is None:
        raise GradexpError(
            f"{user} is not in a team {entity!r} on {base_url}: ask one of its admins to add "
            f"you (gradexp server team add {entity} {user} --role member)."
        )
    if role not in LOGGING_ROLES:
        raise GradexpError(
            f"{user} is a {role} of team {entity!r}: viewers read its projects, only members "
            "and admins log runs. Ask a team admin to make you a member."
        )
    return user
