"""The object store: blobs and Parquet exports, in a local folder or an S3 bucket.

One interface over obstore's ``LocalStore`` and ``S3Store``. Object keys are built only
here, from values that were validated first (a project id, a run id, a sha256), so no
client-supplied name ever becomes a file path:

    projects/<project_id>/runs/<run_id>/blobs/<sha256>
    projects/<project_id>/runs/<run_id>/history.parquet
    projects/<project_id>/runs/<run_id>/uploads/<upload_id>/...   (parts, until joined)

S3 settings come from the standard AWS environment variables: the server's settings read
the endpoint (``AWS_ENDPOINT_URL``, for any S3-compatible store) and the region
(``AWS_REGION`` / ``AWS_DEFAULT_REGION``) and pass them in; obstore reads the credentials
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``). Plain http is allowed only for a
loopback endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, S3Store

from gradexp.protocol.names import RUN_ID_RE, SHA256_RE
from gradexp.server.storage.private import private_dir

#: An upload's id (domain/uploads.py): 32 lowercase hex characters.
UPLOAD_ID_RE = re.compile(r"[0-9a-f]{32}")

# Blobs up to this size are hashed in memory and written once; larger ones stream to a
# temporary object that is renamed into place once its hash checks out.
IN_MEMORY_BLOB_BYTES = 8 * 1024 * 1024


class StoredObject(NamedTuple):
    """One object as a listing shows it."""

    key: str
    size: int
    modified: float  # Unix seconds


class HashMismatch(ValueError):
    """The bytes received do not hash to the name they were sent under."""


class BlobTooLarge(ValueError):
    """A blob upload went past the size limit."""


def _is_loopback(host: str | None) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or (host or "").startswith("127.")


def describe_store(url: str, endpoint: str | None = None) -> str:
    """The store, as the start banner prints it."""
    if url.startswith("s3://"):
        return f"{url} (endpoint {endpoint})" if endpoint else f"{url} (AWS)"
    return f"local folder {url}"


def local_store_path(url: str) -> Path | None:
    """The folder of a local store URL (a path or ``file:///path``); None for S3."""
    if url.startswith("s3://"):
        return None
    return Path(url[len("file://") :] if url.startswith("file://") else url).expanduser()


def open_store(url: str, endpoint: str | None = None, region: str | None = None) -> Any:
    """An obstore store for ``s3://bucket/prefix``, ``file:///path`` or a plain folder path
    (``endpoint`` and ``region``: an S3 store's, when not AWS's defaults)."""
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"the store URL {url!r} names no bucket: use s3://BUCKET/PREFIX")
        config: dict[str, Any] = {}
        client_options: dict[str, Any] = {}
        if endpoint:
            config["endpoint"] = endpoint
            if endpoint.startswith("http://"):
                if not _is_loopback(urlsplit(endpoint).hostname):
                    raise ValueError(
                        f"refusing plain http to a non-loopback S3 endpoint ({endpoint}): use https"
                    )
                client_options["allow_http"] = True
        if region:
            config["region"] = region
        prefix = parts.path.strip("/") or None
        return S3Store(
            parts.netloc,
            prefix=prefix,
            config=config,  # type: ignore[arg-type]
            client_options=client_options or None,  # type: ignore[arg-type]
        )
    path = local_store_path(url)
    assert path is not None
    private_dir(path)  # 0700; what goes in it is private by the server's umask (private.py)
    return LocalStore(prefix=path.resolve())


def run_prefix(project_id: int, run_id: str) -> str:
    """The key prefix of one run's objects."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise ValueError(f"invalid run id {run_id!r}")
    return f"projects/{int(project_id)}/runs/{run_id}"


def blob_key(project_id: int, run_id: str, sha256: str) -> str:
    """Where a blob lives."""
    if not SHA256_RE.fullmatch(sha256):
        raise ValueError("invalid sha256")
    return f"{run_prefix(project_id, run_id)}/blobs/{sha256}"


def parse_run_key(key: str) -> tuple[int, str, str] | None:
    """``(project id, run id, the rest)`` of a key under a run's prefix, else None."""
    parts = key.split("/", 4)
    if len(parts) != 5 or parts[0] != "projects" or parts[2] != "runs":
        return None
    if not parts[1].isdigit() or not RUN_ID_RE.fullmatch(parts[3]):
        return None
    return int(parts[1]), parts[3], parts[4]


def export_key(project_id: int, run_id: str) -> str:
    """Where a run's Parquet export lives."""
    return f"{run_prefix(project_id, run_id)}/history.parquet"


class ObjectStore:
    """Async access to the configured store."""

    def __init__(self, url: str, endpoint: str | None = None, region: str | None = None) -> None:
        self.url = url
        self.store = open_store(url, endpoint, region)
        self._folder = local_store_path(url)

    @property
    def folder(self) -> Path | None:
        """The folder of a local store, where each key is a file path; None for S3."""
        return None if self._folder is None else self._folder.resolve()

    async def put(self, key: str, data: bytes) -> None:
        """Write a whole object."""
        await obstore.put_async(self.store, key, data)

    async def put_file(self, key: str, path: Path) -> None:
        """Write a local file as an object (streamed; multipart on S3 for large files)."""
        await obstore.put_async(self.store, key, path)

    async def get(self, key: str) -> bytes | None:
        """A whole object, or None when it does not exist."""
        try:
            result = await obstore.get_async(self.store, key)
            return bytes(await result.bytes_async())
        except (FileNotFoundError, NotFoundError):
            return None

    async def stream(self, key: str) -> tuple[int, AsyncIterator[bytes]] | None:
        """The size of an object and an iterator over its bytes, or None if missing."""
        try:
            result = await obstore.get_async(self.store, key)
        except (FileNotFoundError, NotFoundError):
            return None
        size = int(result.meta["size"])

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in result.stream(min_chunk_size=1024 * 1024):
                yield bytes(chunk)

        return size, chunks()

    async def get_range(self, key: str, start: int, end: int) -> bytes | None:
        """Bytes [start, end) of an object (fewer at its end), or None when it is missing."""
        try:
            return bytes(await obstore.get_range_async(self.store, key, start=start, end=end))
        except (FileNotFoundError, NotFoundError):
            return None
        except Exception as exc:  # a range past the end of a short object
            if "range" in str(exc).lower() and start > 0:
                return b""
            raise

    async def size(self, key: str) -> int | None:
        """An object's size in bytes, or None when it is missing."""
        try:
            return int((await obstore.head_async(self.store, key))["size"])
        except (FileNotFoundError, NotFoundError):
            return None

    def local_path(self, key: str) -> Path | None:
        """The file behind ``key`` in a local store (for memory maps); None on S3."""
        root = local_store_path(self.url)
        return None if root is None else root.resolve() / key

    async def exists(self, key: str) -> bool:
        """Whether an object exists."""
        try:
            await obstore.head_async(self.store, key)
            return True
        except (FileNotFoundError, NotFoundError):
            return False

    async def list(self, prefix: str) -> AsyncIterator[StoredObject]:
        """Every object whose key starts with ``prefix`` (a folder: end it with ``/``), in
        pages; an empty prefix lists the whole store."""
        try:
            async for page in obstore.list(self.store, prefix or None, chunk_size=1000):
                for meta in page:
                    yield StoredObject(
                        str(meta["path"]), int(meta["size"]), meta["last_modified"].timestamp()
                    )
        except (FileNotFoundError, NotFoundError):
            return  # a local store whose folder was never made

    def prune_folders(self, prefix: str) -> None:
        """Remove the empty folders left under ``prefix`` once its objects are deleted (a
        local store keeps them; S3 has no folders)."""
        if self._folder is None:
            return
        top = self._folder / prefix.strip("/")
        if not top.is_dir():
            return
        for path in [*sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True), top]:
            with contextlib.suppress(OSError):  # not empty (a new object), or gone already
                if path.is_dir():
                    path.rmdir()

    async def delete(self, key: str) -> None:
        """Remove an object (missing is fine)."""
        try:
            await obstore.delete_async(self.store, key)
        except (FileNotFoundError, NotFoundError):
            pass

    async def put_verified(
        self,
        key: str,
        sha256: str,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        expected_size: int | None,
    ) -> int:
        """Store a stream under ``key`` only if it hashes to ``sha256``; returns its size.

        Small uploads are checked in memory, then written once. Large ones stream to a
        temporary object (so memory stays flat) and are renamed into place after the check,
        so a reader never sees a blob whose bytes do not match its name.
        """
        digest = hashlib.sha256()
        if expected_size is not None and expected_size <= IN_MEMORY_BLOB_BYTES:
            parts: list[bytes] = []
            size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLarge
                digest.update(chunk)
                parts.append(chunk)
            if digest.hexdigest() != sha256:
                raise HashMismatch
            await self.put(key, b"".join(parts))
            return size

        temp = f"{key}.upload-{uuid.uuid4().hex}"
        total = 0

        async def hashed() -> AsyncIterator[bytes]:
            nonlocal total
            async for chunk in chunks:
                total += len(chunk)
                if total > max_bytes:
                    raise BlobTooLarge
                digest.update(chunk)
                yield chunk

        try:
            await obstore.put_async(self.store, temp, hashed())
            if digest.hexdigest() != sha256:
                raise HashMismatch
            await obstore.rename_async(self.store, temp, key)
        except BaseException:
            await self.delete(temp)
            raise
        return total


# --- artifacts: one object per file's bytes in a project, and the parts of an upload -------
#
#     projects/<project_id>/artifacts/blobs/<sha256>
#     projects/<project_id>/artifacts/uploads/<sha256>/...   (parts, storage/parts.py)


def artifact_prefix(project_id: int) -> str:
    """The key prefix of a project's artifact objects (blobs and upload parts)."""
    return f"projects/{int(project_id)}/artifacts"


def artifact_blob_key(project_id: int, sha256: str) -> str:
    """Where the bytes of an artifact file live (once per project)."""
    if not SHA256_RE.fullmatch(sha256):
        raise ValueError("invalid sha256")
    return f"{artifact_prefix(project_id)}/blobs/{sha256}"


def artifact_upload_prefix(project_id: int, sha256: str) -> str:
    """Where the parts of an upload of an artifact file live until they are joined."""
    if not SHA256_RE.fullmatch(sha256):
        raise ValueError("invalid sha256")
    return f"{artifact_prefix(project_id)}/uploads/{sha256}"


# --- uploads in parts (domain/uploads.py): a large run file, part by part, resumable ------

#: The size of each part of an upload in parts (the last one may be shorter); the server
#: announces it when an upload starts. Parts are held in memory while received and sent,
#: so this bounds what one part request costs either side. (Artifact files come in the
#: protocol's fixed ``ARTIFACT_CHUNK_BYTES`` chunks instead: the client knows that size
#: without asking.)
UPLOAD_PART_BYTES = 8 * 1024 * 1024


def upload_prefix(project_id: int, run_id: str, upload_id: str) -> str:
    """Where the parts of a run's upload live until they are joined (storage/parts.py)."""
    if not UPLOAD_ID_RE.fullmatch(upload_id):
        raise ValueError("invalid upload id")
    return f"{run_prefix(project_id, run_id)}/uploads/{upload_id}"
