"""Uploading an artifact's files: only the bytes the server lacks, in chunks, resumable.

Called by the uploader before it POSTs a batch that holds ``artifact`` records (action
``log``), on the uploader's loop (the stream thread, or ``gradexp sync``):

1. ``POST /runs/{id}/artifact-blobs/missing`` with every file's sha256 and size: the
   server answers which it lacks in the run's project, and for each how many bytes it
   already received (an earlier upload that was cut off).
2. For each, ``PUT /runs/{id}/artifact-blobs/{sha256}?offset=N&size=S`` with the next
   ``ARTIFACT_CHUNK_BYTES`` of the file, from where the server stands, until it answers
   ``complete`` (it checks the whole file's sha256 then).

Memory is one chunk, whatever the file's size: chunks are read with ``os.pread`` in the
loop's executor, one at a time (``transport/parts.py``). Files identical to ones the
project already holds (another version, another run) are never sent again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gradexp.protocol.artifacts import ARTIFACT_CHUNK_BYTES
from gradexp.protocol.wire import API_PREFIX
from gradexp.transport.client import Reply, ServerClient
from gradexp.transport.parts import FileChanged, send_parts

__all__ = ["FileProgress", "upload_artifact_files"]

#: Told ``(name, bytes the server holds, size)`` as a large file goes up.
FileProgress = Callable[[str, int, int], None]

#: Files asked about in one ``missing`` request.
ASK_PAGE = 1000


async def upload_artifact_files(
    client: ServerClient,
    run_id: str,
    records: list[dict[str, Any]],
    refusal: Callable[[Reply], str],
    chunk_bytes: int = ARTIFACT_CHUNK_BYTES,
    progress: FileProgress | None = None,
) -> str | None:
    """Upload what the server lacks of these records' files; None, or why it cannot.

    A reason (a file gone or changed since it was logged, a refusal) stops the run's
    upload: its run file stays for ``gradexp sync``. ``progress`` is told, for each file
    of more than one chunk, ``(artifact/path, bytes the server holds, size)`` as it goes.
    """
    wanted: dict[str, dict[str, Any]] = {}
    for rec in records:
        if rec.get("action") != "log":
            continue
        for entry in rec.get("files") or ():
            sha = entry.get("sha256")
            if sha and sha not in wanted:
                wanted[sha] = {**entry, "artifact": rec.get("name", "")}
    if not wanted:
        return None
    what = f"upload the files of an artifact of run {run_id} to {client.base_url}"
    shas = list(wanted)
    for start in range(0, len(shas), ASK_PAGE):
        page = shas[start : start + ASK_PAGE]
        reply = await client.request(
            "POST",
            f"{API_PREFIX}/runs/{run_id}/artifact-blobs/missing",
            json={"blobs": [{"sha256": s, "size": int(wanted[s]["size"])} for s in page]},
            what=what,
        )
        if reply.status != 200:
            return refusal(reply)
        for item in reply.body.get("missing", ()):
            problem = await _upload_one(
                client,
                run_id,
                wanted[item["sha256"]],
                int(item.get("received", 0)),
                refusal,
                chunk_bytes,
                what,
                progress,
            )
            if problem is not None:
                return problem
    return None


class _Refused(Exception):
    """Why the upload of a file stops (the run's upload stops with it)."""


async def _upload_one(
    client: ServerClient,
    run_id: str,
    entry: dict[str, Any],
    received: int,
    refusal: Callable[[Reply], str],
    chunk_bytes: int,
    what: str,
    progress: FileProgress | None = None,
) -> str | None:
    sha, size, local = entry["sha256"], int(entry["size"]), entry.get("local")
    gone = f"file {local} of artifact {entry['artifact']} (logged by run {run_id}) cannot be read"
    if not local:
        return f"{gone}: the record names no local file"
    try:
        fd = os.open(local, os.O_RDONLY)
    except OSError as exc:
        return f"{gone} ({exc.strerror}); keep logged files until the run is uploaded"
    url = f"{API_PREFIX}/runs/{run_id}/artifact-blobs/{sha}"
    name = f"{entry['artifact']}/{entry.get('path') or os.path.basename(local)}"
    repairs = 0

    async def put(at: int, data: bytes) -> int | None:
        nonlocal repairs
        reply = await client.request(
            "PUT",
            f"{url}?offset={at}&size={size}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            what=what,
        )
        if reply.status in (200, 201):
            return None if reply.body.get("complete") else int(reply.body["received"])
        raw_err = reply.body.get("error")
        err: dict[str, Any] = raw_err if isinstance(raw_err, dict) else {}
        if reply.status == 409 and reply.code == "upload_offset" and repairs < 5:
            repairs += 1  # another writer moved on (or the server lost a part)
            return int(err.get("received", 0))
        if reply.code == "hash_mismatch":
            raise _Refused(
                f"file {local} of artifact {entry['artifact']} changed after it was "
                "logged (its sha256 differs); log the artifact again"
            )
        raise _Refused(refusal(reply))

    def moved(sent: int) -> None:
        if progress is not None:
            progress(name, sent, size)

    try:
        if size > chunk_bytes:
            moved(received)
        # A file of one chunk goes whole; a larger one in chunks from where the server
        # stands. Either way the loop ends when the server says the file is complete.
        if size == 0:
            await put(0, b"")
        else:
            await send_parts(fd, size, received, chunk_bytes, put, moved)
        if size > chunk_bytes:
            moved(size)
        return None
    except FileChanged:
        return f"{gone}: it is shorter than when it was logged; log it again"
    except _Refused as exc:
        return str(exc)
    finally:
        os.close(fd)
