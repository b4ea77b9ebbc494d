"""The transport's interface: where batches come from and what they are.

In the spirit of OpenTelemetry's exporter protocol, the uploader leans on a small
interface rather than on the sources themselves:

- :class:`BatchSource`: the frames of one run file, cut into :class:`Batch` es in
  sequence order. :class:`~gradexp.transport.sources.LiveSource` (the file this process's
  stream is writing) and :class:`~gradexp.transport.sources.FileSource` (a complete file,
  for ``gradexp sync``) implement it.
- :class:`UploadListener`: where a live upload reports to the caller's thread (the
  stream's ``Channel`` is one; the transport never imports the stream).

A batch body is the records' payload bytes, joined between
``{"first_seq":..,"last_seq":..,"records":[`` and ``]}``: records are never re-encoded.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from gradexp.protocol.wire import RECORD_TYPE_NAMES, RECORD_TYPES

__all__ = [
    "Batch",
    "BatchSource",
    "Frame",
    "FrameReader",
    "UploadListener",
    "build_batch",
    "skipped",
]

FILE_RECORD = RECORD_TYPES["file"]
ARTIFACT_RECORD = RECORD_TYPES["artifact"]
#: The most sequence numbers a damaged file's gap is filled with (see ``filler``).
MAX_GAP = 1_000_000


@dataclass
class Frame:
    """One record as read back from the run file."""

    seq: int
    rtype: int
    payload: bytes
    offset: int  # where the frame starts
    end: int  # where the next frame starts


@dataclass
class Batch:
    """A contiguous run of records ``first_seq..last_seq`` to POST together."""

    first_seq: int
    last_seq: int
    payloads: list[Any]  # bytes-like: bytes, or memoryviews into a read of the run file
    files: list[dict[str, Any]] = field(default_factory=list)
    end_offset: int | None = None  # where the frame after last_seq starts (ack hint)
    raw_bytes: int = 0
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # their files go first
    #: Records left out because the server does not accept their type: type -> count.
    skipped: dict[str, int] = field(default_factory=dict)

    def body(self) -> bytes:
        """The JSON body, built by joining the stored payloads (no re-encoding)."""
        return b"".join(
            (
                b'{"first_seq":%d,"last_seq":%d,"records":[' % (self.first_seq, self.last_seq),
                b",".join(self.payloads),
                b"]}",
            )
        )


class BatchSource(Protocol):
    """Where an uploader's batches come from: one run file's records, in sequence order."""

    def next_batch(
        self, expected: int, max_bytes: int, max_records: int, skip: frozenset[int] = frozenset()
    ) -> Batch | None:
        """The next batch from sequence ``expected`` on (earlier frames are skipped), at
        most ``max_bytes`` of payload and ``max_records`` records; None if nothing is due.
        Records of a type in ``skip`` (frame type bytes) are sent as :func:`skipped`."""
        ...

    def rewind(self) -> None:
        """Start again from the first frame (the server knows less than we thought)."""
        ...

    def close(self) -> None:
        """Let go of the file (idempotent)."""
        ...


class FrameReader(Protocol):
    """Frames in sequence order with one frame of lookahead: what :func:`build_batch` cuts."""

    def peek(self) -> Frame | None:
        """The next frame, without taking it (None at the end)."""
        ...

    def pop(self) -> None:
        """Take the frame :meth:`peek` returned."""
        ...


class UploadListener(Protocol):
    """What a live upload tells the caller's side (written on the upload's loop only)."""

    #: The caller let go of the run: send what is left now, do not wait for a full batch.
    release: bool
    #: The highest sequence the server acknowledged.
    acked_seq: int
    #: Why the upload stopped for good, if it did.
    upload_error: str | None


def filler(seq: int) -> bytes:
    """A stand-in for a record lost to a damaged run file.

    The server acknowledges only contiguous sequences, so a hole would stall the run for
    ever. The stand-in is a telemetry record counting the loss (counts add up).
    """
    return b'{"seq":%d,"type":"telemetry","lost_records":1}' % seq


def skipped(seq: int, rtype: int) -> bytes:
    """A stand-in for a record of a type the server does not accept (an older server).

    The record stays in the run file (a newer server can take it from ``gradexp sync``);
    the server gets a telemetry record counting it in its place, which every server
    accepts and which keeps the sequence contiguous, so everything else is delivered
    exactly once as before.
    """
    name = RECORD_TYPE_NAMES.get(rtype, str(rtype)).encode()
    return b'{"seq":%d,"type":"telemetry","skipped_records":{"%s":1}}' % (seq, name)


def build_batch(
    source: FrameReader,
    expected: int,
    max_bytes: int,
    max_records: int,
    skip: frozenset[int] = frozenset(),
) -> Batch | None:
    """Cut the next batch from ``source``, starting at sequence ``expected``.

    Frames below ``expected`` are skipped (already acknowledged, or duplicates); a hole
    in the sequence (a frame lost to damage) is filled with :func:`filler` records, and a
    record of a type in ``skip`` is replaced by :func:`skipped`.
    """
    payloads: list[bytes] = []
    files: list[dict[str, Any]] = []
    artifacts: list[dict[str, Any]] = []
    left_out: dict[str, int] = {}
    size = 0
    first = expected
    end_offset: int | None = None
    while len(payloads) < max_records and size < max_bytes:
        frame = source.peek()
        if frame is None:
            break
        if frame.seq < expected:
            source.pop()
            continue
        if frame.seq > expected:
            if frame.seq - expected > MAX_GAP:  # not a plausible hole: a bogus frame
                source.pop()
                continue
            payloads.append(filler(expected))
            expected += 1
            end_offset = frame.offset
            continue
        if frame.rtype in skip:
            payloads.append(skipped(frame.seq, frame.rtype))
            name = RECORD_TYPE_NAMES.get(frame.rtype, str(frame.rtype))
            left_out[name] = left_out.get(name, 0) + 1
            expected += 1
            end_offset = frame.end
            source.pop()
            continue
        payloads.append(frame.payload)
        size += len(frame.payload) + 1
        if frame.rtype == FILE_RECORD:
            with contextlib.suppress(orjson.JSONDecodeError):
                files.append(orjson.loads(frame.payload))
        elif frame.rtype == ARTIFACT_RECORD:
            with contextlib.suppress(orjson.JSONDecodeError):
                artifacts.append(orjson.loads(frame.payload))
        expected += 1
        end_offset = frame.end
        source.pop()
    if not payloads:
        return None
    return Batch(first, expected - 1, payloads, files, end_offset, size, artifacts, left_out)
