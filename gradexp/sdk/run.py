"""``Run``: one training run as the caller sees it, and ``log()``'s hot path.

Threads, and who runs what in this module:

- The **caller** (the training loop, any thread) runs ``log()``. On the fast path (a
  plain dict of ``int``/``float``/``bool``/``str``/``None``, no ``step=``, ``commit=True``)
  it copies the dict, checks the value types in one C-level pass, reads the clock and
  appends ``(time, values)`` to the run's deque. No lock, no I/O, no JSON: ``deque.append``
  is atomic under the GIL, so any number of threads may log at once.
- The **stream thread** (``gradexp-stream``, see ``gradexp.stream``) pops the deque in
  order and does everything that needs order or state: it numbers the steps
  (auto-increment, explicit steps, ``commit=False`` merging, values attached by
  ``_attach_to_next_step``), validates keys, encodes, writes the run file and uploads.
  Because one thread does all of it in queue order, the step rules need no lock and hold
  across logging threads.
- The slow path (nested dicts, numpy/torch scalars, arrays, explicit steps) still runs
  on the caller, because what the caller may mutate must be copied before log() returns;
  it takes the channel's lock only to update the drop counters, never across I/O or a
  wait.

The two threads share one object per run, its :class:`~gradexp.stream.channel.Channel`:
the queue, the run's state and lock, the memory bound and backpressure (see there). The
module-level ``gradexp.log()`` and friends are in ``gradexp.sdk.facade``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from gradexp.core.output import say, warn
from gradexp.protocol.values import PLAIN_TYPES
from gradexp.sdk.config import Config, Summary
from gradexp.sdk.run_fields import RunFields
from gradexp.sdk.run_records import RunRecords
from gradexp.stream.channel import (
    ACTIVE,
    ATTACH,
    BROKEN,
    CONFIG,
    CTRL_CLOSE,
    CTRL_FLUSH,
    DISABLED,
    FINISH,
    FINISHED,
    FINISHING,
    FORKED,
    HISTORY,
    OPEN,
    PARTIAL,
    SHEDDING,
    SUMMARY,
    Channel,
    Waiter,
)
from gradexp.transport.refusals import RUN_DELETED

# gradexp.sdk.values (the slow path) is imported where it is used: it imports typing, which
# init() should not pay for. Annotations here are strings (PEP 563), so typing is only
# needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from gradexp.core.settings import Settings
    from gradexp.sdk.alerts import AlertGate
    from gradexp.sdk.console import Capture

__all__ = ["Run", "captured_bytes"]

_time = time.time
#: ``_PLAIN_SUPERSET(map(type, values))``: are all values plain? One C-level pass.
_PLAIN_SUPERSET = PLAIN_TYPES.issuperset


def captured_bytes(values: dict[str, Any]) -> int:
    """Bytes held by the captured (rich) values among ``values``."""
    total = 0
    for v in values.values():
        if type(v) not in PLAIN_TYPES:
            nbytes = getattr(v, "nbytes", None)
            if type(nbytes) is int:
                total += nbytes
    return total


class Run(RunFields, RunRecords):
    """One training run: its identity, step counter, config and summary, and ``log()``.

    Made by :func:`gradexp.init`; the module-level functions act on the current one. A
    context manager: ``with gradexp.init(...) as run:`` finishes it on exit, recording an
    exception as a failed run (exit code 1). Its settable fields (``name``, ``tags``...)
    come from :class:`~gradexp.sdk.run_fields.RunFields`, its other records
    (``define_metric``, ``alert``, artifacts, ``save``) from
    :class:`~gradexp.sdk.run_records.RunRecords`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        run_id: str,
        name: str,
        run_dir: str | None,
        meta: dict[str, Any],
        config: dict[str, Any],
        resume: bool,
        on_finish: Callable[[Run], None] | None = None,
    ) -> None:
        self._settings = settings
        self._id = run_id
        # name, notes, tags, group, job_type: settable, see RunFields
        self._fields = {k: meta.get(k) for k in ("notes", "tags", "group", "job_type")}
        self._fields["name"] = name
        self._dir = run_dir
        self._resume = resume
        self._on_finish = on_finish  # the facade lets go of its current run
        self._known_keys: set[str] = set()  # keys the slow path already validated
        self._warned: set[str] = set()  # what we already warned about (once each)
        # The run's state, lock and metadata live in the channel: the stream shares them.
        self._channel = Channel(settings, run_id=run_id, run_dir=run_dir, meta=meta)
        self._config = Config(self._control, config)
        self._summary = Summary(self._channel, self._barrier, self._control)
        self._pid = os.getpid()
        self._exit_code: int | None = None
        self._capture: Capture | None = None  # the console capture, while it runs
        self._alerts: AlertGate | None = None  # wait_duration's memory, made by alert()

    # --- identity ---

    @property
    def id(self) -> str:
        """The run id (made on the client; also the last part of the run dir)."""
        return self._id

    @property
    def project(self) -> str:
        """The project the run belongs to."""
        return str(self._channel.meta.get("project", ""))

    @property
    def dir(self) -> str:
        """The run directory (``<dir>/gradexp/run-<time>-<id>``).

        With ``mode="disabled"`` nothing is written there by gradexp: it is a temporary
        folder, made on first use and removed when the process exits, so code that saves
        files into ``run.dir`` still works.
        """
        if self._dir is None:
            from gradexp.sdk.scratch import scratch_dir

            self._dir = scratch_dir(self._id)
        return self._dir

    @property
    def resumed(self) -> bool:
        """True when this run continues one that already held records (``resume=``)."""
        channel = self._channel
        return channel.start_seq > 1 or channel.resume_step >= 0

    @property
    def url(self) -> str | None:
        """``<base_url>/r/<id>``, the run's page (None if no server is known)."""
        base = self._settings.base_url
        return f"{base}/r/{self._id}" if base else None

    @property
    def mode(self) -> str:
        """``online``, ``offline`` or ``disabled``."""
        return self._settings.mode

    @property
    def settings(self) -> Settings:
        """The resolved settings this run uses."""
        return self._settings

    @property
    def config(self) -> Config:
        """The run's config; ``run.config["lr"] = 0.1`` records the change."""
        return self._config

    @property
    def summary(self) -> Summary:
        """Last value of every key, unless set explicitly with ``run.summary[k] = v``."""
        return self._summary

    @property
    def step(self) -> int:
        """The step the next ``log()`` without ``step=`` will get.

        Steps are numbered by the stream thread, so this waits (briefly) for it to take
        what was logged so far.
        """
        self._barrier()
        return self._channel.next_step

    def __repr__(self) -> str:
        return f"<gradexp.Run {self._id} {self.name!r} {self._channel.state} dir={self._dir!r}>"

    def _repr_html_(self) -> str:
        """Jupyter shows a run as a link to its page."""
        from gradexp.sdk.jupyter import run_html

        return run_html(self)

    def display(self, height: int = 720) -> None:
        """Embed the run's live page in the notebook (an iframe of ``run.url``).

        The frame uses this browser's session on the server: sign in there once (the frame
        offers a link that opens a new tab). See docs/ui.md.
        """
        from gradexp.sdk.jupyter import display_embedded

        display_embedded(self, height)

    # --- logging: the hot path ---

    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
        """Log a mapping of values at the current step (or ``step``).

        Returns at once: the values are copied, stamped and queued; the stream thread
        numbers, writes and uploads them. Steps auto-increment; ``commit=False`` merges
        into the current step without advancing it. Bad values are warned about once per
        key, dropped and counted; the other keys are kept. Blocks only when the stream is
        more than ``memory_limit`` bytes behind (backpressure).
        """
        # The fast path, inlined (module-level gradexp.log() has the same lines): a plain
        # dict of plain scalars, auto or explicit step, committed. See the module docstring.
        channel = self._channel
        if (
            type(data) is dict
            and (step is None or (type(step) is int and step >= 0))
            and commit
            and channel.state is ACTIVE
            and _PLAIN_SUPERSET(map(type, data.values()))
        ):
            queue = channel.queue
            queue.append((_time(), data.copy()) if step is None else (_time(), data.copy(), step))
            if len(queue) > channel.check_at and channel.over(len(data)):
                channel.wait_for_room(len(data))
            return
        if self._enqueue(data, step, commit):
            channel.wait_for_room()

    async def alog(
        self, data: Mapping[str, Any], step: int | None = None, commit: bool = True
    ) -> None:
        """``log()`` for async code: under backpressure it awaits instead of blocking.

        Works under asyncio, trio (through anyio) and a running Jupyter kernel loop.
        """
        if self._enqueue(data, step, commit):
            import anyio.to_thread

            # The wait runs in a worker thread so the caller's event loop keeps running.
            await anyio.to_thread.run_sync(self._channel.wait_for_room, abandon_on_cancel=True)

    def _enqueue(self, data: Any, step: Any, commit: bool) -> bool:
        """Queue one log() call (any shape); True if the caller must now wait for room."""
        channel = self._channel
        if channel.state is not ACTIVE:
            if channel.state is not SHEDDING:
                self._log_inactive()
                return False
            if not channel.end_shedding():
                channel.count_shed(step is None and commit)
                return False
        if type(data) is dict:
            values = data.copy()
        elif isinstance(data, Mapping):
            values = dict(data)
        else:
            self._warn_once("data", f"log() takes a mapping of values, not {type(data).__name__}")
            return False
        captured = 0
        rich = False  # some value is not plain (a captured array, a device scalar ...)
        if not _PLAIN_SUPERSET(map(type, values.values())):
            values, captured = self._normalize(values)
            rich = not _PLAIN_SUPERSET(map(type, values.values()))
        if step is not None and type(step) is not int:
            try:
                step = int(step)  # numpy integers, 0-d tensors ...
            except (TypeError, ValueError):
                self._warn_once("step", f"step={step!r} is not an integer; using the next step")
                step = None
        if step is not None and step < 0:
            self._warn_once("negstep", f"step={step} is negative; using the next step")
            step = None
        if commit and not rich:
            channel.queue.append((_time(), values) if step is None else (_time(), values, step))
        else:
            if captured:
                with channel.lock:
                    channel.captured_in += captured
            channel.queue.append((HISTORY if commit else PARTIAL, step, _time(), values, captured))
        return len(channel.queue) > channel.check_at and channel.over(len(values))

    def _normalize(self, values: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The slow path of log(): flatten, convert, copy; warn about what is dropped.

        Returns the values and the bytes of the captured arrays among them.
        """
        bad: list[tuple[str, str]] = []
        from gradexp.sdk.values.normalize import normalize

        out = normalize(values, self._known_keys, bad)
        if bad:
            with self._channel.lock:
                dropped = self._channel.dropped
                for key, _ in bad:
                    dropped[key] = dropped.get(key, 0) + 1
            for key, reason in bad:
                self._warn_once(
                    f"value:{key}",
                    f"dropped the value of {key!r}: {reason}. The other keys are kept; this "
                    "key's drops are counted in the run's telemetry (said once per key).",
                    depth=1,
                )
        return out, captured_bytes(out)

    def _attach_to_next_step(self, values: dict[str, Any]) -> None:
        """Merge already-captured values into the next history record the user commits.

        Thread-safe: ``gradexp.watch`` calls this from autograd hooks, which may run on
        other threads. It only appends to the queue (atomic); the stream thread merges the
        values into the next history record it takes, in queue order. The user's own keys
        win over attached ones of the same name. Values still attached at finish() are
        committed as a record of their own.
        """
        channel = self._channel
        if channel.state is not ACTIVE:
            return
        values = dict(values)
        captured = captured_bytes(values)
        if captured:
            with channel.lock:
                channel.captured_in += captured
        channel.queue.append((ATTACH, values, captured))

    def _warn_once(self, what: str, message: str, depth: int = 0) -> None:
        if what not in self._warned:
            self._warned.add(what)
            # Points the warning at the line that called log(): _warn_once <- _enqueue
            # <- log() <- the caller (``depth`` more frames from deeper call sites).
            warn(message, stacklevel=4 + depth)

    def _log_inactive(self) -> None:
        state = self._channel.state
        if state is DISABLED:
            return
        if state is BROKEN:
            self._warn_once(
                "broken",
                f"run {self._id} cannot be written ({self._channel.stream_dead}); log() calls "
                f"are ignored. What was written is in {self._dir}.",
            )
        elif state is FORKED:
            self._warn_once(
                "forked",
                f"this process (pid {os.getpid()}) was forked from the one that started run "
                f"{self._id} (pid {self._pid}); its log() calls are ignored so they cannot "
                "corrupt that run. Call gradexp.init() in this process to log from it.",
            )
        else:
            self._warn_once(
                "finished",
                f"run {self._id} is finished; this log() is ignored. "
                "Call gradexp.init() to start a new run.",
            )

    def _control(self, kind: int, body: Any) -> None:
        """Queue a config/summary/telemetry record or a control item, and wake the stream."""
        state = self._channel.state
        if state not in OPEN:
            if state is not DISABLED and kind in (CONFIG, SUMMARY):
                self._log_inactive()
            return
        self._channel.queue.append((kind, body, 0))
        self._channel.wake_stream()

    # --- console output ---

    def _start_console(self) -> None:
        """Tee stdout and stderr into the run (init(); see gradexp.sdk.console)."""
        from gradexp.sdk.console import start_capture
        from gradexp.stream.console import ConsoleBuffer

        buffer = ConsoleBuffer()
        self._channel.console = buffer
        self._capture = start_capture(buffer)

    def _stop_console(self) -> None:
        """Give stdout and stderr back; what was printed so far is in the buffer."""
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.stop()

    # --- flushing and finishing ---

    def _barrier(self, timeout: float = 5.0) -> None:
        """Wait until the stream has taken everything queued so far (used by summary)."""
        if self._channel.state not in OPEN:
            return
        waiter = Waiter()
        self._channel.queue.append((CTRL_FLUSH, waiter, False))
        self._channel.wake_stream()
        waiter.wait(timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is in the run file and, online, acknowledged.

        Returns True when it is, False if ``timeout`` (seconds) passed first or the upload
        has stopped (see the message printed then). ``None`` waits as long as it takes.
        """
        state = self._channel.state
        if state is DISABLED:
            return True
        if state not in OPEN:
            return self._channel.acked_seq >= self._channel.last_seq or self.mode != "online"
        waiter = Waiter()
        self._channel.queue.append((CTRL_FLUSH, waiter, self.mode == "online"))
        self._channel.wake_stream()
        return waiter.wait(timeout) and waiter.ok

    async def aflush(self, timeout: float | None = None) -> bool:
        """``flush()`` for async code: waits in a worker thread, never blocking the loop."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.flush, timeout, abandon_on_cancel=True)

    def finish(self, exit_code: int = 0, timeout: float | None = None) -> None:
        """Record the exit code, flush with a bounded wait, and close the run.

        Waits at most ``timeout`` seconds (default: the ``finish_timeout`` setting, 60 s)
        for the server to acknowledge everything, printing one progress line if that
        takes more than a second. Whatever is not acknowledged then stays in the run
        file, and the message says how to upload it (``gradexp sync``). Ctrl-C abandons
        the wait, never the run file.
        """
        channel = self._channel
        # First, so the run's log holds everything printed before finish() and the
        # streams are the program's own again whatever happens next.
        self._stop_console()
        with channel.lock:  # two threads finishing at once: one finishes, one returns
            state = channel.state
            if state in OPEN:
                channel.state = FINISHING
            elif state is BROKEN:
                channel.state = FINISHED  # nothing to wait for: the stream already let go
        if state not in OPEN:
            if state is BROKEN or state is DISABLED:  # a disabled run is current until now
                self._finished()
            return
        self._exit_code = int(exit_code)
        closing = Waiter()
        # The stream commits values still held by commit=False or attached first.
        channel.queue.append((FINISH, {"exit_code": self._exit_code, "time": _time()}, 0))
        channel.queue.append((CTRL_CLOSE, closing, 0))
        channel.wake_stream()
        if timeout is None:
            timeout = self._settings.finish_timeout
        try:
            self._wait_finish(closing, timeout)
        finally:
            with channel.lock:
                channel.state = FINISHED
            self._finished()

    def _finished(self) -> None:
        if self._on_finish is not None:
            self._on_finish(self)

    def _wait_finish(self, closing: Waiter, timeout: float) -> None:
        channel = self._channel
        started = time.monotonic()
        told = False
        try:
            while not closing.wait(min(0.25, max(0.0, started + timeout - time.monotonic()))):
                if channel.stream_dead is not None:
                    break
                elapsed = time.monotonic() - started
                if elapsed >= timeout:
                    break
                if not told and elapsed >= 1.0:
                    told = True
                    left = max(0, channel.last_seq - channel.acked_seq)
                    what = f"uploading {left} records" if self.mode == "online" else "writing"
                    say(f"finishing run {self._id}: {what} (waiting up to {timeout:.0f} s)…")
        except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C, or SIGTERM (gradexp.sdk.hooks)
            what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "exiting"
            say(f"{what}: not waiting for the upload any more; the run file is being closed.")
            self._close_stream(abandoned=True)
            raise
        self._close_stream(abandoned=not closing.ok)

    def _close_stream(self, abandoned: bool) -> None:
        """Tell the stream to let go of the run and wait (briefly) until the file is closed."""
        channel = self._channel
        channel.abandoned = abandoned
        channel.release = True
        channel.wake_stream()
        closed = False
        # The file must be closed cleanly even if Ctrl-C comes again: retry the wait once.
        for _ in range(2):
            try:
                closed = channel.closed.wait(10.0)
                break
            except KeyboardInterrupt:
                continue
        if not closed and channel.disk_error is not None:
            say(
                f"the run file of {self._id} still cannot be written ({channel.disk_error}): "
                f"records logged since the last one written are lost when this process "
                f"exits; {self._dir} holds the rest."
            )
        elif not closed and channel.stream_dead is None:
            say(f"the run file of {self._id} is still being written; it is safe to sync later.")
        left = channel.last_seq - channel.acked_seq
        if channel.upload_error == RUN_DELETED:
            pass  # the uploader said so in one line; syncing cannot bring the run back
        elif self.mode == "online" and (left > 0 or channel.upload_error):
            say(
                f"{max(left, 0)} records of run {self._id} are not uploaded yet; they stay in "
                f"{self._dir}. Upload them with: gradexp sync {self._dir}"
            )
        elif self.mode == "offline":
            say(f"run {self._id} saved offline in {self._dir}; upload it with: gradexp sync")

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            code = 0
        elif exc_type is KeyboardInterrupt:
            code = 130
        elif exc_type is SystemExit:  # sys.exit(n), or SIGTERM (143: see gradexp.sdk.hooks)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        else:
            code = 1
        self.finish(exit_code=code)
