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
from typing import TYPE_CHECKING, Any

from gradexp.core.output import say, warn
from gradexp.protocol.runfile import (
    HEADER_SIZE,
    RunDir,
    RunFile,
    RunFileWriter,
    update_latest_link,
)
from gradexp.protocol.wire import FILES_DIR, RECORD_TYPES
from gradexp.stream.channel import CTRL_CLOSE, CTRL_FLUSH, TELEMETRY, Channel, Waiter
from gradexp.stream.machine import MachineRecorder
from gradexp.stream.preload import preload
from gradexp.stream.saving import FileSaver
from gradexp.stream.steps import Framer

if TYPE_CHECKING:
    from gradexp.transport.uploader import Uploader

_FILE = RECORD_TYPES["file"]
#: One drain step runs at most this long before yielding to the loop (uploads, timers).
_DRAIN_SLICE_S = 0.02


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
        self.framer: Framer | None = None  # numbers and frames the records (made by _open)
        self.uploader: Uploader | None = None  # online only
        self.upload_task: asyncio.Task[None] | None = None
        self.flushes: list[tuple[Waiter, int, bool]] = []  # (waiter, target seq, want ack)
        self.finish_waiter: Waiter | None = None
        self.finish_task: asyncio.Task[None] | None = None
        self.last_fsync = time.monotonic()
        self.fsync_task: asyncio.Future[None] | None = None
        self.dropped: dict[str, int] = {}  # values dropped on this side (keys, encoding)
        self.warned: set[str] = set()
        self.files_dir_made = False
        self.machine = MachineRecorder(self)  # system samples, console lines, environment
        self.saver = FileSaver(self)  # the files save() names

    @property
    def seq(self) -> int:
        """The last sequence number assigned (0 before the run file exists, and once released)."""
        return 0 if self.framer is None else self.framer.seq

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
        self.machine.start()
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
                    # fills up to the memory bound, then the run sheds (Channel.start_shedding).
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
            preload("gradexp.transport.client", "gradexp.transport.uploader")  # fork-safe
            from gradexp.transport.client import ServerClient
            from gradexp.transport.sources import LiveSource
            from gradexp.transport.uploader import Uploader

            client = ServerClient(self.settings, run_dir=channel.run_dir)
            self.uploader = Uploader(
                client, self.run_dir, self.meta, self.settings, listener=channel
            )
            if resume_mode:
                # resume="never" PUTs without resume: a run that holds records is refused
                # (409 run_exists), and the uploader's message says what to do.
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
            where = os.path.dirname(self.run_dir.path)
            if last_seq == 0 and resume_mode == "must":
                raise RuntimeError(
                    f"no earlier run {self.run_id} under {where} to resume offline; use "
                    "resume='allow' to start it"
                )
            if last_seq > 0 and resume_mode == "never":
                raise RuntimeError(
                    f"run {self.run_id} already exists under {where} and resume='never' "
                    "refuses to continue it; use a new id, or resume='allow'"
                )
            if resume_mode != "never":
                start_seq, channel.resume_step = last_seq + 1, last_step
        next_step = channel.resume_step + 1  # 0 unless resuming
        channel.start_seq = start_seq
        channel.next_step = next_step
        channel.last_seq = channel.written_seq = channel.acked_seq = start_seq - 1
        self.meta["first_seq"] = start_seq
        self.run_dir.write_meta(self.meta)
        if start_seq > 1:
            # This directory holds sequences from start_seq on: nothing before is ours.
            self.run_dir.write_ack(start_seq - 1, HEADER_SIZE)
        self.writer = RunFileWriter(self.run_dir.log_path)
        self.writer.write_through()
        self.framer = Framer(
            self.writer, self, channel, self._control, seq=start_seq - 1, next_step=next_step
        )
        code = self.meta.get("code")
        if code:
            await self._save_code(str(code))
        if not (self.meta.get("writer") or {}).get("rank"):  # a job's latest run is rank 0's
            update_latest_link(
                os.path.dirname(self.run_dir.path), os.path.basename(self.run_dir.path)
            )
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
            await self.machine.stop()
            await self.saver.stop()
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
            # The framer points back at this stream (its sink and control): let go of it
            # now rather than at the next garbage collection.
            self.framer = None

    # --- draining the queue ---

    def _drain(self) -> bool:
        """Frame what is queued, for at most one slice; True if more is left.

        The framing is :meth:`Framer.drain` (the hot path); then what the caller's side
        reads is published on the channel: the summary's last values, the counters, the
        drops (warned about once per key, counted in a telemetry record).
        """
        framer = self.framer
        assert framer is not None
        self.machine.drain_console()  # before the caller's records: never after a finish
        self.saver.tick()
        if self.saver.hold_finish():
            return False  # the run finishes: its saved files' last versions come first
        if self.machine.hold_finish():
            return False  # the run finishes: its environment comes first (bounded wait)
        more = framer.drain(time.perf_counter() + _DRAIN_SLICE_S)
        channel = self.channel
        if framer.last:
            with channel.summary_lock:
                channel.last_values.update(framer.last)
            framer.last.clear()
        if framer.bad:
            self._report_bad(framer.bad)
            framer.bad = []
        self._telemetry(framer)
        channel.last_seq = framer.seq
        channel.next_step = framer.next_step
        channel.check_at = channel.base_check  # the queue is short again: check early
        if channel.waiters:
            # Someone is blocked in log() on the memory bound: tell them records went out.
            with channel.room:
                channel.room.notify_all()
        return more

    def _control(self, item: tuple[Any, ...], seq: int) -> None:
        """A flush or close item, framed after record ``seq`` (from :meth:`Framer.take`)."""
        if item[0] == CTRL_FLUSH:
            self.flushes.append((item[1], seq, item[2]))
        elif item[0] == CTRL_CLOSE:
            self.finish_waiter = item[1]

    def _report_bad(self, bad: list[tuple[str, str]]) -> None:
        for key, reason in bad:
            self.dropped[key] = self.dropped.get(key, 0) + 1
            if key not in self.warned:
                self.warned.add(key)
                warn(f"dropped the value of {key!r}: {reason} (said once per key).")

    def _telemetry(self, framer: Framer) -> None:
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
            framer.append(TELEMETRY, body)

    # --- BlobSink, for Captured.encode (called from Framer.drain, on this thread) ---

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
        assert self.framer is not None  # blobs come from values being framed
        self.framer.append(_FILE, {**info, "content_type": content_type})
        return info

    async def _save_code(self, path: str) -> None:
        """``init(save_code=True)``: the main script becomes the run file ``code/<name>``."""
        name = os.path.basename(path)
        try:
            data = await self.loop.run_in_executor(None, _read_small, path, _MAX_CODE_BYTES)
        except OSError as exc:
            say(f"save_code: cannot read {path} ({exc.strerror or exc}); the code is not saved.")
            return
        if data is None:
            say(f"save_code: {path} is over {_MAX_CODE_BYTES >> 20} MiB; the code is not saved.")
            return
        files_dir = os.path.join(self.run_dir.path, FILES_DIR, "code")
        local = os.path.join(files_dir, name)

        def write() -> None:  # executor thread
            os.makedirs(files_dir, exist_ok=True)
            with open(local, "wb") as f:
                f.write(data)

        await self.loop.run_in_executor(None, write)
        assert self.framer is not None
        info = {"path": f"code/{name}", "sha256": hashlib.sha256(data).hexdigest()}
        self.framer.append(_FILE, {**info, "size": len(data), "content_type": "text/x-python"})

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


_MAX_CODE_BYTES = 16 << 20  # a main script larger than this is not saved


def _read_small(path: str, limit: int) -> bytes | None:
    """The bytes of ``path``, or None if it holds more than ``limit``."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    return None if len(data) > limit else data


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
