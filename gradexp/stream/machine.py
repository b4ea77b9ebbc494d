"""What the machine did, on the stream thread: system samples, console lines, environment.

:class:`MachineRecorder` is the part of a run's :class:`~gradexp.stream.runstream.RunStream`
that records the machine rather than the caller's ``log()`` calls. It writes three kinds
of records through the run's framer, so they take the run file and batches like every
other record (offline and ``gradexp sync`` carry them):

- ``system`` records: a sampling task on the stream loop wakes every
  ``system_metrics_interval`` seconds (the first time after at most one second, so short
  runs get a point) and runs :meth:`SystemSampler.sample` in the loop's executor;
- ``console`` records: at every drain (each tick), the output the capture queued is cut
  into lines (:class:`~gradexp.stream.console.LineAssembler`) and framed before the
  caller's records of that drain, so console lines always precede the finish record;
- one ``environment`` record, collected in the executor when the run starts, with its
  ``requirements.txt`` and ``diff.patch`` saved as run files first.

Threads: everything here runs on the stream loop, except what is handed to the executor
(marked where it is). Records are framed only while the run accepts records (``OPEN``),
so nothing follows the finish record. A run that finishes while its environment is still
being collected waits for it (at most ``ENVIRONMENT_WAIT_S``): :meth:`hold_finish`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from typing import TYPE_CHECKING, Any, Protocol

from gradexp.core.output import say
from gradexp.protocol.wire import FILES_DIR, MAX_CONSOLE_LINES, RECORD_TYPES
from gradexp.stream.channel import FINISHING, OPEN, TELEMETRY
from gradexp.stream.console import LineAssembler
from gradexp.stream.preload import preload

if TYPE_CHECKING:
    from gradexp.core.settings import Settings
    from gradexp.stream.channel import Channel
    from gradexp.stream.steps import Framer
    from gradexp.stream.system import SystemSampler

__all__ = ["MachineRecorder"]

SYSTEM = RECORD_TYPES["system"]
CONSOLE = RECORD_TYPES["console"]
ENVIRONMENT = RECORD_TYPES["environment"]
FILE = RECORD_TYPES["file"]
#: How long a finishing run waits for its environment to be collected.
ENVIRONMENT_WAIT_S = 10.0
FIRST_SAMPLE_S = 1.0
#: What the sampler and the environment import (see gradexp.stream.preload).
BACKGROUND_MODULES = (
    "gradexp.stream.system",
    "gradexp.stream.environment",
    "psutil",
    "pynvml",
    "platform",
    "socket",
    "subprocess",
    "importlib.metadata",
    "email.parser",
    "email.feedparser",
)


class RecordingStream(Protocol):
    """What the recorder needs of its run's stream (a RunStream, on the stream thread)."""

    channel: Channel
    settings: Settings
    loop: asyncio.AbstractEventLoop
    framer: Framer | None
    run_id: str
    run_dir: Any
    wake_event: asyncio.Event


class MachineRecorder:
    """System samples, console lines and the environment of one run (stream thread)."""

    def __init__(self, stream: RecordingStream) -> None:
        self.stream = stream
        self.channel = stream.channel
        self.settings = stream.settings
        self.lines = LineAssembler()
        self.tasks: list[asyncio.Task[None]] = []
        self.sampler: SystemSampler | None = None
        self.environment_done = True
        self.finish_wait_until = 0.0
        self.finish_released = False  # the finish record may be framed: nothing after it
        self.console_done = False  # the capture stopped and its last output is framed
        self.preloaded: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Begin sampling and collecting (the run file exists)."""
        loop = self.stream.loop
        s = self.settings
        if s.system_metrics_interval > 0 or s.environment or s.git or s.requirements:
            # Everything the background work imports, first, with forks held off (see
            # gradexp.stream.preload); the tasks below wait for it in the executor's queue.
            self.preloaded = loop.run_in_executor(None, preload, *BACKGROUND_MODULES)
        if s.system_metrics_interval > 0:
            self.tasks.append(loop.create_task(self._sample_forever(), name="gradexp-system"))
        if s.environment or s.git or s.requirements:
            self.environment_done = False
            self.tasks.append(loop.create_task(self._environment(), name="gradexp-environment"))

    async def stop(self) -> None:
        """Stop sampling; let go of NVML (the run is being released)."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        sampler, self.sampler = self.sampler, None
        if sampler is not None:
            with contextlib.suppress(Exception):
                await self.stream.loop.run_in_executor(None, sampler.close)

    def _open(self) -> bool:
        """Whether samples may be framed now: only while the run takes records."""
        return self.channel.state in OPEN and self.stream.framer is not None

    def _before_finish(self) -> bool:
        """Whether the finish record is still to come (the environment may be framed)."""
        return (
            self.stream.framer is not None
            and not self.finish_released
            and (self.channel.state in OPEN or self.channel.state is FINISHING)
        )

    # --- system metrics ---

    async def _sample_forever(self) -> None:
        from gradexp.stream.system import SystemSampler

        loop = self.stream.loop
        interval = self.settings.system_metrics_interval
        try:
            if self.preloaded is not None:
                await self.preloaded
            # Executor: importing psutil and reading /proc, kept off the loop.
            self.sampler = await loop.run_in_executor(None, SystemSampler, self.channel.run_dir)
        except Exception as exc:  # no psutil for this platform: no system metrics
            say(f"system metrics are off for run {self.stream.run_id}: {exc}")
            return
        delay = min(interval, FIRST_SAMPLE_S)
        while True:
            await asyncio.sleep(delay)
            delay = interval
            sampler = self.sampler
            if sampler is None or not self._open():
                return
            started = time.monotonic()
            try:
                values = await loop.run_in_executor(None, sampler.sample)  # executor thread
            except Exception:
                continue  # a failed sample is skipped, the next one tried
            t = time.time()
            if values and self._open():
                framer = self.stream.framer
                assert framer is not None
                framer.append(SYSTEM, {"time": round(t, 3), "values": values})
            # Keep the period: a slow sample shortens the next wait.
            delay = max(0.0, interval - (time.monotonic() - started))

    # --- console ---

    def drain_console(self) -> None:
        """Frame the console output queued since the last drain (each drain, on the loop)."""
        buffer = self.channel.console
        if buffer is None or self.console_done or self.stream.framer is None:
            return
        # The capture closes the buffer once it has queued its last output, before the
        # finish record is queued: after this take, nothing more can come.
        self.console_done = buffer.closed
        chunks, dropped = buffer.take()
        if dropped:
            self.lines.dropped_bytes += dropped
        if chunks:
            self.lines.feed(chunks)
        lines = self.lines.lines()
        framer = self.stream.framer
        assert framer is not None
        for start in range(0, len(lines), MAX_CONSOLE_LINES):
            part = lines[start : start + MAX_CONSOLE_LINES]
            framer.append(CONSOLE, {"lines": LineAssembler.assign(part, framer.seq + 1)})
        lost_lines, lost_bytes = self.lines.take_dropped()
        if lost_lines or lost_bytes:
            body: dict[str, Any] = {"console_dropped_bytes": lost_bytes}
            if lost_lines:
                body["console_dropped_lines"] = lost_lines
            framer.append(TELEMETRY, body)

    # --- environment ---

    async def _environment(self) -> None:
        from gradexp.stream.environment import collect_environment

        s = self.settings
        try:
            if self.preloaded is not None:
                await self.preloaded
            body, files = await self.stream.loop.run_in_executor(
                None,
                lambda: collect_environment(
                    environment=s.environment, git=s.git, requirements=s.requirements
                ),
            )
            if files:
                await self.stream.loop.run_in_executor(None, self._save_files, files)
            if self._before_finish():
                framer = self.stream.framer
                assert framer is not None
                for name, data in files.items():
                    framer.append(
                        FILE,
                        {
                            "path": name,
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "size": len(data),
                            "content_type": "text/plain; charset=utf-8",
                        },
                    )
                if body:
                    framer.append(ENVIRONMENT, {"environment": body})
        except Exception as exc:
            say(f"could not record the environment of run {self.stream.run_id}: {exc}")
        finally:
            self.environment_done = True
            self.stream.wake_event.set()  # a finish may be waiting for this

    def _save_files(self, files: dict[str, bytes]) -> None:
        """Write the run files into ``files/`` (executor thread)."""
        folder = os.path.join(self.stream.run_dir.path, FILES_DIR)
        os.makedirs(folder, exist_ok=True)
        for name, data in files.items():
            path = os.path.join(folder, name)
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)

    def hold_finish(self) -> bool:
        """True while a finishing run should wait for its environment (bounded)."""
        if self.channel.state is not FINISHING:
            return False
        if not self.environment_done:
            now = time.monotonic()
            if not self.finish_wait_until:
                self.finish_wait_until = now + ENVIRONMENT_WAIT_S
            if now < self.finish_wait_until:
                return True
        self.finish_released = True
        return False
