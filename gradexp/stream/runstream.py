"""One run's life on the stream thread: open, drain, write through, flush, fsync, release.

Threading invariants (the reader should never have to guess which thread runs a line):

- Everything in this module runs on the stream thread, inside its asyncio loop (see
  ``gradexp.stream.thread``), except what the loop's executor runs (``fsync`` and gzip,
  both marked where they are submitted).
- The caller's side only appends to ``Channel.queue`` and reads counters; this side only
  pops. Records get their sequence numbers here, in queue order, so the file order is
  the log() order.
- The stream sees the run only through its :class:`~gradexp.stream.channel.Channel`, and
  the server only through the transport (``gradexp.transport``).
- Fork: a child process has no stream thread; nothing here runs in the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
import traceback
import zlib
from collections import deque
from itertools import chain, repeat
from operator import itemgetter, methodcaller
from typing import Any

import orjson

from gradexp.core.output import say, warn
from gradexp.protocol.names import key_problem
from gradexp.protocol.runfile import (
    FRAME,
    HEADER_SIZE,
    RunDir,
    RunFile,
    RunFileWriter,
    update_latest_link,
)
from gradexp.protocol.values import encode_float, encode_values, needs_encoding
from gradexp.protocol.wire import FILES_DIR, MAX_KEY_LENGTH, RECORD_TYPES
from gradexp.stream.channel import (
    ATTACH,
    CONFIG,
    CTRL_CLOSE,
    CTRL_FLUSH,
    CTRL_SKIP,
    FINISH,
    HISTORY,
    PARTIAL,
    SUMMARY,
    TELEMETRY,
    Channel,
    Waiter,
)

_FILE = RECORD_TYPES["file"]
_CRC_HISTORY = zlib.crc32(bytes([HISTORY]))  # CRC32 of the type byte, continued over the payload
_NAMES = {CONFIG: "config", SUMMARY: "summary", FINISH: "finish", TELEMETRY: "telemetry"}
#: Stop taking records from the queue while this much is written-but-not-accepted by the
#: OS (a failing disk): the queue then fills and log() blocks, instead of memory growing.
_MAX_UNWRITTEN = 8 * 1024 * 1024
#: One drain step runs at most this long before yielding to the loop (uploads, timers).
_DRAIN_SLICE_S = 0.02
#: Fast-path records are framed in chunks of up to _BULK_MAX (see RunStream._drain_bulk)
#: when at least _BULK_MIN are queued; fewer go one by one.
_BULK_MIN = 32
_BULK_MAX = 1024
_BULK_PAUSE = 8  # records taken one by one when the head of the queue declines a chunk
_call = methodcaller("__call__")  # operator.call, which Python 3.10 lacks
_first = itemgetter(0)
_second = itemgetter(1)


def start_run(channel: Channel) -> None:
    """Start streaming one run (runs on the stream loop, via call_soon[_threadsafe])."""
    stream = RunStream(channel)
    task = asyncio.get_running_loop().create_task(
        stream.main(), name=f"gradexp-run-{channel.run_id}"
    )
    _tasks.add(task)  # keep a reference: the loop only holds weak ones
    task.add_done_callback(_tasks.discard)


_tasks: set[asyncio.Task[None]] = set()


class RunStream:
    """One run on the stream thread: drains its queue, writes its file, drives its upload."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.run_id = channel.run_id
        self.settings = channel.settings
        self.run_dir = RunDir(channel.run_dir or ".")
        self.meta = dict(channel.meta)
        self.loop = asyncio.get_running_loop()
        self.wake_event = asyncio.Event()
        self.writer: RunFileWriter | None = None
        self.seq = 0  # the last sequence number assigned
        self.uploader: Any = None  # gradexp.transport.uploader.Uploader when online
        self.upload_task: asyncio.Task[None] | None = None
        self.flushes: list[tuple[Waiter, int, bool]] = []  # (waiter, target seq, want ack)
        self.finish_waiter: Waiter | None = None
        self.finish_task: asyncio.Task[None] | None = None
        self.last_fsync = time.monotonic()
        self.fsync_task: asyncio.Future[None] | None = None
        self.dropped: dict[str, int] = {}  # values dropped on this side (keys, encoding)
        self.warned: set[str] = set()
        self.bad: list[tuple[str, str]] = []  # (key, reason) dropped in this drain
        self.known_keys: set[str] = set()  # keys already validated
        self.last: dict[str, Any] = {}  # last values seen in this drain (for the summary)
        # The step rules (see _history/_hold/_emit); all of it is this thread's alone.
        self.next_step = 0
        self.max_step = -1
        self.partial: dict[str, Any] | None = None  # log(commit=False) values held
        self.partial_step = 0
        self.partial_time = 0.0
        self.attached: dict[str, Any] | None = None  # _attach_to_next_step values held
        self.warned_lower = False
        self.files_dir_made = False

    # --- lifecycle ---

    async def main(self) -> None:
        """The run's life on the stream thread: open, drain/write/flush on each tick, release.

        Each iteration waits for the tick (``write_interval``) or a wake, drains the queue
        for at most one slice, writes through to the OS, resolves flushes, and starts an
        fsync when one is due. It ends when the caller releases the run (after finish()).
        """
        channel = self.channel
        try:
            await self._open()
        except Exception as exc:
            say(f"could not start run {self.run_id}: {_one_line(exc)}")
            channel.fail(_one_line(exc))
            return
        channel.started.resolve(True)
        # From here on the caller may wake us; a wake just sets the event (loop thread).
        channel.wake = lambda: self.loop.call_soon_threadsafe(self.wake_event.set)
        more = True  # drain at once: records may have been queued before we started
        try:
            while True:
                if not more:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake_event.wait(), self.settings.write_interval)
                self.wake_event.clear()
                channel.wake_pending = False
                more = self._drain()
                self._write_through()
                self._after_write()
                if channel.release and not channel.queue:
                    break
                self._maybe_fsync()
                if more and channel.disk_error is not None:
                    # The disk refuses writes (full?): retry calmly; meanwhile the queue
                    # fills up to the memory bound, then the run sheds (Run._start_shedding).
                    await asyncio.sleep(0.5)
                elif more:
                    await asyncio.sleep(0)  # let the uploader and timers run between slices
        except Exception as exc:  # a bug here must not leave the caller blocked forever
            say(f"internal error in the stream of run {self.run_id}: {_one_line(exc)}")
            traceback.print_exc()
            channel.fail(f"internal error: {_one_line(exc)}")
        finally:
            await self._release()

    async def _open(self) -> None:
        """Create the run file, resume if asked, and start the uploader (online)."""
        channel = self.channel
        start_seq = 1
        resume_mode = channel.resume_mode
        if self.settings.mode == "online":
            from gradexp.transport.client import ServerClient
            from gradexp.transport.sources import LiveSource
            from gradexp.transport.uploader import Uploader

            client = ServerClient(self.settings, run_dir=channel.run_dir)
            self.uploader = Uploader(
                client, self.run_dir, self.meta, self.settings, listener=channel
            )
            if resume_mode:
                reply = await self.uploader.create_run(give_up_after=25.0)
                start_seq = int(reply.get("acked_seq", 0)) + 1
                channel.resume_step = int(reply.get("last_step", -1))
                if resume_mode == "must" and start_seq == 1 and channel.resume_step < 0:
                    await client.close()
                    raise RuntimeError(
                        f"run {self.run_id} has nothing on {self.settings.base_url} to resume; "
                        "use resume='allow' to start it if it does not exist"
                    )
        elif resume_mode:
            last_seq, last_step = await self.loop.run_in_executor(None, self._local_resume_point)
            if last_seq == 0 and resume_mode == "must":
                raise RuntimeError(
                    f"no earlier run {self.run_id} under {os.path.dirname(self.run_dir.path)} "
                    "to resume offline; use resume='allow' to start it"
                )
            start_seq, channel.resume_step = last_seq + 1, last_step
        self.seq = start_seq - 1
        if channel.resume_step >= 0:
            self.next_step = channel.resume_step + 1
            self.max_step = channel.resume_step
        channel.start_seq = start_seq
        channel.next_step = self.next_step
        channel.last_seq = channel.written_seq = channel.acked_seq = self.seq
        self.meta["first_seq"] = start_seq
        self.run_dir.write_meta(self.meta)
        if start_seq > 1:
            # This directory holds sequences from start_seq on: nothing before is ours.
            self.run_dir.write_ack(start_seq - 1, HEADER_SIZE)
        self.writer = RunFileWriter(self.run_dir.log_path)
        self.writer.write_through()
        update_latest_link(os.path.dirname(self.run_dir.path), os.path.basename(self.run_dir.path))
        if self.uploader is not None:
            self.uploader.source = LiveSource(self.run_dir.log_path, HEADER_SIZE, start_seq)
            self.upload_task = self.loop.create_task(self.uploader.run(), name="gradexp-upload")

    def _local_resume_point(self) -> tuple[int, int]:
        """Offline resume (executor thread): last seq and step of this id's latest run dir."""
        from gradexp.protocol.runfile import find_run_dirs

        last_seq = last_step = -1
        for rd in reversed(find_run_dirs(os.path.dirname(self.run_dir.path))):
            if rd.path == self.run_dir.path or rd.run_id != self.run_id:
                continue
            for record in RunFile(rd.path):
                last_seq = max(last_seq, record.seq)
                if record.step is not None:
                    last_step = max(last_step, record.step)
            break
        return max(last_seq, 0), last_step

    async def _release(self) -> None:
        """Let go of the run: stop the upload, persist the ack, close the file."""
        channel = self.channel
        channel.wake = None
        try:
            if self.uploader is not None:
                await self.uploader.stop()
            if self.fsync_task is not None:
                with contextlib.suppress(Exception):
                    await self.fsync_task
            if self.writer is not None:
                try:
                    self.writer.close()  # write through and fsync
                    channel.written_seq = self.seq
                except OSError as exc:
                    say(f"could not close the run file of {self.run_id}: {exc.strerror}")
        finally:
            for waiter, _, _ in self.flushes:
                waiter.resolve(False)
            self.flushes.clear()
            if self.finish_waiter is not None and not self.finish_waiter.event.is_set():
                self.finish_waiter.resolve(False)
            with channel.room:
                channel.room.notify_all()
            channel.closed.resolve(True)

    # --- draining the queue ---

    def _drain(self) -> bool:
        """Take records from the queue, number and frame them; True if more is left.

        Runs for at most one slice so the loop stays responsive; stops early while the
        file is not accepting writes (the queue then fills up: backpressure). The fast
        path's ``(time, values)`` items are handled inline, with the writer's framing
        inlined too: this loop is the stream's hot path. Everything else goes through
        :meth:`_take`, with the counters kept in ``self`` around the call.
        """
        channel = self.channel
        writer = self.writer
        assert writer is not None
        q = channel.queue
        popleft = q.popleft
        buf = writer.buffer
        pack = FRAME.pack
        crc32 = zlib.crc32
        crc_history = _CRC_HISTORY
        dumps = orjson.dumps
        known = self.known_keys.issuperset
        update_last = self.last.update
        perf = time.perf_counter
        deadline = perf() + _DRAIN_SLICE_S
        seq = self.seq
        next_step = self.next_step
        count = 0
        more = False
        bulk_from = 0  # the count from which chunks are tried again (see below)
        while q:
            if len(buf) > _MAX_UNWRITTEN:
                more = True  # write this through first (or wait: see disk_error)
                break
            if (
                count >= bulk_from
                and len(q) >= _BULK_MIN
                and self.partial is None
                and self.attached is None
            ):
                taken = self._drain_bulk(q, buf, seq, next_step)
                if taken:
                    seq += taken
                    next_step += taken
                    count += taken
                    if perf() > deadline:
                        more = bool(q)
                        break
                    continue
                # The head of the queue needs the per-item path: a few records that way
                # (they teach known_keys their keys), then chunks again.
                bulk_from = count + _BULK_PAUSE
            item = popleft()
            if len(item) == 2 and self.partial is None and self.attached is None:
                # log()'s fast path: plain values at the next auto step.
                t, values = item
                if not known(values):
                    values = self._check_keys(values)
                    if not values:
                        continue
                seq += 1
                try:
                    payload = dumps(
                        {
                            "seq": seq,
                            "type": "history",
                            "step": next_step,
                            "time": t,
                            "values": values,
                        }
                    )
                except TypeError:  # not plain after all: the general path drops what it must
                    seq -= 1
                    self.seq, self.next_step = seq, next_step
                    self._emit(next_step, t, values)
                    seq, next_step = self.seq, self.next_step
                    continue
                # orjson writes NaN and ±Inf as null; only then look at the values again.
                if b"null" in payload and needs_encoding(values):
                    values = encode_values(values, self, self.bad)
                    payload = dumps(
                        {
                            "seq": seq,
                            "type": "history",
                            "step": next_step,
                            "time": t,
                            "values": values,
                        }
                    )
                next_step += 1
                buf += pack(len(payload), crc32(payload, crc_history), HISTORY)
                buf += payload
                update_last(values)
            else:
                self.seq, self.next_step, self.max_step = (
                    seq,
                    next_step,
                    max(self.max_step, next_step - 1),
                )
                self._take(item)
                seq, next_step = self.seq, self.next_step
            count += 1
            if count & 255 == 0 and perf() > deadline:
                more = bool(q)
                break
        self.seq = seq
        if next_step - 1 > self.max_step:
            self.max_step = next_step - 1
        self.next_step = next_step
        if self.last:
            with channel.summary_lock:
                channel.last_values.update(self.last)
            self.last.clear()
        if self.bad:
            self._report_bad(self.bad)
        self._telemetry()
        channel.last_seq = self.seq
        channel.next_step = self.next_step
        channel.check_at = channel.base_check  # the queue is short again: check early
        if channel.waiters:
            # Someone is blocked in log() on the memory bound: tell them records went out.
            with channel.room:
                channel.room.notify_all()
        return more

    def _drain_bulk(self, q: Any, buf: bytearray, seq: int, next_step: int) -> int:
        """Frame the queue's leading run of plain fast-path records as one chunk; return
        how many were taken (0: the head of the queue needs the per-item path).

        Writes the same frames as the per-item loop of :meth:`_drain`, with a few C-level
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
        if lens.count(2) != k:  # fast items are (time, values): stop at the first other
            k = lens.index(next(n for n in lens if n != 2))
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
                    range(next_step, next_step + k),
                    map(_first, chunk),
                    values,
                    strict=False,  # the times of chunk[:k]
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
            return 0
        headers = map(
            FRAME.pack,
            map(len, payloads),
            map(zlib.crc32, payloads, repeat(_CRC_HISTORY)),
            repeat(HISTORY),
        )
        buf += b"".join(chain.from_iterable(zip(headers, payloads, strict=True)))
        deque(map(self.last.update, values[:k]), maxlen=0)  # the summary's last values
        return k

    # --- steps: every rule of log()'s step semantics, applied in queue order ---

    def _take(self, item: tuple[Any, ...]) -> None:
        """One queue item other than a fast-path record (or one while values are held)."""
        if len(item) == 2:
            self._history(None, item[0], item[1])
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
            self._append(FINISH, item[1])
        elif kind == CONFIG:
            self._append(CONFIG, {"update": _encode_nested(item[1])})
        elif kind == SUMMARY:
            self._append(SUMMARY, {"update": encode_values(item[1], self, self.bad)})
        elif kind == CTRL_FLUSH:
            self.flushes.append((item[1], self.seq, item[2]))
        elif kind == CTRL_CLOSE:
            self.finish_waiter = item[1]
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
            values = encode_values(values, self, self.bad)
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
        assert self.writer is not None
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

    def _append(self, kind: int, body: dict[str, Any]) -> None:
        assert self.writer is not None
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

    def _report_bad(self, bad: list[tuple[str, str]]) -> None:
        self.bad = []
        for key, reason in bad:
            self.dropped[key] = self.dropped.get(key, 0) + 1
            if key not in self.warned:
                self.warned.add(key)
                warn(f"dropped the value of {key!r}: {reason} (said once per key).")

    def _telemetry(self) -> None:
        """Turn the drop counters (both threads') into one telemetry record (counts add up)."""
        channel = self.channel
        dropped = self.dropped
        shed = 0
        if channel.dropped or channel.shed:
            with channel.lock:  # the caller updates these under this lock
                theirs, channel.dropped = channel.dropped, {}
                shed, channel.shed = channel.shed, 0
            for key, n in theirs.items():
                dropped[key] = dropped.get(key, 0) + n
        if dropped or shed:
            self.dropped = {}
            body: dict[str, Any] = {"dropped_values": dropped} if dropped else {}
            if shed:
                body["dropped_records"] = shed  # log() calls refused while the disk was full
            self._append(TELEMETRY, body)

    # --- BlobSink, for Captured.encode (called from _drain, on this thread) ---

    def add_file(self, data: bytes, *, suffix: str, content_type: str) -> dict[str, Any]:
        """Store a blob in ``files/`` (named by its sha256) and record a ``file`` record."""
        if "/" in suffix or "\\" in suffix or "\x00" in suffix or len(suffix) > 32:
            raise ValueError(f"bad blob suffix {suffix!r}")
        sha = hashlib.sha256(data).hexdigest()
        name = sha + suffix
        files_dir = os.path.join(self.run_dir.path, FILES_DIR)
        if not self.files_dir_made:
            os.makedirs(files_dir, exist_ok=True)
            self.files_dir_made = True
        path = os.path.join(files_dir, name)
        if not os.path.exists(path):
            tmp = f"{path}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        info = {"path": name, "sha256": sha, "size": len(data)}
        self._append(_FILE, {**info, "content_type": content_type})
        return info

    # --- writing through, flushes, fsync ---

    def _write_through(self) -> None:
        writer = self.writer
        assert writer is not None
        if not writer.buffered:
            return
        try:
            writer.write_through()
        except OSError as exc:
            channel = self.channel
            if channel.disk_error is None:
                channel.disk_error = exc.strerror or str(exc)
                say(
                    f"cannot write the run file of {self.run_id} ({channel.disk_error}); "
                    "retrying every 0.5 s. Records wait in memory up to memory_limit; past "
                    "it, log() drops new ones rather than stall training."
                )
                if channel.waiters:  # blocked in log() on the bound: stop waiting, shed
                    with channel.room:
                        channel.room.notify_all()
            return
        if self.channel.disk_error is not None:
            self.channel.disk_error = None
            say(f"the run file of {self.run_id} is being written again.")
        if not writer.buffered:
            self.channel.written_seq = self.seq
            if self.uploader is not None:
                self.uploader.on_written(writer.written, self.seq)

    def _after_write(self) -> None:
        """Resolve flushes whose records are written; hand the rest to the uploader."""
        written = self.channel.written_seq
        if self.flushes:
            keep = []
            for waiter, target, want_ack in self.flushes:
                if target > written:
                    keep.append((waiter, target, want_ack))
                elif want_ack and self.uploader is not None:
                    self.uploader.add_flush(target, waiter)
                else:
                    waiter.resolve(True)
            self.flushes = keep
        if self.finish_waiter is not None and self.finish_task is None and self.seq <= written:
            self.finish_task = self.loop.create_task(self._finish(self.finish_waiter))

    async def _finish(self, waiter: Waiter) -> None:
        """The finish record is written: fsync, then (online) wait for the acknowledgement."""
        await self._fsync()
        if self.uploader is None:
            waiter.resolve(True)
            return
        self.uploader.add_flush(self.seq, waiter)

    def _maybe_fsync(self) -> None:
        writer = self.writer
        if (
            writer is not None
            and self.fsync_task is None
            and writer.written > writer.synced
            and time.monotonic() - self.last_fsync >= self.settings.fsync_interval
        ):
            self.fsync_task = asyncio.ensure_future(self._fsync())

    async def _fsync(self) -> None:
        """fsync in the executor: it can take a while, and the loop must keep sending."""
        writer = self.writer
        if writer is None or writer.closed:
            return
        self.last_fsync = time.monotonic()
        try:
            await self.loop.run_in_executor(None, writer.sync)  # executor thread
        except OSError as exc:
            say(f"fsync of the run file of {self.run_id} failed: {exc.strerror}")
        finally:
            self.fsync_task = None


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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
