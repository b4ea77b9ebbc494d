"""Private files: what the server stores is readable by the account that runs it, nobody else.

A data folder holds every run, file and password hash, so it must not be readable by the
other users of the machine, whatever umask the server was started with. Two fences:

- :func:`private_umask` sets the process's umask to ``077`` while the server (or an admin
  command) runs, so everything it creates, by whatever library (SQLite, the object store,
  Parquet writers, temporary files), is ``0600`` for files and ``0700`` for folders;
- the folders and the SQLite file the server knows by name are created here with those
  modes explicitly (:func:`private_dir`, :func:`private_file`), so that code which opens a
  database in-process without the umask (a library caller, a test) makes them private too.
  SQLite gives the ``-wal`` and ``-shm`` files the mode of the database file.

An existing folder keeps the mode its owner gave it: :func:`exposure_warning` says, in one
line, which of the server's paths others can open, and how to close them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Run the block with umask ``077`` (process-wide: every thread creates private files);
    the caller's umask comes back afterwards."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def private_dir(path: Path) -> None:
    """Create the folder ``path`` and any missing parents with mode ``0700``; a folder that
    exists is left as it is."""
    missing: list[Path] = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made by another process meanwhile: its mode stands
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode passes through the umask


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode ``0600`` unless it exists (an empty file is a valid,
    empty SQLite database)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def others_can_open(path: Path) -> bool:
    """Whether the group or others have any permission on ``path`` (a folder others may
    only traverse still lets them open a file whose name they know, like ``gradexp.db``)."""
    try:
        return bool(stat.S_IMODE(path.stat().st_mode) & 0o077)
    except OSError:
        return False


def exposure_warning(paths: Iterable[Path]) -> str | None:
    """One line naming those of ``paths`` that others can open, with the fix; None if none."""
    seen: list[Path] = []
    for path in paths:
        if path not in seen and others_can_open(path):
            seen.append(path)
    if not seen:
        return None
    listed = ", ".join(f"{p} (mode {stat.S_IMODE(p.stat().st_mode):04o})" for p in seen)
    fix = " ".join(f"'{p}'" for p in seen)
    return (
        f"other users of this machine can open {listed}, which hold runs, files and password "
        f"hashes: run `chmod -R go= {fix}` to make them private"
    )
