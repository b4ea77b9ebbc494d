"""``gradexp.Artifact``: a named, versioned set of files (a checkpoint, a data set).

Build one, then log it from a run::

    art = gradexp.Artifact("model", type="model", metadata={"epoch": 3})
    art.add_file("ckpt.pt")                   # hashed now, in 1 MiB reads
    with art.new_file("notes.txt") as f:      # written into the artifact's own folder
        f.write("trained on ...")
    run.log_artifact(art, aliases=["best"])   # v0, v1, ... (the same version if unchanged)

    model = run.use_artifact("model:best")    # recorded as used by this run
    path = model.download()                   # every file checked against its sha256

The manifest (each file's path, sha256 and size) is fixed when the artifact is logged; it
travels as an ``artifact`` record through the run file like every other record, so offline
runs and ``gradexp sync`` carry it. The files' bytes are read from where they lie when the
record is uploaded (the stream thread, or ``gradexp sync`` later), in chunks: keep them
until the run is finished or flushed. ``new_file`` files live in the run's own folder once
logged, so they survive the process.

Memory stays bounded whatever the file sizes: hashing, upload and download all stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from gradexp.core.copies import copy_hashed
from gradexp.core.copies import hash_file as _hash_file
from gradexp.errors import GradexpError
from gradexp.protocol.artifacts import (
    MAX_ARTIFACT_FILES,
    MAX_ARTIFACT_METADATA_BYTES,
    alias_problem,
    artifact_name_problem,
    manifest_digest,
)

__all__ = ["Artifact", "hash_file", "safe_relative"]

_READ = 1024 * 1024  # bytes per read when hashing


def hash_file(
    path: str | os.PathLike[str], copy_to: str | os.PathLike[str] | None = None
) -> tuple[str, int]:
    """The sha256 and size of a file, read 1 MiB at a time (memory stays flat); with
    ``copy_to``, of its copy there (made by the kernel, then hashed: ``core/copies.py``)."""
    if copy_to is not None:
        return copy_hashed(path, copy_to)
    return _hash_file(path)


def safe_relative(path: str) -> str:
    """An artifact path, ``/``-separated and relative, that stays inside any folder."""
    norm = path.replace("\\", "/").strip("/")
    parts = norm.split("/")
    if not norm or any(p in ("", ".", "..") for p in parts) or len(norm) > 512:
        raise GradexpError(
            f"artifact path {path!r}: use a relative path without '.' or '..' parts "
            "(at most 512 characters)."
        )
    return norm


def _check_name(name: Any, what: str) -> str:
    problem = artifact_name_problem(name)
    if problem is not None:
        raise GradexpError(f"{what} {name!r} {problem}.")
    return str(name)


class Artifact:
    """A named, versioned set of files: build it, ``run.log_artifact`` it, ``use`` it later.

    ``name``: the collection in the project (letters, digits, ``.``, ``_``, ``-``);
    ``type``: what it is (``"model"``, ``"dataset"``...); ``description`` and ``metadata``
    (a JSON-able mapping) describe this version. An artifact read back from the server
    (``run.use_artifact``, ``Api().artifact``) also has ``version`` (``"v3"``),
    ``aliases``, ``digest``, ``created_at``, ``logged_by`` and ``used_by``.
    """

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = _check_name(name, "artifact name")
        self.type = _check_name(type, "artifact type")
        self.description = description
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.version: str | None = None
        self.aliases: list[str] = []
        self.digest: str | None = None
        self.created_at: float | None = None
        #: ``{"id", "name", "project", "owner"}`` of the run that logged this version.
        self.logged_by: dict[str, Any] | None = None
        #: The runs that used this version, in the same shape.
        self.used_by: list[dict[str, Any]] = []
        self._entries: dict[str, dict[str, Any]] = {}  # path -> {path, sha256, size, local}
        self._staging: str | None = None  # new_file's folder
        self._frozen = False
        self._api: Any = None  # the gradexp.Api a fetched artifact's bytes come from
        self._owner: str | None = None
        self._project: str | None = None
        self._waiter: Callable[[float | None], None] | None = None  # set when logged

    def __repr__(self) -> str:
        which = f":{self.version}" if self.version else ""
        return (
            f"<gradexp.Artifact {self.name}{which} type={self.type!r} files={len(self._entries)}>"
        )

    # --- building ---

    def _check_open(self) -> None:
        if self._frozen:
            raise GradexpError(
                f"artifact {self.name} is logged (or read from the server) and can no longer "
                "change; make a new gradexp.Artifact for the next version."
            )

    def _add(self, entry: dict[str, Any]) -> None:
        if len(self._entries) >= MAX_ARTIFACT_FILES and entry["path"] not in self._entries:
            raise GradexpError(f"an artifact holds at most {MAX_ARTIFACT_FILES} files.")
        self._entries[entry["path"]] = entry

    def add_file(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        policy: str = "mutable",
    ) -> str:
        """Add a file under ``name`` (default: its file name). Returns its path in the artifact.

        ``policy="mutable"`` (the default) copies it aside now, hashing as it copies, so the
        script may overwrite or delete it at once (a checkpoint saved to the same path
        every epoch); ``"immutable"`` hashes it in place and uploads it from there, with
        no copy: it must not change until the run is uploaded (flushed or finished).
        """
        self._check_open()
        if policy not in ("mutable", "immutable"):
            raise GradexpError(f"policy={policy!r}: use 'mutable' (copy it now) or 'immutable'.")
        local = os.path.abspath(os.fspath(local_path))
        if not os.path.isfile(local):
            raise GradexpError(f"cannot add {local_path!s} to artifact {self.name}: not a file.")
        path = safe_relative(name if name is not None else os.path.basename(local))
        staging = self._staging_dir()
        if policy == "mutable" and os.path.commonpath([local, staging]) != staging:
            copy = os.path.join(staging, "files", *path.split("/"))
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            sha, size = hash_file(local, copy_to=copy)
            local = copy
        else:
            sha, size = hash_file(local)
        self._add({"path": path, "sha256": sha, "size": size, "local": local})
        return path

    def _staging_dir(self) -> str:
        """The artifact's own folder: in the current run's folder when there is a run (so
        copies of large files stay off a memory-backed /tmp), else a temporary one."""
        if self._staging is None:
            import gradexp  # the package's lazy surface: the current run, no import cycle

            run = gradexp.run
            if run is not None and run.mode != "disabled":
                self._staging = tempfile.mkdtemp(
                    prefix=f"{self.name}-", dir=_mkdirs(os.path.join(run.dir, "artifacts"))
                )
            else:
                self._staging = tempfile.mkdtemp(prefix="gradexp-artifact-")
        return self._staging

    def add_dir(self, local_path: str | os.PathLike[str], name: str | None = None) -> list[str]:
        """Add every file under a folder (keeping relative paths, under ``name`` if given)."""
        self._check_open()
        root = os.path.abspath(os.fspath(local_path))
        if not os.path.isdir(root):
            raise GradexpError(f"cannot add {local_path!s} to artifact {self.name}: not a folder.")
        added = []
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for fname in sorted(files):
                full = os.path.join(folder, fname)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                added.append(self.add_file(full, f"{name.strip('/')}/{rel}" if name else rel))
        return added

    @contextlib.contextmanager
    def new_file(
        self, name: str, mode: str = "w", encoding: str | None = None
    ) -> Iterator[IO[Any]]:
        """Write a new file into the artifact: ``with art.new_file("a.txt") as f: ...``.

        The file is added (and hashed) when the block ends.
        """
        self._check_open()
        path = safe_relative(name)
        local = os.path.join(self._staging_dir(), "new", *path.split("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        if "b" not in mode and encoding is None:
            encoding = "utf-8"
        with open(local, mode, encoding=encoding) as f:
            yield f
        self.add_file(local, path, policy="immutable")  # it is ours: no copy needed

    def add_reference(self, uri: str, name: str | None = None) -> str:
        """Add a reference to bytes kept elsewhere (``s3://...``, ``https://...``,
        ``file://...``): recorded by URI, never uploaded or downloaded."""
        self._check_open()
        uri = str(uri)
        parsed = urllib.parse.urlsplit(uri)
        if not parsed.scheme:
            raise GradexpError(f"reference {uri!r} needs a scheme (s3://, https://, file://...).")
        default = parsed.path.rstrip("/").rsplit("/", 1)[-1] or parsed.netloc or "reference"
        path = safe_relative(name if name is not None else default)
        self._add({"path": path, "ref": uri})
        return path

    # --- reading ---

    def files(self) -> list[dict[str, Any]]:
        """The manifest: ``[{"path", "sha256", "size"} | {"path", "ref"}]``, by path."""
        return [
            {k: v for k, v in e.items() if k != "local"} for _, e in sorted(self._entries.items())
        ]

    @property
    def size(self) -> int:
        """The bytes of the artifact's files (references count nothing)."""
        return sum(int(e.get("size") or 0) for e in self._entries.values())

    # --- logging (called by Run.log_artifact) ---

    def _log_record(self, aliases: list[str], keep_dir: str | None) -> dict[str, Any]:
        """Freeze the artifact and make its ``artifact`` record (action ``log``).

        ``keep_dir``: the run's folder for new_file's files, so that they outlive the
        temporary folder (``gradexp sync`` reads them from there after a crash).
        """
        if self._frozen:
            raise GradexpError(
                f"artifact {self.name} was already logged; make a new gradexp.Artifact "
                "for the next version."
            )
        for alias in aliases:
            problem = alias_problem(alias)
            if problem is not None:
                raise GradexpError(f"alias {alias!r} {problem}.")
        try:
            meta_json = orjson.dumps(
                {"metadata": self.metadata, "description": self.description},
                option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
            )
        except TypeError as exc:
            raise GradexpError(
                f"artifact {self.name}: metadata must be JSON-able ({exc})."
            ) from None
        if len(meta_json) > MAX_ARTIFACT_METADATA_BYTES:
            raise GradexpError(
                f"artifact {self.name}: metadata and description are limited to "
                f"{MAX_ARTIFACT_METADATA_BYTES // 1024} KiB as JSON."
            )
        if (
            self._staging is not None
            and keep_dir is not None
            and os.path.commonpath([os.path.abspath(self._staging), os.path.abspath(keep_dir)])
            != os.path.abspath(keep_dir)
        ):
            self._keep_staged(keep_dir)  # made before the run: into the run's folder
        self._frozen = True
        self.digest = manifest_digest(self._entries.values())
        self.aliases = sorted({"latest", *aliases})
        return {
            "action": "log",
            "name": self.name,
            "artifact_type": self.type,
            "digest": self.digest,
            "aliases": self.aliases,
            "time": time.time(),
            "files": [dict(e) for _, e in sorted(self._entries.items())],
            **orjson.loads(meta_json),
        }

    def _keep_staged(self, keep_dir: str) -> None:
        staging = self._staging
        assert staging is not None
        target = tempfile.mkdtemp(prefix=f"{self.name}-", dir=_mkdirs(keep_dir))
        for entry in self._entries.values():
            local = entry.get("local")
            if local and os.path.commonpath([local, staging]) == staging:
                dest = os.path.join(target, os.path.relpath(local, staging))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.move(local, dest)
                entry["local"] = dest
        shutil.rmtree(staging, ignore_errors=True)
        self._staging = None

    def wait(self, timeout: float | None = None) -> Artifact:
        """Once logged online: wait until the server has it, then fill in ``version``."""
        if self._waiter is not None:
            self._waiter(timeout)
        elif self.version is None:
            raise GradexpError(f"artifact {self.name} was not logged: nothing to wait for.")
        return self

    # --- read back from the server ---

    @classmethod
    def _from_server(cls, api: Any, owner: str, project: str, doc: dict[str, Any]) -> Artifact:
        art = cls(doc["name"], doc["type"])
        art._load(api, owner, project, doc)
        return art

    def _load(self, api: Any, owner: str, project: str, doc: dict[str, Any]) -> None:
        self._api, self._owner, self._project = api, owner, project
        self.type = doc["type"]
        self.version = f"v{doc['version']}"
        self.aliases = list(doc.get("aliases") or [])
        self.digest = doc["digest"]
        self.description = doc.get("description")
        self.metadata = dict(doc.get("metadata") or {})
        self.created_at = doc.get("created_at")
        self.logged_by = doc.get("logged_by")
        self.used_by = list(doc.get("used_by") or [])
        if "files" in doc:
            self._entries = {f["path"]: dict(f) for f in doc["files"]}
        self._frozen = True

    @property
    def qualified_name(self) -> str:
        """``owner/project/name:vN`` (once it has a version on the server)."""
        return f"{self._owner}/{self._project}/{self.name}:{self.version}"

    def download(self, root: str | os.PathLike[str] | None = None) -> Path:
        """Save the files under ``root`` (default ``./artifacts/<name>-<version>``).

        Every file is checked against its sha256; one already there with the right hash
        is not fetched again, one that differs (changed, or cut short) is. References are
        not downloaded. Returns the folder.
        """
        api = self._api
        if api is None:
            raise GradexpError(
                f"artifact {self.name} is not one read from a server (use run.use_artifact or "
                "gradexp.Api().artifact); an offline run cannot download artifacts."
            )
        base = Path(root) if root is not None else Path("artifacts") / f"{self.name}-{self.version}"
        base.mkdir(parents=True, exist_ok=True)
        for entry in self._entries.values():
            if entry.get("ref") is not None:
                continue
            target = base.joinpath(*safe_relative(entry["path"]).split("/"))
            if (
                target.is_file()
                and target.stat().st_size == entry["size"]
                and hash_file(target)[0] == entry["sha256"]
            ):
                continue  # already there, and whole
            target.parent.mkdir(parents=True, exist_ok=True)
            self._fetch(entry, target)
        return base

    def _fetch(self, entry: dict[str, Any], target: Path) -> None:
        assert self._api is not None and self._owner and self._project
        sha = entry["sha256"]
        url = f"/projects/{_q(self._owner)}/{_q(self._project)}/artifact-blobs/{sha}"
        tmp = target.with_name(target.name + ".part")
        h = hashlib.sha256()
        with self._api._open(url) as resp, open(tmp, "wb") as out:
            while True:
                chunk = resp.read(_READ)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != sha:
            tmp.unlink(missing_ok=True)
            raise GradexpError(
                f"{entry['path']} of artifact {self.name} did not match its sha256 when "
                "downloaded; try again."
            )
        os.replace(tmp, target)


def _mkdirs(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")
