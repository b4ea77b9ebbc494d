"""Run files: the local, crash-safe record log of a run, and how to read one.

Every record a run logs is appended here before it is sent, so this file is the offline
store, the spill when memory is full, and what ``gradexp sync`` uploads after a crash.
The format is in ``docs/runfile.md`` (and ``docs/protocol.md``); in short::

    run.gxr   = header (b"GRADEXP\\0RUN\\0" + u32 version) + frames
    frame     = u32 payload length, u32 CRC32(type byte + payload), u8 type, payload
    payload   = the record's JSON (orjson), exactly what is sent to the server

Reading is public and never crashes on a damaged file::

    from gradexp.runfile import RunFile

    log = RunFile("gradexp/latest-run")
    for record in log:                 # stops cleanly at a torn tail, skips bad frames
        if record.type == "history":
            print(record.seq, record.step, record.values)
    print(log.corrupt_frames, log.torn_tail_bytes)

The writer (:class:`RunFileWriter`) is gradexp's own: only the stream thread uses it.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from gradexp.protocol.values import decode_values
from gradexp.protocol.wire import (
    ACK_NAME,
    FILES_DIR,
    LATEST_RUN_LINK,
    RECORD_TYPE_NAMES,
    RECORD_TYPES,
    RUN_META_NAME,
    RUNFILE_MAGIC,
    RUNFILE_NAME,
    RUNFILE_VERSION,
)

__all__ = [
    "HEADER_SIZE",
    "Record",
    "RunDir",
    "RunFile",
    "RunFileError",
    "RunFileWriter",
    "find_run_dirs",
    "read_records",
]

HEADER = RUNFILE_MAGIC + struct.pack("<I", RUNFILE_VERSION)
HEADER_SIZE = len(HEADER)  # 16
FRAME = struct.Struct("<IIB")  # payload length, CRC32, record type
FRAME_SIZE = FRAME.size  # 9
#: A frame claiming more than this is treated as corrupt (no record is this large).
MAX_PAYLOAD = 256 * 1024 * 1024
# CRC32 of the type byte alone, to continue over the payload without concatenating.
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in RECORD_TYPE_NAMES}
_SEQ_PREFIX = b'{"seq":'


class RunFileError(Exception):
    """The file is not a gradexp run file (or one from a newer gradexp)."""


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One record of a run file: its JSON ``data`` plus where it was found."""

    seq: int
    type: str
    data: dict[str, Any]
    offset: int = field(repr=False, default=0)

    @property
    def step(self) -> int | None:
        """The step of a history record (None for other types)."""
        step = self.data.get("step")
        return step if isinstance(step, int) else None

    @property
    def values(self) -> dict[str, Any]:
        """A history record's values, with NaN/±Inf decoded back to floats."""
        values = self.data.get("values")
        return decode_values(values) if isinstance(values, dict) else {}


def frame(record_type: int, payload: bytes) -> bytes:
    """One framed record (header included): what the writer appends."""
    crc = zlib.crc32(payload, _TYPE_CRC[record_type])
    return FRAME.pack(len(payload), crc, record_type) + payload


def payload_seq(payload: bytes | memoryview) -> int | None:
    """The ``seq`` of a record payload, read without parsing the whole JSON."""
    head = bytes(payload[:32])
    if head.startswith(_SEQ_PREFIX):
        end = head.find(b",", len(_SEQ_PREFIX))
        if end > 0:
            with contextlib.suppress(ValueError):
                return int(head[len(_SEQ_PREFIX) : end])
    try:
        seq = orjson.loads(bytes(payload)).get("seq")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


@dataclass
class ScanStats:
    """What a scan had to skip: corrupt frames (and their bytes), and a torn tail."""

    corrupt_frames: int = 0
    corrupt_bytes: int = 0
    torn_tail_bytes: int = 0


def _valid_frame_at(buf: Any, pos: int, end: int) -> bool:
    if pos + FRAME_SIZE > end:
        return False
    length, crc, rtype = FRAME.unpack_from(buf, pos)
    start = pos + FRAME_SIZE
    if rtype not in _TYPE_CRC or length > MAX_PAYLOAD or start + length > end:
        return False
    return zlib.crc32(buf[start : start + length], _TYPE_CRC[rtype]) == crc


def _resync(buf: Any, pos: int, end: int) -> int:
    """The offset of the next valid frame after a damaged one at ``pos``, or -1.

    Every payload is a JSON object, so a frame can only start 9 bytes before a ``{``:
    look there, and let the CRC decide.
    """
    find = buf.find
    i = find(b"{", pos + 1 + FRAME_SIZE, end)
    while i != -1:
        if _valid_frame_at(buf, i - FRAME_SIZE, end):
            return i - FRAME_SIZE
        i = find(b"{", i + 1, end)
    return -1


def scan_frames(
    buf: Any, pos: int, end: int, stats: ScanStats, *, at_eof: bool = True
) -> Generator[tuple[int, int, memoryview, int], None, None]:
    """Yield ``(offset, type, payload, next_offset)`` for every valid frame in ``buf``.

    ``buf`` is bytes-like (bytes, mmap); frames are read from ``pos`` to ``end``. A frame
    whose CRC does not match is skipped and counted in ``stats``; after it, scanning
    resumes at the next valid frame. At ``at_eof``, an incomplete frame with nothing valid
    after it is a torn tail (counted, then the scan ends). Without ``at_eof`` (the caller
    will read more later), an incomplete frame just ends this scan.
    """
    view = memoryview(buf)
    unpack = FRAME.unpack_from
    crc32 = zlib.crc32
    type_crc = _TYPE_CRC
    while pos < end:
        if pos + FRAME_SIZE <= end:
            length, crc, rtype = unpack(buf, pos)
            start = pos + FRAME_SIZE
            stop = start + length
            if stop <= end and rtype in type_crc and length <= MAX_PAYLOAD:
                payload = view[start:stop]
                if crc32(payload, type_crc[rtype]) == crc:
                    yield pos, rtype, payload, stop
                    pos = stop
                    continue
            elif not at_eof and rtype in type_crc and length <= MAX_PAYLOAD:
                return  # a complete-looking header whose payload is not read yet
        elif not at_eof:
            return
        # A damaged frame, or the start of a torn tail: find the next good frame.
        nxt = _resync(buf, pos, end)
        if nxt == -1:
            if at_eof:
                stats.torn_tail_bytes += end - pos
            return
        stats.corrupt_frames += 1
        stats.corrupt_bytes += nxt - pos
        pos = nxt


def check_header(header: bytes, path: str) -> None:
    """Raise :class:`RunFileError` unless ``header`` starts a run file we can read."""
    if len(header) < HEADER_SIZE or header[: len(RUNFILE_MAGIC)] != RUNFILE_MAGIC:
        raise RunFileError(f"{path} is not a gradexp run file (bad header)")
    (version,) = struct.unpack_from("<I", header, len(RUNFILE_MAGIC))
    if version > RUNFILE_VERSION:
        raise RunFileError(
            f"{path} is run file format v{version}; this gradexp reads up to "
            f"v{RUNFILE_VERSION}. Upgrade gradexp to read it."
        )


# --- the public reader -------------------------------------------------------------------------


class RunFile:
    """Reads a run's record log, oldest first, and never crashes on a damaged file.

    ``path`` is a run directory or its ``run.gxr``. Iterating yields :class:`Record`s;
    afterwards ``corrupt_frames`` counts the frames skipped because their CRC did not
    match (a flipped byte), and ``torn_tail_bytes`` the bytes of an incomplete last frame
    (a process killed mid-write). A missing or foreign file raises :class:`RunFileError`
    (a ``FileNotFoundError`` for a missing one) when iteration starts.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, RUNFILE_NAME)
        self.path = path
        self._stats = ScanStats()

    @property
    def corrupt_frames(self) -> int:
        """Frames skipped because their checksum did not match (so far)."""
        return self._stats.corrupt_frames

    @property
    def torn_tail_bytes(self) -> int:
        """Bytes of an incomplete frame at the end of the file (so far)."""
        return self._stats.torn_tail_bytes

    def __iter__(self) -> Iterator[Record]:
        return self.records()

    def records(self, after_seq: int = 0, start_offset: int = HEADER_SIZE) -> Iterator[Record]:
        """Every record with ``seq > after_seq``, in file order.

        ``start_offset`` may point at a frame known to come later (a hint from
        ``ack.json``) to skip the beginning of a large file.
        """
        for offset, rtype, payload, _ in self.frames(start_offset):
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self._stats.corrupt_frames += 1
                continue
            seq = data.get("seq") if isinstance(data, dict) else None
            if not isinstance(seq, int) or isinstance(seq, bool):
                self._stats.corrupt_frames += 1
                continue
            if seq > after_seq:
                yield Record(seq, RECORD_TYPE_NAMES[rtype], data, offset)

    def frames(self, start_offset: int = HEADER_SIZE) -> Iterator[tuple[int, int, bytes, int]]:
        """Raw ``(offset, type byte, payload bytes, next offset)`` of every valid frame."""
        self._stats = ScanStats()
        with open(self.path, "rb") as f:
            check_header(f.read(HEADER_SIZE), self.path)
            size = os.fstat(f.fileno()).st_size
            if size <= HEADER_SIZE:
                return
            # mmap: the file may be gigabytes; only the pages we touch are read.
            with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as mm:
                start = max(HEADER_SIZE, start_offset)
                if start == size:
                    return  # the hint says: everything before the end is already read
                if start != HEADER_SIZE and not _valid_frame_at(mm, start, size):
                    start = HEADER_SIZE  # a stale hint: read from the beginning
                scan = scan_frames(mm, start, size, self._stats)
                try:
                    for offset, rtype, payload, nxt in scan:
                        data = bytes(payload)  # copied out: the map closes after the loop
                        payload.release()
                        yield offset, rtype, data, nxt
                finally:
                    scan.close()  # drops the scanner's view so the map can close


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """All readable records of a run directory or ``run.gxr``, as a list."""
    return list(RunFile(path))


# --- run directories -----------------------------------------------------------------------


class RunDir:
    """One run's directory: ``run.gxr``, ``run.json``, ``ack.json`` and ``files/``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    @property
    def log_path(self) -> str:
        """The record log, ``run.gxr``."""
        return os.path.join(self.path, RUNFILE_NAME)

    @property
    def files_dir(self) -> str:
        """Where the run's blobs are kept."""
        return os.path.join(self.path, FILES_DIR)

    @property
    def meta(self) -> dict[str, Any]:
        """``run.json``: what the run was created with ({} if unreadable)."""
        try:
            with open(os.path.join(self.path, RUN_META_NAME), "rb") as f:
                value = orjson.loads(f.read())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def run_id(self) -> str:
        """The run's id (from run.json, else from the directory name)."""
        return str(self.meta.get("id") or os.path.basename(self.path).rsplit("-", 1)[-1])

    def read_ack(self) -> tuple[int, int]:
        """``(acked_seq, offset hint)`` from ack.json; ``(0, HEADER_SIZE)`` if none."""
        try:
            with open(os.path.join(self.path, ACK_NAME), "rb") as f:
                ack = orjson.loads(f.read())
            seq, offset = int(ack.get("acked_seq", 0)), int(ack.get("offset", HEADER_SIZE))
        except (OSError, ValueError, TypeError, AttributeError, orjson.JSONDecodeError):
            return 0, HEADER_SIZE
        return max(seq, 0), offset

    @property
    def acked_seq(self) -> int:
        """The highest sequence the server acknowledged (0: nothing yet)."""
        return self.read_ack()[0]

    def write_ack(self, acked_seq: int, offset: int | None = None) -> None:
        """Replace ack.json atomically (temporary file + ``os.replace``).

        ``offset`` is a hint: where the frame after ``acked_seq`` starts, so that
        ``gradexp sync`` need not scan the acknowledged part of a large file.
        """
        body: dict[str, int] = {"acked_seq": acked_seq}
        if offset is not None:
            body["offset"] = offset
        tmp = os.path.join(self.path, f".{ACK_NAME}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(body))
        os.replace(tmp, os.path.join(self.path, ACK_NAME))

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Replace run.json atomically."""
        tmp = os.path.join(self.path, f".{RUN_META_NAME}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
        os.replace(tmp, os.path.join(self.path, RUN_META_NAME))

    def last_seq(self) -> int:
        """The highest sequence in the log (reads from the ack hint onwards)."""
        acked, offset = self.read_ack()
        last = acked
        for _, _, payload, _ in RunFile(self.path).frames(offset):
            seq = payload_seq(payload)
            if seq is not None and seq > last:
                last = seq
        return last

    def unsynced(self) -> int:
        """How many records the server has not acknowledged (0: fully synced)."""
        return self.last_seq() - self.acked_seq


def find_run_dirs(*paths: str | os.PathLike[str]) -> list[RunDir]:
    """Run directories under ``paths``, oldest first.

    Each path may be a run directory, a ``gradexp/`` directory holding runs, or a
    directory holding ``gradexp/``. Without paths: ``./gradexp``.
    """
    found: dict[str, RunDir] = {}
    for raw in paths or ("gradexp",):
        path = os.path.abspath(os.fspath(raw))
        candidates: list[str]
        if os.path.isfile(os.path.join(path, RUNFILE_NAME)):
            candidates = [path]
        else:
            base = path
            if not _has_runs(base) and os.path.isdir(os.path.join(path, "gradexp")):
                base = os.path.join(path, "gradexp")
            try:
                names = sorted(os.listdir(base))
            except OSError:
                names = []
            candidates = [
                os.path.join(base, n)
                for n in names
                if n.startswith("run-") and os.path.isfile(os.path.join(base, n, RUNFILE_NAME))
            ]
        for c in candidates:
            real = os.path.realpath(c)
            found.setdefault(real, RunDir(real))
    return sorted(found.values(), key=lambda d: os.path.basename(d.path))


def _has_runs(path: str) -> bool:
    try:
        return any(n.startswith("run-") for n in os.listdir(path))
    except OSError:
        return False


# --- the writer (the stream thread's) ----------------------------------------------------------


class RunFileWriter:
    """Appends framed records to ``run.gxr``; used by the stream thread only.

    ``append`` only buffers (no I/O). ``write_through`` hands the buffer to the OS with
    ``os.write`` (after which a SIGKILL loses nothing: the kernel owns the bytes), and
    ``sync`` fsyncs (after which a power cut loses nothing). The stream decides when:
    see ``docs/runfile.md`` for the policy. Frames are whole when they reach the OS, and
    a failed write leaves the buffer intact, to be retried.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        # O_APPEND: every write lands at the end even if another descriptor wrote.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        #: Frames appended but not yet written through. The stream's hot loop appends
        #: ``frame(...)`` bytes here directly, saving a method call per record.
        self.buffer = bytearray()
        self._buf = self.buffer
        size = os.fstat(self._fd).st_size
        if size == 0:
            self._buf += HEADER
        elif size < HEADER_SIZE:
            os.close(self._fd)
            raise RunFileError(f"{path} exists but has no complete header")
        self.written = size  # bytes the OS holds
        self.synced = 0  # bytes known to be on disk
        self.closed = False

    @property
    def buffered(self) -> int:
        """Bytes appended but not yet written through."""
        return len(self._buf)

    @property
    def end(self) -> int:
        """The offset the next appended frame will start at."""
        return self.written + len(self._buf)

    def append(self, record_type: int, payload: bytes) -> int:
        """Buffer one record; return the offset its frame will have in the file."""
        offset = self.written + len(self._buf)
        self._buf += FRAME.pack(
            len(payload), zlib.crc32(payload, _TYPE_CRC[record_type]), record_type
        )
        self._buf += payload
        return offset

    def write_through(self) -> int:
        """Hand everything buffered to the OS; return the bytes written (raises OSError)."""
        if not self._buf:
            return 0
        view = memoryview(self._buf)
        total = 0
        try:
            while total < len(view):
                total += os.write(self._fd, view[total:])
        finally:
            view.release()
            # Keep whatever did not make it; a partial frame in the file is a torn tail
            # that the reader handles, and the rest is retried.
            del self._buf[:total]
            self.written += total
        return total

    def sync(self) -> None:
        """fsync: what was written through is on disk."""
        written = self.written
        if written > self.synced:
            os.fsync(self._fd)
            self.synced = written

    def close(self) -> None:
        """Write through, fsync and close (the buffer must be empty for a clean close)."""
        if self.closed:
            return
        try:
            self.write_through()
            self.sync()
        finally:
            self.closed = True
            os.close(self._fd)


def record_type_code(name: str) -> int:
    """The frame type byte of a record type name (``"history"`` -> 1)."""
    return RECORD_TYPES[name]


def update_latest_link(runs_root: str, run_dir_name: str) -> None:
    """Point ``<runs_root>/latest-run`` at ``run_dir_name`` (atomic replace of a symlink)."""
    link = os.path.join(runs_root, LATEST_RUN_LINK)
    tmp = f"{link}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.symlink(run_dir_name, tmp)
        os.replace(tmp, link)
    except OSError:  # a filesystem without symlinks: the link is a convenience
        with contextlib.suppress(OSError):
            os.unlink(tmp)
