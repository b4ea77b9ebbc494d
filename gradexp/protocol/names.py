"""The naming rules of the protocol, each in one place with its one message.

Run ids, project names (user names follow the same rule: both appear in URLs), blob
names (sha256 hex) and metric keys. The SDK checks them before anything is written, the
server before anything is stored; both import them from here.

Run ids are as permissive as is safe. A run id is a URL path segment (``/r/{id}``,
``/api/v1/runs/{id}/...``), the last part of a directory name
(``run-<time>-<id>``) and a part of every object key of the run
(``projects/<n>/runs/<id>/...``), so it is 1-64 of ``A-Z a-z 0-9 . _ -``, because:

- no ``/`` or ``\\``: it would split a path, a URL or an object key;
- no ``..`` anywhere and no leading ``.``: ``.`` and ``..`` are path segments with a
  meaning of their own (a URL client or a file system would resolve them), and a name
  starting with ``.`` is a hidden file;
- no trailing ``.``: Windows drops it from file names, so two ids would share a folder;
- nothing else (no spaces, ``%``, ``#``, ``?``, ``:``): each would need escaping in a URL
  or is not allowed in file names somewhere.

wandb's ids (letters, digits, ``-``, ``_``, ``.``) all pass.

The rules are written as character sets, so that ``init()`` checks an id and a project
name without importing ``re`` (it costs milliseconds). ``RUN_ID_RE``, ``PROJECT_NAME_RE``
and ``SHA256_RE`` are the same rules as regular expressions, for code that matches with
them (the server's routes); they are compiled on first use (PEP 562).
"""

from __future__ import annotations

from gradexp.protocol.wire import MAX_KEY_LENGTH, STAT_SEPARATOR

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    import re
    from typing import Final

    RUN_ID_RE: re.Pattern[str]
    PROJECT_NAME_RE: re.Pattern[str]
    SHA256_RE: re.Pattern[str]

__all__ = [
    "PROJECT_NAME_MAX",
    "PROJECT_NAME_RE",
    "RUN_ID_MAX",
    "RUN_ID_RE",
    "SHA256_RE",
    "key_problem",
    "project_name_problem",
    "run_id_problem",
]

_ALNUM: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_RUN_ID_CHARS: Final = _ALNUM | {".", "_", "-"}
_PROJECT_NAME_CHARS: Final = _ALNUM | {".", "_", "-"}
RUN_ID_MAX: Final = 64
PROJECT_NAME_MAX: Final = 128

_PATTERNS: Final = {
    # the character set, and no "..", no "." first or last (see the module docstring)
    "RUN_ID_RE": r"(?!.*\.\.)[A-Za-z0-9_-](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_-])?",
    "PROJECT_NAME_RE": r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}",
    "SHA256_RE": r"[0-9a-f]{64}",
}


def run_id_problem(run_id: object) -> str | None:
    """Why ``run_id`` cannot be a run id, or None if it can: 1-64 of A-Z a-z 0-9 . _ -,
    neither starting nor ending with '.', without '..' (see the module docstring)."""
    if (
        type(run_id) is str
        and 0 < len(run_id) <= RUN_ID_MAX
        and _RUN_ID_CHARS.issuperset(run_id)
        and run_id[0] != "."
        and run_id[-1] != "."
        and ".." not in run_id
    ):
        return None
    return (
        f"run id {run_id!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
        "not starting or ending with '.' and without '..'"
    )


def project_name_problem(name: object, noun: str = "project name") -> str | None:
    """Why ``name`` cannot be a project (or user, ``noun``) name, or None if it can.

    1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit. User names follow the
    same rule: they appear in URLs beside project names (``/p/{owner}/{project}``).
    """
    if (
        type(name) is str
        and 0 < len(name) <= PROJECT_NAME_MAX
        and name[0] in _ALNUM
        and _PROJECT_NAME_CHARS.issuperset(name)
    ):
        return None
    return (
        f"{noun} {name!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    )


def key_problem(key: object) -> str | None:
    """Why ``key`` cannot be a metric key, or None if it can."""
    if type(key) is not str:
        return f"keys must be strings, not {type(key).__name__}"
    if not key:
        return "keys must not be empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"keys are at most {MAX_KEY_LENGTH} characters"
    if STAT_SEPARATOR in key:
        return f"{STAT_SEPARATOR!r} is reserved for statistics series (e.g. 'grad#norm')"
    if not key.isprintable():
        return "keys must not contain control characters"
    return None


def __getattr__(name: str) -> re.Pattern[str]:
    # RUN_ID_RE, PROJECT_NAME_RE, SHA256_RE: compiled once, on first use.
    pattern = _PATTERNS.get(name)
    if pattern is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import re

    compiled = re.compile(pattern)
    globals()[name] = compiled
    return compiled
