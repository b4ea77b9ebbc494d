"""Artifacts on the wire: their names, aliases, manifest digest and upload sizes.

An artifact is a named, versioned set of files in a project (a model checkpoint, a data
set). Its content is its manifest: each file's path in the artifact and the sha256 and
size of its bytes (or, for a reference, the URI it names). The manifest digest below is
what makes two logs of the same content the same version, on the client and on the
server alike; both import it from here. ``docs/protocol.md`` ("Artifacts") is the prose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "ARTIFACT_CHUNK_BYTES",
    "MAX_ARTIFACT_FILES",
    "MAX_ARTIFACT_FILE_BYTES",
    "MAX_ARTIFACT_METADATA_BYTES",
    "MAX_ARTIFACT_NAME",
    "alias_problem",
    "artifact_name_problem",
    "manifest_digest",
    "parse_ref",
    "version_number",
]

MAX_ARTIFACT_NAME: Final = 128
MAX_ARTIFACT_FILES: Final = 100_000  # entries in one version's manifest
MAX_ARTIFACT_FILE_BYTES: Final = 1024**4  # one file: 1 TiB
MAX_ARTIFACT_METADATA_BYTES: Final = 256 * 1024  # metadata and description, as JSON
#: The size of one upload request of a large file: the client reads, and the server
#: receives, this much at a time, and an interrupted upload resumes at a chunk boundary.
ARTIFACT_CHUNK_BYTES: Final = 16 * 1024 * 1024

_ALNUM: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS: Final = _ALNUM | {".", "_", "-"}


def artifact_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name an artifact (or an alias), or None.

    1-128 of ``A-Z a-z 0-9 . _ -``, not starting with ``.``: it appears in URLs and in
    ``name:alias`` references, so no ``/`` or ``:``.
    """
    if type(name) is not str or not name:
        return "must be a non-empty string"
    if len(name) > MAX_ARTIFACT_NAME:
        return f"must be at most {MAX_ARTIFACT_NAME} characters"
    if name[0] == "." or not _NAME_CHARS.issuperset(name):
        return "may hold only letters, digits, '.', '_' and '-' (and not start with '.')"
    return None


def _is_version(text: str) -> bool:
    return len(text) > 1 and text[0] == "v" and text[1:].isdigit()


def alias_problem(alias: Any) -> str | None:
    """Why ``alias`` cannot be an alias, or None (``v3`` and the like name versions)."""
    problem = artifact_name_problem(alias)
    if problem is None and _is_version(alias):
        return "looks like a version (v0, v1, ...), which cannot be an alias"
    return problem


def parse_ref(ref: str) -> tuple[str, str]:
    """``"name:alias"``, ``"name:v3"`` or ``"name"`` -> ``(name, "alias" | "v3" | "latest")``.

    The part after ``:`` may also be a manifest digest (64 hex characters).
    """
    name, sep, which = ref.partition(":")
    return name, (which if sep and which else "latest")


def version_number(which: str) -> int | None:
    """``"v3"`` -> 3; None when ``which`` is not a version."""
    return int(which[1:]) if _is_version(which) else None


def manifest_digest(files: Iterable[Mapping[str, Any]]) -> str:
    """The sha256 of a manifest: one line per entry, in path order.

    A file's line is ``path``, its sha256 and its size; a reference's is ``path`` and
    ``ref:`` and its URI. Name, type, description, metadata and aliases are not part of
    it: they describe a version, they are not its content.
    """
    h = hashlib.sha256()
    for entry in sorted(files, key=lambda e: str(e["path"])):
        if entry.get("ref") is not None:
            line = f"{entry['path']}\tref:{entry['ref']}\n"
        else:
            line = f"{entry['path']}\t{entry['sha256']}\t{int(entry['size'])}\n"
        h.update(line.encode())
    return h.hexdigest()
