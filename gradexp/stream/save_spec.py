"""``save()``: which files a glob names, and under which run file names.

``run.save(glob, base_path=None, policy="live")`` is resolved here, on the caller's
thread: the glob becomes an absolute pattern under an absolute base folder, and each
match is named by its path relative to that base (``/`` separators). Names never leave
the base: a match whose relative path would start with ``..`` is skipped, so no name
can point outside the run's ``files/`` on the server. The copying and uploading happen
on the stream thread (:mod:`gradexp.stream.saving`), which matches the same pattern again
for ``live`` and ``end``.

Symbolic links are followed to what they point at (a link to a checkpoint saves the
checkpoint), but the name is the link's own path under the base. Only regular files are
saved: a directory, a FIFO or a device that matches is left out.

Standard library only: ``init()`` does not import this module; ``save()`` does.
"""

from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass

__all__ = ["POLICIES", "SaveSpec", "match_files", "resolve_save"]

#: ``live``: saved now and again whenever it changes; ``now``: once, as it is now;
#: ``end``: once, as it is when the run finishes.
POLICIES = ("live", "now", "end")
#: The longest run file name (the server's limit).
MAX_NAME = 512
_MAGIC = frozenset("*?[")


@dataclass(frozen=True)
class SaveSpec:
    """One ``save()`` call, resolved: an absolute glob, the folder names are relative to,
    and the policy."""

    pattern: str
    base: str
    policy: str


def resolve_save(
    glob_or_path: str | os.PathLike[str], base_path: str | os.PathLike[str] | None, policy: str
) -> SaveSpec:
    """The :class:`SaveSpec` of a ``save()`` call; ``ValueError`` for a bad argument."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of 'live', 'now', 'end', not {policy!r}")
    raw = os.path.expanduser(os.fspath(glob_or_path))
    if not raw:
        raise ValueError("save() needs a file name or a glob")
    if base_path is not None:
        base = os.path.abspath(os.path.expanduser(os.fspath(base_path)))
        pattern = os.path.normpath(os.path.join(base, raw))
        if os.path.commonpath([base, pattern]) != base:
            raise ValueError(
                f"{raw!r} is outside base_path {base}: give a glob under it, or another base_path"
            )
    elif os.path.isabs(raw):
        pattern = os.path.normpath(raw)
        base = _fixed_parent(pattern)
    else:
        base = os.getcwd()
        pattern = os.path.normpath(os.path.join(base, raw))
        if os.path.commonpath([base, pattern]) != base:
            raise ValueError(
                f"{raw!r} leaves the current folder: pass base_path= to say what names are "
                "relative to"
            )
    return SaveSpec(pattern, base, policy)


def _fixed_parent(pattern: str) -> str:
    """The folder above the first part of an absolute pattern with a wildcard in it
    (``/data/run/*.pt`` -> ``/data/run``; ``/data/ckpt.pt`` -> ``/data``)."""
    parts = pattern.split(os.sep)
    for i, part in enumerate(parts):
        if _MAGIC & set(part):
            return os.sep.join(parts[:i]) or os.sep
    return os.path.dirname(pattern)


def match_files(spec: SaveSpec) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(name, path)...], [problems])``: the regular files the spec matches now, by
    name, and one line for each match left out (and why)."""
    found: list[tuple[str, str]] = []
    problems: list[str] = []
    for path in sorted(glob.glob(spec.pattern, recursive=True)):
        rel = os.path.relpath(path, spec.base)
        name = rel.replace(os.sep, "/")
        parts = name.split("/")
        if (
            rel.startswith(os.pardir)
            or os.path.isabs(rel)
            or any(p in ("", ".", "..") for p in parts)
        ):
            problems.append(f"{path} is outside {spec.base}; not saved")
            continue
        if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
            problems.append(f"{path}: the name {name!r} is too long or has control characters")
            continue
        try:
            st = os.stat(path)  # follows a link to what it points at
        except OSError as exc:
            problems.append(f"{path} cannot be read ({exc.strerror or exc}); not saved")
            continue
        if stat.S_ISDIR(st.st_mode):
            continue  # a folder that a glob matched: its files need a glob of their own
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{path} is not a regular file; not saved")
            continue
        found.append((name, path))
    return found, problems
