"""Sending a file part by part: the one loop both uploads in parts use.

Run files sent in parts (``run_files.py``, docs/protocol.md "Uploads in parts") and
artifact files sent in chunks (``artifacts.py``) differ only in the request that carries a
part and in how the server says where it stands; :func:`send_parts` is the rest.

Each part is read with ``os.pread`` in the loop's executor just before it is sent, and
dropped once it is: one part in memory (and the socket's copy of what the kernel has not
taken yet), whatever the file's size. Reading ahead was measured and left out: parts come
from the page cache in milliseconds, while a part held twice costs its size again. The
server's answer after each part (where its upload stands) wins over our own count: after
a lost reply, a second process, or a part the server dropped, the next part read is the
one it asks for.
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

    Returns where the upload stands at the end (``size``, or where ``put`` said stop with
    None). ``progress`` is called with the bytes the server holds after each part.
    Raises :class:`FileChanged`, and whatever ``put`` raises.
    """
    loop = asyncio.get_running_loop()
    while offset < size:
        length = min(part_bytes, size - offset)
        data = await loop.run_in_executor(None, os.pread, fd, length, offset)  # executor
        if len(data) != length:
            raise FileChanged(offset)
        stands = await put(offset, data)
        del data  # one part in memory at a time
        if stands is None:
            return offset + length
        offset = stands
        if progress is not None:
            progress(offset)
    return offset
