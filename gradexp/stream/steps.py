"""Queue items -> framed records: the step rules and the framing (stream thread only).

:class:`Framer` takes what the caller queued, in queue order, and turns it into frames in
the run file writer's buffer: it numbers the records (``seq``) and the steps (auto steps,
explicit steps, ``commit=False`` merging, values attached by ``watch``), validates keys,
encodes what JSON cannot hold, and keeps each drain's last values for the summary.
One thread does all of it in queue order, so none of it needs a lock.

:meth:`Framer.drain` is the stream's hot path: the fast path's ``(time, values)`` items
are framed inline (the writer's framing inlined too), long runs of them in chunks
(:meth:`Framer._drain_bulk`); every other item goes through :meth:`Framer.take`.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Callable
from itertools import chain, repeat
from operator import itemgetter, methodcaller
from typing import Any

import orjson

from gradexp.core.output import warn
from gradexp.protocol.captured import BlobSink
from gradexp.protocol.names import key_problem
from gradexp.protocol.runfile import FRAME, RunFileWriter
from gradexp.protocol.values import encode_float, encode_values, needs_encoding
from gradexp.protocol.wire import MAX_KEY_LENGTH, RECORD_TYPE_NAMES
from gradexp.stream.channel import (
    ALERT,
    ARTIFACT,
    ATTACH,
    CONFIG,
    CTRL_CLOSE,
    CTRL_FLUSH,
    CTRL_SKIP,
    FINISH,
    HISTORY,
    METRIC,
    PARTIAL,
    RUN_FIELDS,
    SUMMARY,
    Channel,
)

__all__ = ["Framer"]

_CRC_HISTORY = zlib.crc32(bytes([HISTORY]))  # CRC32 of the type byte, continued over the payload
_NAMES = RECORD_TYPE_NAMES  # a record's type byte -> its JSON "type"
#: Stop taking records from the queue while this much is written-but-not-accepted by the
#: OS (a failing disk): the queue then fills and log() blocks, instead of memory growing.
MAX_UNWRITTEN = 8 * 1024 * 1024
#: Fast-path records are framed in chunks of up to _BULK_MAX (see Framer._drain_bulk)
#: when at least _BULK_MIN are queued; fewer go one by one.
_BULK_MIN = 32
_BULK_MAX = 1024
_BULK_PAUSE = 8  # records taken one by one when the head of the queue declines a chunk
_call = methodcaller("__call__")  # operator.call, which Python 3.10 lacks
_first = itemgetter(0)
_second = itemgetter(1)
_third = itemgetter(2)


class Framer:
    """Numbers, checks, encodes and frames one run's queue items, in queue order.

    ``writer`` gets the frames; ``sink`` stores the blobs of captured values (the
    :class:`~gradexp.stream.runstream.RunStream`); ``channel`` is where the bytes of
    captured values are counted out; ``control(item, seq)`` receives the flush and close
    items with the sequence number they wait for. After each :meth:`drain`, ``last``
    holds the last value of each key framed and ``bad`` the ``(key, reason)`` of each
    value dropped: the stream takes and clears both.
    """

    def __init__(
        self,
        writer: RunFileWriter,
        sink: BlobSink,
        channel: Channel,
        control: Callable[[tuple[Any, ...], int], None],
        *,
        seq: int = 0,
        next_step: int = 0,
    ) -> None:
        self.writer = writer
        self.sink = sink
        self.channel = channel
        self.control = control
        self.queue = channel.queue
        self.seq = seq  # the last sequence number assigned
        self.known_keys: set[str] = set()  # keys already validated
        self.last: dict[str, Any] = {}  # last values framed in this drain (for the summary)
        self.bad: list[tuple[str, str]] = []  # (key, reason) dropped in this drain
        # The step rules (see history/hold/emit); all of it is this thread's alone.
        self.next_step = next_step
        self.max_step = next_step - 1
        self.partial: dict[str, Any] | None = None  # log(commit=False) values held
        self.partial_step = 0
        self.partial_time = 0.0
        self.attached: dict[str, Any] | None = None  # _attach_to_next_step values held
        self.warned_lower = False

    # --- the hot path ---

    def drain(self, deadline: float) -> bool:
        """Take items from the queue, number and frame them; True if more is left.

        Runs until ``deadline`` (``time.perf_counter``) so the loop stays responsive, and
        stops early while the writer holds more than ``MAX_UNWRITTEN`` bytes the OS has
        not accepted (the queue then fills up: backpressure). The counters live in locals
        here and go back to ``self`` around every call that needs them.
        """
        q = self.queue
        popleft = q.popleft
        buf = self.writer.buffer
        pack = FRAME.pack
        crc32 = zlib.crc32
        crc_history = _CRC_HISTORY
        dumps = orjson.dumps
        known = self.known_keys.issuperset
        update_last = self.last.update
        perf = time.perf_counter
        seq = self.seq
        next_step = self.next_step
        count = 0
        more = False
        bulk_from = 0  # the count from which chunks are tried again (see below)
        while q:
            if len(buf) > MAX_UNWRITTEN:
                more = True  # write this through first (or wait: see disk_error)
                break
            if (
                count >= bulk_from
                and len(q) >= _BULK_MIN
                and self.partial is None
                and self.attached is None
            ):
                taken, after = self._drain_bulk(q, buf, seq, next_step)
                if taken:
                    seq += taken
                    next_step = after
                    count += taken
                    if perf() > deadline:
                        more = bool(q)
                        break
                    continue
                # The head of the queue needs the per-item path: a few records that way
                # (they teach known_keys their keys), then chunks again.
                bulk_from = count + _BULK_PAUSE
            item = popleft()
            n = len(item)
            if (
                (n == 2 or (n == 3 and type(item[0]) is float and item[2] >= next_step - 1))
                and self.partial is None
                and self.attached is None
            ):
                # log()'s fast path: plain values at the next auto step, or at an explicit
                # step that is not below the last one (a lower one warns: the general path).
                if n == 2:
                    t, values = item
                    step = next_step
                else:
                    t, values, step = item
                if not known(values):
                    values = self._check_keys(values)
                    if not values:
                        continue
                seq += 1
                try:
                    payload = dumps(
                        {"seq": seq, "type": "history", "step": step, "time": t, "values": values}
                    )
                except TypeError:  # not plain after all: the general path drops what it must
                    seq, next_step = self._emit_at(seq - 1, next_step, step, t, values)
                    continue
                # orjson writes NaN and ±Inf as null; only then look at the values again.
                if b"null" in payload and needs_encoding(values):
                    values, payload = self._encoded(seq, step, t, values)
                if step >= next_step:
                    next_step = step + 1
                buf += pack(len(payload), crc32(payload, crc_history), HISTORY)
                buf += payload
                update_last(values)
            else:
                seq, next_step = self._take_at(item, seq, next_step)
            count += 1
            if count & 255 == 0 and perf() > deadline:
                more = bool(q)
                break
        self.seq = seq
        if next_step - 1 > self.max_step:
            self.max_step = next_step - 1
        self.next_step = next_step
        return more

    def _emit_at(
        self, seq: int, next_step: int, step: int, t: float, values: dict[str, Any]
    ) -> tuple[int, int]:
        """:meth:`_emit` from :meth:`drain`'s locals; returns them updated."""
        self.seq, self.next_step = seq, next_step
        if next_step - 1 > self.max_step:
            self.max_step = next_step - 1
        self._emit(step, t, values)
        return self.seq, self.next_step

    def _take_at(self, item: tuple[Any, ...], seq: int, next_step: int) -> tuple[int, int]:
        """:meth:`take` from :meth:`drain`'s locals; returns them updated."""
        self.seq, self.next_step = seq, next_step
        if next_step - 1 > self.max_step:
            self.max_step = next_step - 1
        self.take(item)
        return self.seq, self.next_step

    def _encoded(
        self, seq: int, step: int, t: float, values: dict[str, Any]
    ) -> tuple[dict[str, Any], bytes]:
        """A fast-path record holding NaN or ±Inf: its values encoded, and its payload."""
        values = encode_values(values, self.sink, self.bad)
        record = {"seq": seq, "type": "history", "step": step, "time": t, "values": values}
        return values, orjson.dumps(record)

    def _drain_bulk(
        self, q: deque[Any], buf: bytearray, seq: int, next_step: int
    ) -> tuple[int, int]:
        """Frame the queue's leading run of plain fast-path records as one chunk; return
        how many were taken (0: the head of the queue needs the per-item path) and the
        next auto step after them.

        A run is of one shape: auto steps ``(time, values)``, or explicit steps
        ``(time, values, step)`` that never go down (and start at or above the last step).

        Writes the same frames as the per-item loop of :meth:`drain`, with a few C-level
        calls per chunk instead of Python code per record: one ``orjson.dumps`` of the
        chunk's record dicts, split into the records' payloads at their boundaries, then
        every frame header built and joined by ``map``. The chunk ends before the first
        item that needs more: another kind of item, a key not validated yet, a value
        orjson cannot encode (an int beyond 64 bits), a non-finite float. What is not
        taken goes back to the head of the queue, in order.
        """
        k = min(len(q), _BULK_MAX)
        chunk = list(map(_call, repeat(q.popleft, k)))  # the caller only appends: k are there
        lens = list(map(len, chunk))
        steps: Any
        if lens[0] == 3 and type(chunk[0][0]) is float:
            # Explicit steps: up to the first other shape, or the first step that goes down.
            if lens.count(3) != k:
                k = lens.index(next(n for n in lens if n != 3))
            if set(map(type, map(_first, chunk[:k]))) != {float}:
                k = next(i for i, item in enumerate(chunk) if type(item[0]) is not float)
            steps = list(map(_third, chunk[:k]))
            if steps and steps[0] < next_step - 1:
                k = 0
            elif steps != sorted(steps):
                k = next(i for i in range(1, k) if steps[i] < steps[i - 1])
            del steps[k:]
        else:
            if lens.count(2) != k:  # fast items are (time, values): stop at the first other
                k = lens.index(next(n for n in lens if n != 2))
            steps = range(next_step, next_step + k)
        values = list(map(_second, chunk[:k]))
        known = self.known_keys.issuperset
        if k and not known(chain.from_iterable(values)):
            k = next(i for i, v in enumerate(values) if not known(v))
        payloads: list[bytes] = []
        while k:
            records = [
                {"seq": q_, "type": "history", "step": s_, "time": t, "values": v}
                for q_, s_, t, v in zip(
                    range(seq + 1, seq + k + 1),
                    steps,
                    map(_first, chunk),
                    values,
                    strict=False,  # the steps and times of chunk[:k]
                )
            ]
            try:
                blob = orjson.dumps(records)
            except TypeError:  # an int beyond 64 bits: stop before it (the per-item path drops it)
                k = next(i for i, v in enumerate(values) if not _encodable(v))
                continue
            # orjson writes NaN and ±Inf as null: stop before the first record holding one.
            if b"null" in blob and any(map(needs_encoding, values[:k])):
                k = next(i for i, v in enumerate(values) if needs_encoding(v))
                continue
            # Values are flat (plain scalars), so an object that starts right after "},"
            # with "seq" is a record of this array: split there. orjson never writes a
            # newline, so it marks the cuts.
            payloads = blob[1:-1].replace(b'},{"seq":', b'}\n{"seq":').split(b"\n")
            break
        if len(payloads) != k:  # cannot happen (see above); never write a bad frame
            k = 0
        q.extendleft(reversed(chunk[k:]))  # one C call: atomic for the caller's appends
        if not k:
            return 0, next_step
        headers = map(
            FRAME.pack,
            map(len, payloads),
            map(zlib.crc32, payloads, repeat(_CRC_HISTORY)),
            repeat(HISTORY),
        )
        buf += b"".join(chain.from_iterable(zip(headers, payloads, strict=True)))
        deque(map(self.last.update, values[:k]), maxlen=0)  # the summary's last values
        return k, max(next_step, steps[k - 1] + 1)

    # --- every rule of log()'s step semantics, applied in queue order ---

    def take(self, item: tuple[Any, ...]) -> None:
        """One queue item other than a fast-path record (or one while values are held)."""
        if len(item) == 2:
            self._history(None, item[0], item[1])
            return
        if len(item) == 3 and type(item[0]) is float:  # log(step=...)'s fast item
            self._history(item[2], item[0], item[1])
            return
        kind = item[0]
        if kind == HISTORY:
            self._history(item[1], item[2], item[3])
            self.channel.captured_out += item[4]
        elif kind == PARTIAL:
            self._hold(item[1], item[2], item[3])
            self.channel.captured_out += item[4]
        elif kind == ATTACH:
            self.attached = {**(self.attached or {}), **item[1]}
            self.channel.captured_out += item[2]
        elif kind == FINISH:
            # Values still held (commit=False, or attached with no step after) are kept.
            if self.partial is not None:
                self._commit_held()
            if self.attached is not None:
                self._emit(self.next_step, item[1]["time"], {})
            self.append(FINISH, item[1])
        elif kind == CONFIG:
            self.append(CONFIG, {"update": _encode_nested(item[1])})
        elif kind == SUMMARY:
            self.append(SUMMARY, {"update": encode_values(item[1], self.sink, self.bad)})
        elif kind == RUN_FIELDS:  # the run's own fields travel in a config record
            self.append(CONFIG, {"update": {}, "run": item[1]})
        elif kind in (METRIC, ALERT, ARTIFACT):
            self.append(kind, item[1])
        elif kind in (CTRL_FLUSH, CTRL_CLOSE):
            self.control(item, self.seq)  # the stream resolves them once this seq is out
        elif kind == CTRL_SKIP:  # records were shed: their auto steps stay empty
            if self.partial is not None:
                self._commit_held()
            self.next_step += item[1]

    def _history(self, step: int | None, t: float, values: dict[str, Any]) -> None:
        """log(values, step=step) with commit=True."""
        if self.partial is not None and step is not None and step != self.partial_step:
            self._commit_held()  # values held for another step are committed first
        if self.partial is not None:
            values = {**self.partial, **values}
            step = self.partial_step
            self.partial = None
        self._emit(self.next_step if step is None else step, t, values)

    def _hold(self, step: int | None, t: float, values: dict[str, Any]) -> None:
        """log(values, step=step, commit=False): merge into the current step, do not advance."""
        if self.partial is not None and step is not None and step != self.partial_step:
            self._commit_held()
        if self.partial is None:
            self.partial = {}
            self.partial_step = self.next_step if step is None else step
            self.partial_time = t
        self.partial.update(values)

    def _commit_held(self) -> None:
        assert self.partial is not None
        values, self.partial = self.partial, None
        self._emit(self.partial_step, self.partial_time, values)

    def _emit(self, step: int, t: float, values: dict[str, Any]) -> None:
        """Write one history record at ``step`` (attached values merged in)."""
        if self.attached is not None:
            values = {**self.attached, **values}  # the user's own keys win
            self.attached = None
        if not self.known_keys.issuperset(values):
            values = self._check_keys(values)
        if not values:
            return
        if step < self.max_step and not self.warned_lower:
            self.warned_lower = True
            warn(
                f"step {step} is lower than the last step {self.max_step}; the values are "
                "kept with the step given. Steps should increase (said once per run)."
            )
        if step >= self.next_step:
            self.next_step = step + 1
        if step > self.max_step:
            self.max_step = step
        if needs_encoding(values):
            values = encode_values(values, self.sink, self.bad)
        self.seq += 1
        try:
            payload = orjson.dumps(
                {"seq": self.seq, "type": "history", "step": step, "time": t, "values": values}
            )
        except TypeError:  # cannot happen for normalized values; never lose the rest
            values = self._drop_unencodable(values, self.bad)
            payload = orjson.dumps(
                {"seq": self.seq, "type": "history", "step": step, "time": t, "values": values}
            )
        self.writer.append(HISTORY, payload)
        self.last.update(values)

    def _check_keys(self, values: dict[str, Any]) -> dict[str, Any]:
        """Drop (and report) keys that are not valid metric keys; remember the good ones."""
        kept = {}
        for key, value in values.items():
            if key in self.known_keys:
                kept[key] = value
                continue
            problem = key_problem(key)
            if problem is None:
                if len(self.known_keys) < 100_000:  # a cache, not a registry: bounded
                    self.known_keys.add(key)
                kept[key] = value
            else:
                self.bad.append((str(key)[:MAX_KEY_LENGTH], problem))
        return kept

    def append(self, kind: int, body: dict[str, Any]) -> None:
        """Number and frame one record other than history (config, summary, file ...)."""
        self.seq += 1
        record = {"seq": self.seq, "type": _NAMES.get(kind, "file"), **body}
        self.writer.append(kind, orjson.dumps(record))

    def _drop_unencodable(
        self, values: dict[str, Any], bad: list[tuple[str, str]]
    ) -> dict[str, Any]:
        kept = {}
        for key, value in values.items():
            try:
                orjson.dumps(value)
            except TypeError:
                bad.append((key, f"{type(value).__name__} cannot be encoded"))
                continue
            kept[key] = value
        return kept


def _encodable(values: dict[str, Any]) -> bool:
    """Whether orjson can encode these values (not an int beyond 64 bits, say)."""
    try:
        orjson.dumps(values)
    except TypeError:
        return False
    return True


def _encode_nested(value: Any) -> Any:
    """Config values: non-finite floats encoded at any depth (orjson would write null)."""
    if type(value) is float:
        return encode_float(value)
    if type(value) is dict:
        return {k: _encode_nested(v) for k, v in value.items()}
    if type(value) is list:
        return [_encode_nested(v) for v in value]
    return value
