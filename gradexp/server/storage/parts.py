"""The parts of an upload: bytes that arrive part by part, kept until they are joined.

Both ways large bytes reach the server keep their parts here: run files sent in parts
(``domain/uploads.py``) and artifact files sent in chunks (``domain/artifact_uploads.py``).
An upload lives under a key prefix; every part but the last is ``part_bytes`` long, so a
part is named by its offset alone and a retried part lands where it did before, with the
same bytes. Which parts are stored is read from the store itself, so any server process
can continue an upload another one started.

Two layouts, one interface (:class:`Parts`):

- **a local folder**: the parts are written at their offsets into one file,
  ``<prefix>/data``, and an empty marker ``<prefix>/<offset>`` says a part is complete
  (written after its bytes, so a part cut off halfway has no marker and is sent again).
  Joining reads the file once through the hash and renames it into place: the bytes are
  written to disk once, which is what a large upload costs on a local disk.
- **S3** (any other store): each part is its own object, ``<prefix>/<offset>``. Joining
  streams them, in order, through the hash into a multipart write of a temporary object,
  renamed into place once the hash checks out.

Either way a reader never sees an object whose bytes do not hash to its name, and the
hashing and file work run in worker threads (hashlib and file I/O let go of the GIL), so a
join of several GB leaves the event loop free.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import obstore

from gradexp.server.storage.objects import HashMismatch, ObjectStore

__all__ = ["DATA", "Parts", "PartsMissing"]

#: The file that holds a local upload's bytes at their offsets.
DATA = "data"
_READ_BYTES = 8 * 1024 * 1024  # one buffer, reused, while a local join hashes the file
#: Chunk size and concurrency of the multipart write that joins S3 parts (memory: about
#: this many chunks, plus the part being read).
JOIN_CHUNK_BYTES = 16 * 1024 * 1024
JOIN_CONCURRENCY = 4
#: Up to this size a joined object is written with one PUT.
SINGLE_PUT_BYTES = 16 * 1024 * 1024


class PartsMissing(Exception):
    """A part the join needs is not in the store (dropped, or never sent)."""


def _part_name(offset: int) -> str:
    return f"{int(offset):020d}"


class Parts:
    """The parts of one upload under ``prefix`` (a key prefix without a trailing ``/``)."""

    def __init__(self, objects: ObjectStore, prefix: str) -> None:
        self.objects = objects
        self.prefix = prefix.rstrip("/")
        folder = objects.folder
        self._local: Path | None = None if folder is None else folder / self.prefix

    async def write(self, offset: int, data: bytes) -> None:
        """Store the part that starts at ``offset`` (the same bytes again: a no-op in effect)."""
        if self._local is not None:
            await asyncio.to_thread(_write_local, self._local, offset, data)
        else:
            await self.objects.put(f"{self.prefix}/{_part_name(offset)}", data)

    async def offsets(self) -> list[int]:
        """Where the stored parts start, in order."""
        if self._local is not None:
            return await asyncio.to_thread(_local_offsets, self._local)
        out = []
        async for obj in self.objects.list(self.prefix + "/"):
            name = obj.key.rsplit("/", 1)[-1]
            if name.isdigit():
                out.append(int(name))
        return sorted(out)

    async def received(self, size: int, part_bytes: int) -> int:
        """How many bytes from the start of a ``size``-byte upload the parts hold."""
        expected = 0
        for offset in await self.offsets():
            if offset != expected:
                break
            expected = min(size, offset + part_bytes)
        return expected

    async def join(self, key: str, sha256: str, size: int, part_bytes: int) -> None:
        """Put the parts together as the object ``key`` if they hash to ``sha256``.

        Raises :class:`PartsMissing` when a part is not there, :class:`HashMismatch` when
        the bytes are not the ones named (the parts stay: :meth:`discard` drops them).
        """
        offsets = list(range(0, size, part_bytes))
        if self._local is not None:
            folder = self.objects.folder
            assert folder is not None
            await asyncio.to_thread(_join_local, self._local, offsets, size, sha256, folder / key)
        else:
            await self._join_objects(key, sha256, size, offsets)
        await self.discard()

    async def discard(self) -> None:
        """Drop every part (joined, refused, or abandoned)."""
        if self._local is not None:
            await asyncio.to_thread(_remove_local, self._local)
            return
        async for obj in self.objects.list(self.prefix + "/"):
            await self.objects.delete(obj.key)

    async def _join_objects(self, key: str, sha256: str, size: int, offsets: list[int]) -> None:
        digest = hashlib.sha256()
        store = self.objects.store

        async def joined() -> AsyncIterator[bytes]:
            total = 0
            for offset in offsets:
                part = await self.objects.get(f"{self.prefix}/{_part_name(offset)}")
                if part is None:
                    raise PartsMissing(offset)
                await asyncio.to_thread(digest.update, part)  # one hop per part, not per chunk
                total += len(part)
                yield part
            if total != size:
                raise HashMismatch

        temp = f"{key}.upload-{uuid.uuid4().hex}"
        try:
            if size <= SINGLE_PUT_BYTES:
                body = b"".join([part async for part in joined()])
                await obstore.put_async(store, temp, body, use_multipart=False)
            else:
                await obstore.put_async(
                    store,
                    temp,
                    joined(),
                    use_multipart=True,
                    chunk_size=JOIN_CHUNK_BYTES,
                    max_concurrency=JOIN_CONCURRENCY,
                )
            if digest.hexdigest() != sha256:
                raise HashMismatch
            await obstore.rename_async(store, temp, key)
        except BaseException:
            await self.objects.delete(temp)
            raise


# --- the local layout (worker threads) ---


def _write_local(folder: Path, offset: int, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / DATA, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], offset + written)
    finally:
        os.close(fd)
    # The marker comes after the bytes: a part cut off halfway is not counted.
    (folder / _part_name(offset)).touch()


def _local_offsets(folder: Path) -> list[int]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if n.isdigit())


def _join_local(folder: Path, offsets: list[int], size: int, sha256: str, target: Path) -> None:
    if set(offsets) - set(_local_offsets(folder)):
        raise PartsMissing(folder)
    data = folder / DATA
    digest = hashlib.sha256()
    buf = bytearray(_READ_BYTES)
    view = memoryview(buf)
    total = 0
    try:
        with open(data, "rb", buffering=0) as f:
            while total < size and (n := f.readinto(view[: min(len(buf), size - total)])):
                digest.update(view[:n])
                total += n
            extra = f.read(1)
    except FileNotFoundError:
        raise PartsMissing(folder) from None
    if total != size or extra or digest.hexdigest() != sha256:
        raise HashMismatch
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(data, target)  # atomic: the object appears whole, with the bytes checked


def _remove_local(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    # The upload's folder is gone; its parents (".../uploads") are left for the next one.
    with contextlib.suppress(OSError):
        folder.parent.rmdir()
