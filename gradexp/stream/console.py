"""Console output, from raw writes to lines: the buffer both sides share, and the lines.

What is captured, and how, is ``gradexp.sdk.console``; this module is what happens to
it afterwards:

- :class:`ConsoleBuffer` holds what was written, as ``(time, stream, data)`` chunks. The
  capture appends (its reader thread, or the writing thread at the Python level); the
  stream thread takes everything at each tick. Bounded: past ``MAX_QUEUED_BYTES`` new
  chunks are dropped and counted (the terminal still shows them), so a script that
  prints faster than the run file can take never makes memory grow.
- :class:`LineAssembler` (stream thread only) turns the chunks into lines, the way a
  terminal shows them: ``\\n`` ends a line, ``\\r`` returns to its start so a progress bar
  keeps only its final state, and a line still being written (no newline yet) is sent as
  it is at every tick and replaced when it changes (the same line ``id``), so a crash
  loses at most the last tick of output. Lines longer than ``MAX_CONSOLE_LINE`` are cut,
  and past a rate of ``RATE_BYTES_PER_S`` (after a burst of ``BURST_BYTES``) lines are
  dropped; both are counted and reported in the run's telemetry.

Fork: the buffer of a forked child is closed (:meth:`ConsoleBuffer.after_fork_in_child`):
no stream thread drains it there, so nothing may pile up in it.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections import deque

from gradexp.protocol.wire import CONSOLE_ID_SHIFT, MAX_CONSOLE_LINE, MAX_CONSOLE_LINES

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["STDERR", "STDOUT", "ConsoleBuffer", "LineAssembler"]

STDOUT, STDERR = 0, 1
STREAM_NAMES = ("stdout", "stderr")
#: Bytes of output waiting for the stream thread, past which new output is dropped.
MAX_QUEUED_BYTES = 8 * 1024 * 1024
#: Sustained console bytes per second kept in the run, after a burst of BURST_BYTES.
RATE_BYTES_PER_S = 512 * 1024
BURST_BYTES = 16 * 1024 * 1024


class ConsoleBuffer:
    """Output waiting for the stream thread: appended by the capture, taken at each tick.

    ``lock`` guards ``chunks`` and the counters; it is held for an append or a swap only,
    never across I/O. ``dropped_bytes`` counts what did not fit (the stream thread reads
    and resets it under the lock).
    """

    __slots__ = ("chunks", "closed", "dropped_bytes", "lock", "queued")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.chunks: deque[tuple[float, int, bytes | str]] = deque()
        self.queued = 0
        self.dropped_bytes = 0
        self.closed = False

    def add(self, stream: int, data: bytes | str) -> None:
        """Queue what was written to ``stream`` (any thread; never blocks on I/O)."""
        if self.closed or not data:
            return
        now = time.time()
        with self.lock:
            if self.queued + len(data) > MAX_QUEUED_BYTES:
                self.dropped_bytes += len(data)
                return
            self.queued += len(data)
            self.chunks.append((now, stream, data))

    def take(self) -> tuple[list[tuple[float, int, bytes | str]], int]:
        """Everything queued, and the bytes dropped since the last take (stream thread)."""
        with self.lock:
            chunks = list(self.chunks)
            self.chunks.clear()
            self.queued = 0
            dropped, self.dropped_bytes = self.dropped_bytes, 0
        return chunks, dropped

    def after_fork_in_child(self) -> None:
        """In a forked child: nothing drains this buffer, and its lock may be held by a
        thread that does not exist here. A new lock, and the buffer takes nothing more."""
        self.lock = threading.Lock()
        self.chunks = deque()
        self.queued = 0
        self.closed = True


class _Line:
    """One stream's line being written: its text, the cursor, and its id once sent."""

    __slots__ = ("cursor", "dirty", "id", "sent", "text", "time")

    def __init__(self) -> None:
        self.text = ""
        self.sent: str | None = None  # the text last sent under this line's id
        self.cursor = 0
        self.id: int | None = None
        self.time = 0.0
        self.dirty = False


class LineAssembler:
    """Chunks -> console lines, per stream, with ``\\r`` handled (stream thread only).

    :meth:`feed` takes chunks; :meth:`lines` returns the lines to send now as
    ``[line, ...]`` dicts without ids (finished lines, then the lines still being
    written that changed), and :meth:`assign` numbers them once the record's sequence
    number is known. ``dropped_lines``/``dropped_bytes`` count what was cut or dropped
    since the caller last read them.
    """

    def __init__(self, *, rate: float = RATE_BYTES_PER_S, burst: float = BURST_BYTES) -> None:
        self._decoders = [codecs.getincrementaldecoder("utf-8")("replace") for _ in STREAM_NAMES]
        self._open = [_Line() for _ in STREAM_NAMES]
        self._done: list[tuple[_Line, int]] = []  # finished lines, in the order they ended
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._refilled = time.monotonic()
        self.dropped_lines = 0
        self.dropped_bytes = 0

    def feed(self, chunks: list[tuple[float, int, bytes | str]]) -> None:
        """Add what was written, in the order it was written."""
        for t, stream, data in chunks:
            text = data if isinstance(data, str) else self._decoders[stream].decode(data)
            if text:
                self._write(stream, t, text)

    def _write(self, stream: int, t: float, text: str) -> None:
        line = self._open[stream]
        start = 0
        n = len(text)
        while start < n:
            nl = text.find("\n", start)
            end = n if nl < 0 else nl
            piece = text[start:end]
            if piece:
                self._put(line, t, piece)
            if nl < 0:
                break
            # The line ends: it is done (even if empty: an empty line is output too).
            line.time = t
            line.dirty = True
            self._done.append((line, stream))
            line = self._open[stream] = _Line()
            start = nl + 1

    def _put(self, line: _Line, t: float, piece: str) -> None:
        """Write ``piece`` (no newline in it) at the line's cursor, as a terminal would."""
        parts = piece.split("\r")
        for i, part in enumerate(parts):
            if i:
                line.cursor = 0  # a carriage return: what follows overwrites the line
            if not part:
                continue
            text, c = line.text, line.cursor
            if c == len(text):
                text += part
            else:
                text = text[:c] + part + text[c + len(part) :]
            c += len(part)
            if len(text) > MAX_CONSOLE_LINE:
                self.dropped_bytes += len(text) - MAX_CONSOLE_LINE
                text = text[:MAX_CONSOLE_LINE]
                c = min(c, MAX_CONSOLE_LINE)
            line.text, line.cursor = text, c
        line.time = t
        line.dirty = True

    def lines(self, final: bool = False) -> list[tuple[_Line, dict[str, Any]]]:
        """The lines to send now: every finished line, then each line still being written
        that changed since it was last sent (``final``: the run ends, send them all)."""
        out: list[tuple[_Line, dict[str, Any]]] = []
        done, self._done = self._done, []
        for line, stream in done:
            self._emit(out, line, stream)
        for stream, line in enumerate(self._open):
            if line.dirty and (line.text or final):
                self._emit(out, line, stream)
        return out

    def _emit(self, out: list[tuple[_Line, dict[str, Any]]], line: _Line, stream: int) -> None:
        line.dirty = False
        if line.id is None and not self._admit(len(line.text) + 1):
            self.dropped_lines += 1
            self.dropped_bytes += len(line.text) + 1
            line.id = -1  # dropped: later changes of this line are dropped too
            return
        if line.id == -1 or line.text == line.sent:
            return  # dropped, or sent already as it is (a progress bar's last state)
        line.sent = line.text
        body = {"time": round(line.time, 3), "stream": STREAM_NAMES[stream], "text": line.text}
        out.append((line, body))

    def _admit(self, size: int) -> bool:
        """The rate bound: a token bucket of bytes (new lines only; updates are free)."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < size:
            return False
        self._tokens -= size
        return True

    @staticmethod
    def assign(lines: list[tuple[_Line, dict[str, Any]]], seq: int) -> list[dict[str, Any]]:
        """Number the lines of the console record ``seq``: a new line's id is
        ``seq << CONSOLE_ID_SHIFT | index``; a line sent before keeps its id (it replaces
        the earlier version). At most ``MAX_CONSOLE_LINES`` lines a record."""
        assert len(lines) <= MAX_CONSOLE_LINES
        out = []
        for index, (line, body) in enumerate(lines):
            if line.id is None:
                line.id = (seq << CONSOLE_ID_SHIFT) | index
            out.append({"id": line.id, **body})
        return out

    def take_dropped(self) -> tuple[int, int]:
        """(lines, bytes) dropped or cut since the last call."""
        counts = (self.dropped_lines, self.dropped_bytes)
        self.dropped_lines = self.dropped_bytes = 0
        return counts
