"""Files the caller ``save()``\\ d, on the stream thread: snapshots, versions, ``file`` records.

:class:`FileSaver` is the part of a run's :class:`~gradexp.stream.runstream.RunStream`
that turns ``save()`` calls into run files. ``save()`` resolves its glob on the caller's
thread (:mod:`gradexp.stream.save_spec`) and appends the spec to ``Channel.saves``; this
side takes the specs at each drain, and:

- ``now``: copies each match once;
- ``live``: copies each match at once, then again whenever it changed (polled every
  ``POLL_S`` by size and modification time, which costs one ``stat`` per file): a
  version is taken once the file has stayed the same for ``SETTLE_S``, or every
  ``MAX_LAG_S`` while it keeps changing; and a last time at finish if it changed;
- ``end``: copies each match when the run finishes.

Each copy (a snapshot) is made by the kernel into ``<run dir>/saved/<sha256>`` and hashed
as it is read back (``core/copies.py``), so a file of several GB never sits in memory and
a file that changes afterwards cannot change what was recorded. The ``file`` record names the snapshot as its ``local`` path; the
uploader reads it from there (in parts, for large files), and ``gradexp sync`` does the
same later. A version the same as the last one of that name records nothing.

A live file's earlier version is deleted from the run folder once the server has
acknowledged its record (online); offline every version stays until ``gradexp sync``.

Threads: the matching and copying run in the loop's executor, one pass at a time (so
:attr:`FileSaver.tracked` is only touched by that pass); records are framed on the loop,
only before the finish record (:meth:`hold_finish` holds the finish back until the last
pass is framed).
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gradexp.core.copies import FileTooLarge, copy_hashed
from gradexp.core.output import say
from gradexp.protocol.wire import MAX_BLOB_BYTES, RECORD_TYPES
from gradexp.stream.channel import FINISHING, OPEN
from gradexp.stream.save_spec import SaveSpec, match_files

if TYPE_CHECKING:
    from gradexp.stream.machine import RecordingStream

__all__ = ["SAVED_DIR", "FileSaver"]

FILE = RECORD_TYPES["file"]
#: The folder of the run directory that holds the snapshots, by content hash.
SAVED_DIR = "saved"
POLL_S = 1.0
SETTLE_S = 1.0
MAX_LAG_S = 15.0


@dataclass
class Tracked:
    """A file a ``live`` or ``end`` spec matched (owned by the executor pass)."""

    path: str
    policy: str
    seen: tuple[int, int] | None = None  # (size, mtime_ns) at the last poll
    changed_at: float = 0.0
    taken: tuple[int, int] | None = None  # (size, mtime_ns) of the last snapshot
    taken_at: float = 0.0
    sha: str = ""


@dataclass
class Version:
    """A snapshot to record: the ``file`` record's body."""

    name: str
    sha: str
    size: int
    content_type: str


@dataclass
class PassResult:
    versions: list[Version] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class FileSaver:
    """The ``save()``\\ d files of one run (stream thread; see the module docstring)."""

    def __init__(self, stream: RecordingStream) -> None:
        self.stream = stream
        self.channel = stream.channel
        self.specs: list[SaveSpec] = []  # live and end specs, matched again each pass
        self.tracked: dict[str, Tracked] = {}  # by name (executor pass only)
        self.task: asyncio.Task[None] | None = None
        self.final_done = False
        self.said: set[str] = set()
        # Online: versions superseded by a newer one, deleted once acknowledged.
        self.current: dict[str, str] = {}  # name -> sha of its newest version (loop)
        self.stale: list[tuple[int, str]] = []  # (seq of the record, sha)
        self._last_pass = 0.0

    @property
    def folder(self) -> str:
        return os.path.join(self.stream.run_dir.path, SAVED_DIR)

    def tick(self) -> None:
        """At each drain (loop): start a pass when specs came in or a poll is due."""
        if self.task is not None or self.final_done:
            return
        fresh = bool(self.channel.saves)
        live = any(s.policy == "live" for s in self.specs)
        if fresh or (live and time.monotonic() - self._last_pass >= POLL_S):
            self.task = self.stream.loop.create_task(self._pass(final=False))

    def hold_finish(self) -> bool:
        """True while a finishing run should wait: its last pass (end and live files) first."""
        if self.final_done or self.channel.state is not FINISHING:
            return False
        if self.task is None:
            if not self.specs and not self.channel.saves:
                self.final_done = True
                return False
            self.task = self.stream.loop.create_task(self._pass(final=True))
        return True

    async def stop(self) -> None:
        """The run is being released: stop any pass."""
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _pass(self, final: bool) -> None:
        loop = self.stream.loop
        try:
            with self.channel.lock:  # the caller appends under this lock
                fresh, self.channel.saves = self.channel.saves, []
            result = await loop.run_in_executor(None, self._scan, fresh, final)  # executor
            self._frame(result)
            self._prune()
        except Exception as exc:  # a pass that failed is tried again at the next poll
            self._say(f"saving files of run {self.stream.run_id} failed: {exc}")
        finally:
            self._last_pass = time.monotonic()
            self.task = None
            if final:
                self.final_done = True
                self.stream.wake_event.set()  # the finish record waits for this

    def _frame(self, result: PassResult) -> None:
        for line in result.problems:
            self._say(f"save: {line}")
        framer = self.stream.framer
        if framer is None or not (self.channel.state in OPEN or self.channel.state is FINISHING):
            return
        for v in result.versions:
            framer.append(
                FILE,
                {
                    "path": v.name,
                    "sha256": v.sha,
                    "size": v.size,
                    "content_type": v.content_type,
                    "local": f"{SAVED_DIR}/{v.sha}",
                },
            )
            old = self.current.get(v.name)
            self.current[v.name] = v.sha
            if old is not None and old != v.sha:
                self.stale.append((framer.seq, old))

    def _prune(self) -> None:
        """Delete superseded versions the server has (online only; a few unlinks)."""
        if not self.stale or self.settings_mode() != "online":
            return
        acked = self.channel.acked_seq
        keep_shas = set(self.current.values())
        waiting = {sha for seq, sha in self.stale if seq > acked}
        keep = []
        for seq, sha in self.stale:
            if seq > acked:
                keep.append((seq, sha))
            elif sha not in keep_shas and sha not in waiting:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.folder, sha))
        self.stale = keep

    def settings_mode(self) -> str:
        return str(self.stream.settings.mode)

    def _say(self, line: str) -> None:
        if line not in self.said:
            self.said.add(line)
            say(line)

    # --- executor thread ---

    def _scan(self, fresh: list[SaveSpec], final: bool) -> PassResult:
        """Match the specs, copy what is due (executor thread, one pass at a time)."""
        result = PassResult()
        now = time.monotonic()
        for spec in fresh:
            matches, problems = match_files(spec)
            result.problems += problems
            if spec.policy == "now":
                for name, path in matches:
                    self._take(name, path, None, result)
            else:
                self.specs.append(spec)
        for spec in self.specs:
            matches, problems = match_files(spec)
            result.problems += problems
            for name, path in matches:
                entry = self.tracked.get(name)
                if entry is None or entry.path != path:
                    entry = self.tracked[name] = Tracked(path, spec.policy)
                elif spec.policy == "live":
                    entry.policy = "live"  # live wins over end for one file
                sig = _signature(path)
                if sig is None:
                    continue
                if sig != entry.seen:
                    entry.seen, entry.changed_at = sig, now
                if entry.policy == "end" and not final:
                    continue
                if sig == entry.taken:
                    continue
                settled = now - entry.changed_at >= SETTLE_S
                lagging = now - entry.taken_at >= MAX_LAG_S
                if final or entry.taken is None or settled or lagging:
                    version = self._take(name, path, entry.sha, result)
                    entry.taken, entry.taken_at = sig, now
                    if version is not None:
                        entry.sha = version.sha
        return result

    def _take(
        self, name: str, path: str, last_sha: str | None, result: PassResult
    ) -> Version | None:
        """Copy one file into the snapshots; the version to record (None: unchanged/failed)."""
        try:
            sha, size = _snapshot(path, self.folder)
        except FileTooLarge:
            result.problems.append(
                f"{path} is over {MAX_BLOB_BYTES >> 30} GiB, the most a run file may hold; not saved"
            )
            return None
        except OSError as exc:
            result.problems.append(f"{path} cannot be read ({exc.strerror or exc}); not saved")
            return None
        if sha == last_sha:
            return None
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        version = Version(name, sha, size, ctype)
        result.versions.append(version)
        return version


def _signature(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _snapshot(path: str, folder: str) -> tuple[str, int]:
    """Copy ``path`` to ``folder/<sha256>``, hashing the copy (executor thread)."""
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{uuid.uuid4().hex}.tmp")
    try:
        sha, size = copy_hashed(path, tmp, MAX_BLOB_BYTES)
        os.replace(tmp, os.path.join(folder, sha))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return sha, size
