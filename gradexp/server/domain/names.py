"""The naming rules the server applies, each with its one message.

Project names and user names follow one rule (user names appear in URLs beside project
names: ``/p/{owner}/{project}``); run ids follow the protocol's. The patterns live in
``gradexp._protocol``, which the SDK checks against too.
"""

from __future__ import annotations

from gradexp._protocol import PROJECT_NAME_RE, RUN_ID_RE

_NAME_RULE = "start with a letter or digit, then up to 127 of A-Z a-z 0-9 . _ -"


def _name_problem(noun: str, name: object) -> str | None:
    if type(name) is str and PROJECT_NAME_RE.fullmatch(name):
        return None
    return f"{noun} {name!r} is not valid: {_NAME_RULE}"


def project_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid project name, or None when it is."""
    return _name_problem("project name", name)


def user_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid user name (the project-name rule), or None when it is."""
    return _name_problem("user name", name)


def run_id_problem(run_id: object) -> str | None:
    """Why ``run_id`` is not a valid run id, or None when it is."""
    if type(run_id) is str and RUN_ID_RE.fullmatch(run_id):
        return None
    return f"run id {run_id!r} is not valid: use 1-64 of A-Z a-z 0-9 _ -"
