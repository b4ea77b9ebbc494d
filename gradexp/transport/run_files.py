"""Uploading the bytes behind a batch's records, before the batch itself is POSTed.

- Run files (the ``file`` records: ``save()``, images, tables...): each file the server
  lacks (``HEAD`` on its blob answers 404) is PUT whole or, above ``LARGE_FILE_BYTES``,
  sent in parts (docs/protocol.md, "Uploads in parts"; the loop is ``parts.py``). The
  server keeps where an upload in parts stands, so a lost connection, a server restart
  or a new process (``gradexp sync``) continues from the last part it stored.
- Artifact files (the ``artifact`` records, action ``log``): only the bytes the server
  lacks, in chunks (``artifacts.py``).

:class:`RunFileUploads` is a base class of :class:`gradexp.transport.uploader.Uploader`,
which provides ``client``, ``run_dir``, ``run_id``, ``file_progress``, ``_writer_query``,
``_uploaded_blobs``, ``create_run`` and ``_refusal``. It runs on the uploader's loop;
files are read in the loop's executor. A refusal, or a file that cannot be read, raises
:class:`UploadStopped`: the run's upload stops and its run file stays for ``gradexp sync``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gradexp.protocol.wire import API_PREFIX, FILES_DIR
from gradexp.transport.artifacts import upload_artifact_files
from gradexp.transport.parts import FileChanged, send_parts
from gradexp.transport.refusals import UploadStopped

if TYPE_CHECKING:
    from gradexp.protocol.runfile import RunDir
    from gradexp.transport.base import Batch
    from gradexp.transport.client import Reply, ServerClient

__all__ = ["LARGE_FILE_BYTES", "RunFileUploads"]

#: Files larger than this are sent in parts (resumable, one part in memory at a time).
LARGE_FILE_BYTES = 8 * 1024 * 1024


class _Vanished(Exception):
    """The upload in parts is gone from the server (joined or dropped): start it again."""


class RunFileUploads:
    """Sends the files a batch's records name (see the module docstring)."""

    client: ServerClient
    run_dir: RunDir
    run_id: str
    file_progress: Callable[[str, int, int], None] | None
    _writer_query: str  # "?writer=N" for a distributed run's other ranks, else ""
    _uploaded_blobs: set[str]  # the sha256 of the run files the server holds

    if TYPE_CHECKING:  # provided by Uploader

        async def create_run(self, give_up_after: float | None = None) -> dict[str, Any]: ...

        def _refusal(self, reply: Reply) -> str: ...

    async def _upload_blob(self, info: dict[str, Any]) -> None:
        """The bytes of one ``file`` entry of a batch, unless the server has them."""
        sha = str(info.get("sha256", ""))
        if not sha or sha in self._uploaded_blobs:
            return
        local = _local_path(self.run_dir.path, info)
        if local is None:
            raise UploadStopped(
                f"run {self.run_id} names a file outside its folder: {info['path']!r}"
            )
        content_type = str(info.get("content_type") or "application/octet-stream")
        size = int(info.get("size") or 0)
        if size > LARGE_FILE_BYTES:
            await self._upload_in_parts(sha, local, size, content_type, str(info["path"]))
            self._uploaded_blobs.add(sha)
            return
        url = f"{API_PREFIX}/runs/{self.run_id}/blobs/{sha}{self._writer_query}"
        what = f"upload a file of run {self.run_id} to {self.client.base_url}"
        head = await self.client.request("HEAD", url, what=what)
        if head.status == 200:
            self._uploaded_blobs.add(sha)
            return
        if head.status == 404 and head.code == "run_not_found":
            await self.create_run()
        elif head.status not in (404, 405):
            raise UploadStopped(self._refusal(head))
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(None, _read_file, local)  # executor thread
        except OSError as exc:
            raise UploadStopped(
                f"file {local} of run {self.run_id} cannot be read ({exc.strerror})"
            ) from None
        put = await self.client.request(
            "PUT", url, data=data, headers={"Content-Type": content_type}, what=what
        )
        if put.status not in (200, 201):
            raise UploadStopped(self._refusal(put))
        self._uploaded_blobs.add(sha)

    async def _upload_artifacts(self, batch: Batch) -> None:
        """The bytes the server lacks of the batch's artifacts (transport/artifacts.py)."""
        if batch.artifacts:
            problem = await upload_artifact_files(
                self.client,
                self.run_id,
                batch.artifacts,
                self._refusal,
                progress=self.file_progress,
            )
            if problem is not None:
                raise UploadStopped(problem)

    async def _upload_in_parts(
        self, sha: str, local: str, size: int, content_type: str, name: str
    ) -> None:
        """Send a large file part by part (docs/protocol.md, "Uploads in parts").

        One part is in memory at a time (``transport/parts.py``). The server keeps where
        the upload stands, so after a lost connection, a server restart or a new process
        (``gradexp sync``), the upload continues from the last part the server stored.
        """
        base = f"{API_PREFIX}/runs/{self.run_id}/uploads"
        what = f"upload {name} of run {self.run_id} to {self.client.base_url}"
        body = {"sha256": sha, "size": size, "content_type": content_type}
        try:
            fd = os.open(local, os.O_RDONLY)
        except OSError as exc:
            raise UploadStopped(
                f"file {local} of run {self.run_id} cannot be read ({exc.strerror})"
            ) from None
        try:
            for _ in range(5):  # an upload that vanished (joined by another process) restarts
                start = await self.client.request(
                    "POST", base + self._writer_query, json=body, what=what
                )
                if start.status == 404 and start.code == "run_not_found":
                    await self.create_run()
                    continue
                if start.status != 200:
                    raise UploadStopped(self._refusal(start))
                if start.body.get("done"):
                    self._file_progress(name, size, size)
                    return
                upload = f"{base}/{start.body['upload_id']}"
                offset = int(start.body["offset"])
                part_bytes = int(start.body["part_bytes"])
                if await self._send_parts(fd, upload, offset, part_bytes, size, name, what):
                    return
            raise UploadStopped(
                f"the server keeps losing the upload of {name} of run {self.run_id}"
            )
        finally:
            os.close(fd)

    async def _send_parts(
        self, fd: int, upload: str, offset: int, part_bytes: int, size: int, name: str, what: str
    ) -> bool:
        """Send the parts from ``offset`` on and join them; False if the upload vanished."""

        async def put(at: int, data: bytes) -> int | None:
            reply = await self.client.request(
                "PUT",
                f"{upload}?offset={at}{self._writer_query.replace('?', '&')}",
                data=data,
                headers={"Content-Type": "application/octet-stream"},
                what=what,
            )
            if reply.status == 200:
                return int(reply.body["offset"])
            if reply.status == 409 and reply.code == "upload_offset":
                return int(reply.body["error"]["offset"])  # the server's word wins
            if reply.status == 404 and reply.code == "upload_not_found":
                raise _Vanished
            raise UploadStopped(self._refusal(reply))

        self._file_progress(name, offset, size)
        try:
            while True:
                await send_parts(
                    fd, size, offset, part_bytes, put, lambda n: self._file_progress(name, n, size)
                )
                done = await self.client.request(
                    "POST", f"{upload}/complete{self._writer_query}", what=what
                )
                if done.status in (200, 201):
                    return True
                if done.status == 409 and done.code == "upload_offset":
                    offset = int(done.body["error"]["offset"])
                    continue
                if done.status == 404 and done.code == "upload_not_found":
                    return False
                raise UploadStopped(self._refusal(done))
        except _Vanished:
            return False
        except FileChanged:
            raise UploadStopped(f"{name} of run {self.run_id} changed on disk while sent") from None

    def _file_progress(self, name: str, sent: int, size: int) -> None:
        if self.file_progress is not None:
            self.file_progress(name, sent, size)


def _local_path(run_dir: str, info: dict[str, Any]) -> str | None:
    """Where the bytes of a ``file`` record lie: its ``local`` path under the run folder
    (the snapshots ``save()`` takes), else its ``path`` under ``files/``; None for a path
    that would leave the folder (an absolute one, or one with '..')."""
    local = info.get("local")
    path = str(local if isinstance(local, str) else info.get("path", ""))
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        return None
    if isinstance(local, str):
        return os.path.join(run_dir, *parts)
    return os.path.join(run_dir, FILES_DIR, *parts)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
