"""The naming rules the server applies: the protocol's, each with its one message.

The rules and their messages live in :mod:`gradexp.protocol.names`, which the SDK checks
against too; user names follow the project-name rule (they appear in URLs beside project
names: ``/p/{owner}/{project}``).
"""

from __future__ import annotations

from gradexp.protocol.names import project_name_problem, run_id_problem

__all__ = ["project_name_problem", "run_id_problem", "user_name_problem"]


def user_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid user name (the project-name rule), or None when it is."""
    return project_name_problem(name, noun="user name")
