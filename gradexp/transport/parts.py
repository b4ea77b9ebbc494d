"""Sending a file part by part: the one loop both uploads in parts use.

Run files sent in parts (``uploader.py``, docs/protocol.md "Uploads in parts") and
artifact files sent in chunks (``artifacts.py``) differ only in the request that carries a
part and in how the server says where it stands; :func:`send_parts` is the rest.

Each part is read with ``os.pread`` in the loop's executor while the previous one is on
the wire, so reading the disk and sending overlap; memory is two parts at most, whatever
the file's size. The server's answer after each part (where its upload stands) wins over
our own count: after a lost reply, a second process, or a part the server dropped, the
next part read is the one it asks for.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

__all__ = ["FileChanged", "PutPart", "send_parts"]

#: Sends the part at an offset; returns where the upload stands after it (the next
#: offset to send), or None when the server needs no more of the file.
PutPart = Callable[[int, bytes], Awaitable[int | None]]


class FileChanged(Exception):
    """The file is shorter than when it was logged (it changed on disk)."""


async def send_parts(
    fd: int,
    size: int,
    offset: int,
    part_bytes: int,
    put: PutPart,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send the parts of the open file ``fd`` (``size`` bytes) from ``offset`` on.

    Returns where the upload stands at the end (``size``, or less if ``put`` said stop
    with None). ``progress`` is called with the bytes the server holds after each part.
    Raises :class:`FileChanged`, and whatever ``put`` raises.
    """
    loop = asyncio.get_running_loop()

    def read(at: int) -> tuple[int, asyncio.Future[bytes]]:
        return at, loop.run_in_executor(None, os.pread, fd, min(part_bytes, size - at), at)

    pending = read(offset) if offset < size else None
    try:
        while pending is not None:
            at, reading = pending
            data = await reading
            if len(data) != min(part_bytes, size - at):
                pending = None
                raise FileChanged(at)
            after = at + len(data)
            pending = read(after) if after < size else None  # read ahead while this one goes
            stands = await put(at, data)
            del data  # the part is sent: only the one read ahead stays in memory
            if stands is None:
                return after
            if progress is not None:
                progress(stands)
            if pending is not None and pending[0] == stands:
                continue
            if pending is not None:  # the server stands elsewhere: that read is wasted
                await asyncio.wait([pending[1]])
            pending = read(stands) if stands < size else None
            if pending is None:
                return stands
        return offset  # nothing was left to send
    finally:
        if pending is not None:  # the caller closes fd: let the read in flight end first
            await asyncio.wait([pending[1]])
