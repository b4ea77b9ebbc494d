"""Where batches come from: :class:`LiveSource` (the run file this process's stream is
writing) and :class:`FileSource` (a finished or crashed run file, for ``gradexp sync``).

Both implement :class:`~gradexp.transport.base.BatchSource`. Batches are read back from
the run file (from the OS page cache while the run is live), so the stream holds no
second copy of what it has written, however long the server is away.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Generator
from typing import Any

import orjson

from gradexp.protocol.runfile import FRAME, FRAME_SIZE, HEADER_SIZE, RunDir, RunFile, payload_seq
from gradexp.protocol.wire import RECORD_TYPE_NAMES
from gradexp.transport.base import (
    ARTIFACT_RECORD,
    FILE_RECORD,
    Batch,
    BatchSource,
    Frame,
    build_batch,
    skipped,
)

__all__ = ["FileSource", "LiveSource"]


class LiveSource(BatchSource):
    """Frames of the run file that this process's stream is writing.

    The stream calls :meth:`on_written` after each write-through; batches are read back
    with ``os.pread`` (normally from the page cache) up to that offset, never beyond, so
    a half-written frame is never read. The file was written by this process moments ago
    and its frames are contiguous, so a batch is cut by reading frame headers only: the
    sequence numbers are counted, not parsed, and the payloads are sliced, not copied.
    """

    def __init__(self, path: str, start_offset: int, first_seq: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._start = (start_offset, first_seq)
        self.offset = start_offset  # where the next unbatched frame starts
        self.next_seq = first_seq  # ... and its sequence number
        self.written = start_offset  # bytes the writer has handed to the OS
        self.last_seq = first_seq - 1  # the last sequence written
        self._times: deque[tuple[int, float]] = deque()  # (last seq of a write, when)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def on_written(self, written: int, last_seq: int) -> None:
        if last_seq > self.last_seq:
            self._times.append((last_seq, time.monotonic()))
        self.written = written
        self.last_seq = last_seq

    def unsent_records(self) -> int:
        return self.last_seq - self.next_seq + 1

    def unsent_bytes(self) -> int:
        return self.written - self.offset

    def oldest_unsent_at(self) -> float | None:
        """When the oldest record not yet batched was written."""
        times = self._times
        while times and times[0][0] < self.next_seq:
            times.popleft()
        return times[0][1] if times else None

    def rewind(self) -> None:
        """Start again from the first frame of this attempt."""
        self.offset, self.next_seq = self._start

    def next_batch(
        self, expected: int, max_bytes: int, max_records: int, skip: frozenset[int] = frozenset()
    ) -> Batch | None:
        """The next batch, from sequence ``expected`` on (earlier frames are skipped); a
        record of a type in ``skip`` is sent as its stand-in (``base.skipped``)."""
        unpack = FRAME.unpack_from
        while self.next_seq < expected and self.offset < self.written:  # after a rewind
            head = os.pread(self._fd, FRAME_SIZE, self.offset)
            self.offset += FRAME_SIZE + unpack(head, 0)[0]
            self.next_seq += 1
        available = self.written - self.offset
        if available <= 0:
            return None
        data = os.pread(
            self._fd, min(available, max(max_bytes, 64 * 1024) + 64 * 1024), self.offset
        )
        if len(data) < FRAME_SIZE:
            return None
        if FRAME_SIZE + unpack(data, 0)[0] > len(data):  # one frame larger than the read
            data = os.pread(self._fd, FRAME_SIZE + unpack(data, 0)[0], self.offset)
        view = memoryview(data)
        payloads: list[Any] = []
        files: list[dict[str, Any]] = []
        artifacts: list[dict[str, Any]] = []
        left_out: dict[str, int] = {}
        pos = size = 0
        end = len(data)
        while pos + FRAME_SIZE <= end and len(payloads) < max_records and size < max_bytes:
            length, _crc, rtype = unpack(data, pos)
            stop = pos + FRAME_SIZE + length
            if stop > end:
                break
            if rtype in skip:
                payloads.append(skipped(self.next_seq + len(payloads), rtype))
                name = RECORD_TYPE_NAMES.get(rtype, str(rtype))
                left_out[name] = left_out.get(name, 0) + 1
                pos = stop
                continue
            payload = view[pos + FRAME_SIZE : stop]
            payloads.append(payload)
            if rtype == FILE_RECORD:
                with contextlib.suppress(orjson.JSONDecodeError):
                    files.append(orjson.loads(payload))
            elif rtype == ARTIFACT_RECORD:
                with contextlib.suppress(orjson.JSONDecodeError):
                    artifacts.append(orjson.loads(payload))
            size += length + 1
            pos = stop
        if not payloads:
            return None
        first = self.next_seq
        self.next_seq += len(payloads)
        self.offset += pos
        return Batch(
            first, self.next_seq - 1, payloads, files, self.offset, size, artifacts, left_out
        )


class FileSource(BatchSource):
    """Frames of a complete run file (``gradexp sync``), from the ack hint onwards."""

    def __init__(self, run_dir: RunDir, start_offset: int | None = None) -> None:
        self._run_dir = run_dir
        start_offset = HEADER_SIZE if start_offset is None else start_offset
        self._reader = RunFile(run_dir.path)
        self._frames = self._iterate(start_offset)
        self._next: Frame | None = None
        self._done = False

    @property
    def corrupt_frames(self) -> int:
        return self._reader.corrupt_frames

    @property
    def torn_tail_bytes(self) -> int:
        return self._reader.torn_tail_bytes

    def _iterate(self, start: int) -> Generator[Frame, None, None]:
        for offset, rtype, payload, nxt in self._reader.frames(start):
            seq = payload_seq(payload)
            if seq is not None:
                yield Frame(seq, rtype, payload, offset, nxt)

    def peek(self) -> Frame | None:
        if self._next is None and not self._done:
            self._next = next(self._frames, None)
            self._done = self._next is None
        return self._next

    def pop(self) -> None:
        self._next = None

    def close(self) -> None:
        """Stop reading (the file and its mapping are released)."""
        self._frames.close()
        self._next = None
        self._done = True

    def rewind(self) -> None:
        """Start again from the first frame of the file."""
        self._frames.close()
        self._frames = self._iterate(HEADER_SIZE)
        self._next = None
        self._done = False

    def next_batch(
        self, expected: int, max_bytes: int, max_records: int, skip: frozenset[int] = frozenset()
    ) -> Batch | None:
        """The next batch from sequence ``expected`` (see :func:`build_batch`)."""
        return build_batch(self, expected, max_bytes, max_records, skip)
