"""Copies of the caller's files, hashed: what ``save()`` snapshots and ``add_file`` keeps.

A copy is made by the kernel (``shutil.copyfile``: ``copy_file_range`` or ``sendfile``
on Linux, no bytes through Python) and then hashed by reading it back, while it is still
in the page cache. That is the least work a copy and a hash can cost, and measured about
twice as fast as reading, hashing and writing 1 MiB at a time in Python. The hash is
the copy's, so what is recorded is exactly what is uploaded, however the original
changes meanwhile. Memory is one read buffer, whatever the file's size.
"""

from __future__ import annotations

import hashlib
import os
import shutil

__all__ = ["FileTooLarge", "copy_hashed", "hash_file"]

_READ = 1024 * 1024  # bytes per read while hashing: one buffer, reused


class FileTooLarge(Exception):
    """The file is over the size the caller allows."""


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """The sha256 and size of a file, read 1 MiB at a time into one buffer."""
    digest = hashlib.sha256()
    buf = bytearray(_READ)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def copy_hashed(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], max_bytes: int | None = None
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` and hash the copy: ``(sha256, size)``. Raises
    :class:`FileTooLarge` (before copying, when the size already says so) past
    ``max_bytes``, and ``OSError`` as the file system does; ``dst`` may be left behind."""
    if max_bytes is not None and os.stat(src).st_size > max_bytes:
        raise FileTooLarge(src)
    shutil.copyfile(src, dst)
    sha, size = hash_file(dst)
    if max_bytes is not None and size > max_bytes:  # it grew while copied
        raise FileTooLarge(src)
    return sha, size
