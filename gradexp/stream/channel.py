"""The channel: everything the caller's thread and the stream thread share for one run.

The SDK's ``Run`` and the stream's ``RunStream`` never see each other: each holds the
run's :class:`Channel`, and the channel holds the run's state, its lock, its metadata,
the queue between the two threads and the counters each side publishes for the other.

Waking the stream: it ticks every ``write_interval`` (100 ms) while a run is active and
drains whatever is queued, so ``log()`` normally wakes nothing. The caller wakes it only
when the queue passes a threshold (a batch is due) or for a control item (flush, finish,
config), through ``loop.call_soon_threadsafe`` (:meth:`Channel.wake_stream`).

Memory bound: queued bytes are estimated as ``len(queue)`` records of the current record's
estimated size, plus the exact bytes of captured arrays (counted in on the slow path, out
by the stream thread). Past ``memory_limit``, ``log()`` blocks (``alog()`` awaits in a
worker thread) until the stream has written enough: backpressure, never a drop. Except
when the disk refuses writes (full, over quota, file size limit): waiting could then
stall training for good, so past the bound the run sheds instead (:data:`SHEDDING`): new
records are dropped and counted, what was accepted stays queued, and logging resumes
once the stream writes again (:meth:`Channel.end_shedding`).

Imported by ``init()``: standard library only, no ``typing`` at run time.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from gradexp.core.output import say

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    from typing import Any

    from gradexp.core.settings import Settings
    from gradexp.stream.console import ConsoleBuffer

# Queue items. The fast path appends ``(time, values)``: a history record at the next
# auto step (a 2-tuple, told apart by its length), or ``(time, values, step)`` for an
# explicit step (a 3-tuple whose first element is a float). Everything else is a tuple
# whose first element is its kind (an int): records use their protocol type byte;
# control items are negative.
HISTORY = 1  # (HISTORY, step | None, time, values, captured_bytes)
CONFIG = 2  # (CONFIG, update, 0)
SUMMARY = 3  # (SUMMARY, update, 0)
FINISH = 5  # (FINISH, {"exit_code", "time"}, 0)
TELEMETRY = 6
METRIC = 7  # (METRIC, definition, 0): define_metric()
ALERT = 8  # (ALERT, {"title", "text", "level", "time"}, 0): alert()
ARTIFACT = 12  # (ARTIFACT, {"action": "log" | "use", ...}, 0): log_artifact(), use_artifact()
PARTIAL = 101  # (PARTIAL, step | None, time, values, captured_bytes): log(commit=False)
ATTACH = 102  # (ATTACH, values, captured_bytes): Run._attach_to_next_step
RUN_FIELDS = 103  # (RUN_FIELDS, {"name": ...}, 0): run.name = ... (a config record's "run")
CTRL_FLUSH = -1  # (CTRL_FLUSH, Waiter, want_ack): resolve once written (and acknowledged)
CTRL_CLOSE = -2  # (CTRL_CLOSE, Waiter, 0): after the finish record; resolve once it is uploaded
CTRL_SKIP = -3  # (CTRL_SKIP, n, 0): n auto steps were dropped (shed): skip their step numbers
#: Estimated bytes a queued record holds: the tuple, the dict, and per value (see estimate).
RECORD_BYTES, VALUE_BYTES = 232, 64

# The run's states (``Channel.state``). Compared by identity: they are interned strings.
ACTIVE = "active"
FINISHING = "finishing"
FINISHED = "finished"
DISABLED = "disabled"
FORKED = "forked"  # this process was forked from the one that started the run
BROKEN = "broken"  # the stream thread failed for this run (see Channel.fail)
SHEDDING = "shedding"  # the disk refuses writes and the queue is full: log() drops records
OPEN = (ACTIVE, SHEDDING)  # states in which control calls (config, flush, finish) work


class Waiter:
    """A result the stream thread hands to a waiting caller (a threading.Event plus a bool)."""

    __slots__ = ("event", "ok")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = False

    def resolve(self, ok: bool) -> None:
        """Called on the stream thread: record the outcome and wake the caller."""
        self.ok = ok
        self.event.set()

    def wait(self, timeout: float | None) -> bool:
        """Wait (in short slices, so Ctrl-C is seen at once); True if resolved in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.event.is_set():
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                return False
            self.event.wait(left)
        return True


class Channel:
    """Everything the caller's thread and the stream thread share for one run.

    Set once by ``init()`` (any thread reads them): ``run_id``, ``run_dir``, ``meta``,
    ``settings``, ``resume_mode``. ``state`` is changed by callers under ``lock``
    (finishing, shedding), and by the stream thread only to mark the run broken
    (:meth:`fail`); the fast path reads it without the lock. Written by callers:
    ``queue`` (append only: atomic), ``captured_in``, ``dropped`` and the shedding
    counters (under ``lock``, on the slow path only), ``release`` and ``abandoned`` (at
    finish). Written by the stream thread: ``queue`` (popleft only),
    ``captured_out``, ``written_seq``, ``last_seq``, ``acked_seq``, ``start_seq``,
    ``next_step``, ``resume_step``, ``upload_error``, ``disk_error``, ``last_values``
    (under ``summary_lock``), ``start_error``, ``stream_dead``, ``wake`` and the waiters.
    Reading a plain attribute another thread writes is atomic under the GIL, which is all
    the readers here need. ``wake_pending`` and ``check_at`` are written by both: they are
    hints, and a lost update costs at most one tick (100 ms) of latency or one extra
    check, never a record.

    ``lock`` guards the state changes and the counters above; it is never held across
    I/O or a wait. ``room`` is where callers wait for the queue to shrink.
    """

    # Slots: the fast path of log() reads three of these per call.
    __slots__ = (
        "abandoned",
        "acked_seq",
        "base_check",
        "captured_in",
        "captured_out",
        "check_at",
        "closed",
        "console",
        "disk_error",
        "dropped",
        "last_seq",
        "last_values",
        "limit",
        "lock",
        "max_pending",
        "meta",
        "next_step",
        "queue",
        "release",
        "resume_mode",
        "resume_step",
        "room",
        "run_dir",
        "run_id",
        "saves",
        "settings",
        "shed",
        "shed_episode",
        "shed_steps",
        "start_error",
        "start_seq",
        "started",
        "state",
        "stream_dead",
        "summary_lock",
        "upload_error",
        "waiters",
        "wake",
        "wake_at",
        "wake_pending",
        "written_seq",
    )

    def __init__(
        self, settings: Settings, *, run_id: str, run_dir: str | None, meta: dict[str, Any]
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        self.run_dir = run_dir
        self.meta = meta
        self.state = DISABLED if settings.mode == "disabled" else ACTIVE
        self.lock = threading.Lock()  # see the class docstring: never held across I/O
        self.queue: deque[tuple[Any, ...]] = deque()
        self.captured_in = 0  # bytes of captured arrays queued (caller, under lock)
        self.captured_out = 0  # ... and taken by the stream (stream thread only)
        self.limit = settings.memory_limit
        # Wake the stream early once this much is queued: a batch is due, and draining
        # in larger steps than the tick would let the queue grow toward the bound.
        self.wake_at = max(1, min(settings.batch_bytes, settings.memory_limit // 4))
        # The fast path compares len(queue) with ``check_at`` and only past it estimates
        # the bytes queued (``over``). Each check moves the mark further (at most
        # ``base_check`` records, and never past the bound); each drain resets it.
        self.base_check = max(1, self.wake_at // (2 * RECORD_BYTES))
        self.check_at = self.base_check
        self.wake_pending = False
        self.wake: Any = None  # set by the stream thread: wakes its per-run task
        self.room = threading.Condition(threading.Lock())  # backpressure: "records went out"
        self.waiters = 0  # callers blocked on ``room``; the stream notifies only if > 0
        self.max_pending = 0  # the most bytes seen queued (for tests and stats)
        self.dropped: dict[str, int] = {}  # key -> values dropped since the last telemetry
        self.written_seq = 0  # highest seq handed to the OS
        self.last_seq = 0  # highest seq assigned
        self.acked_seq = 0  # highest seq the server acknowledged
        self.start_seq = 1  # first seq of this attempt (later for a resumed run)
        self.next_step = 0  # the step the next auto-step record gets (stream thread)
        self.upload_error: str | None = None  # why the upload stopped, if it did
        self.disk_error: str | None = None  # why the run file cannot be written now, if so
        # save() specs (gradexp.stream.save_spec.SaveSpec): the caller appends under
        # ``lock``; the stream swaps the list out under it (gradexp.stream.saving).
        self.saves: list[Any] = []
        # Records dropped while shedding (caller threads, under lock): for telemetry, for
        # the message when logging resumes, and the auto steps they would have taken.
        self.shed = 0
        self.shed_episode = 0
        self.shed_steps = 0
        # Guards last_values: the stream merges each drain's last values in, and
        # run.summary (any thread) copies them out; never held across I/O.
        self.summary_lock = threading.Lock()
        self.last_values: dict[str, Any] = {}
        self.started = Waiter()  # the run file exists (and, resuming, the server answered)
        self.resume_step = -1  # resuming: the last step the server (or old file) has
        self.start_error: str | None = None
        self.closed = Waiter()  # the stream let go of the run (file closed)
        self.stream_dead: str | None = None  # the stream thread failed: stop waiting on it
        self.resume_mode: str | None = None  # None, "must", "allow" or "never" (set by init)
        self.release = False  # the caller is done waiting: let go of the run now
        self.abandoned = False  # ... and whatever is not uploaded stays for `gradexp sync`
        # The console capture's buffer (gradexp.stream.console), when output is captured:
        # the capture appends, the stream thread takes.
        self.console: ConsoleBuffer | None = None

    def fail(self, reason: str) -> None:
        """The stream cannot serve this run: release everything that waits on it.

        The run stops accepting records (log() warns once and ignores them), so nothing
        piles up in memory behind a stream that will never take it.
        """
        self.stream_dead = reason
        self.start_error = self.start_error or reason
        if self.state in OPEN:
            self.state = BROKEN
        for waiter in (self.started, self.closed):
            if not waiter.event.is_set():
                waiter.resolve(False)
        with self.room:
            self.room.notify_all()

    # --- the memory bound (caller's threads) ---

    def pending(self, values_per_record: int = 5) -> int:
        """Estimated bytes queued by the caller and not yet taken by the stream."""
        per_record = RECORD_BYTES + VALUE_BYTES * values_per_record
        return len(self.queue) * per_record + self.captured_in - self.captured_out

    def over(self, values_per_record: int) -> bool:
        """Past the wake threshold: wake the stream; True if past the bound (must wait)."""
        per_record = RECORD_BYTES + VALUE_BYTES * values_per_record
        queued = len(self.queue)
        pending = queued * per_record + self.captured_in - self.captured_out
        if pending > self.max_pending:
            self.max_pending = pending
        if pending > self.limit:
            self.wake_stream()
            return True
        # Check again after a few more records, but before the bound can be passed.
        room = (self.limit - pending) // per_record
        self.check_at = queued + max(1, min(self.base_check, room))
        if pending > self.wake_at:
            self.wake_stream()  # a batch is due: no need to wait for the tick
        return False

    def wake_stream(self) -> None:
        """Ask the stream thread to drain now (any thread; cheap if already asked)."""
        wake = self.wake
        if wake is not None and not self.wake_pending:
            self.wake_pending = True
            try:
                wake()
            except RuntimeError:  # the loop is closed (interpreter exit): nothing to wake
                self.wake_pending = False

    def wait_for_room(self, values_per_record: int = 5) -> None:
        """Block until the queue is under the memory bound (backpressure; caller's thread).

        Returns at once while the disk refuses writes, and the run starts shedding: a
        full disk must not stall training (see the module docstring).
        """
        self.wake_stream()
        with self.room:
            self.waiters += 1
            try:
                # A timed wait: a notify that races with this check costs at most 50 ms.
                while self.pending(values_per_record) > self.limit and self.stream_dead is None:
                    if self.disk_error is not None:
                        self.start_shedding(self.disk_error)
                        return
                    self.room.wait(0.05)
            finally:
                self.waiters -= 1

    # --- shedding: the disk refuses writes (caller's threads) ---

    def start_shedding(self, reason: str) -> None:
        """The queue is full and the disk refuses writes: drop new records from now on."""
        with self.lock:
            if self.state is not ACTIVE:
                return
            self.state = SHEDDING
        say(
            f"run {self.run_id}: the run file cannot be written ({reason}); what was logged "
            "so far is kept in memory, and new log() calls are dropped (and counted) so "
            f"training goes on. Free space for {self.run_dir}: logging resumes by itself."
        )

    def count_shed(self, auto_step: bool) -> None:
        """Count one record dropped while shedding."""
        with self.lock:
            self.shed += 1
            self.shed_episode += 1
            if auto_step:
                self.shed_steps += 1

    def end_shedding(self) -> bool:
        """Back to logging if the stream writes again and the queue has room (True)."""
        if self.disk_error is not None or self.pending() > self.limit // 2:
            return False
        with self.lock:
            if self.state is not SHEDDING:
                return self.state is ACTIVE
            dropped, skip = self.shed_episode, self.shed_steps
            self.shed_episode = self.shed_steps = 0
            # Before any record logged from here on (other threads' fast path included:
            # it starts once the state is active), so the auto steps keep counting the
            # user's loop: the dropped records' steps are left empty, not reused.
            self.queue.append((CTRL_SKIP, skip, 0))
            self.state = ACTIVE
        self.wake_stream()
        say(
            f"run {self.run_id}: the run file is written again; {dropped} records logged "
            "meanwhile were dropped (the count is in the run's telemetry)."
        )
        return True

    # --- fork ---

    def after_fork_in_child(self) -> None:
        """In a forked child: the stream thread is gone, and the parent's locks may have
        been held by a thread that is gone too. New locks; nothing to wake; and the run
        is marked forked, so its log() warns once and does nothing (it must neither
        deadlock nor write into the parent's run file)."""
        self.lock = threading.Lock()
        self.room = threading.Condition(threading.Lock())
        self.summary_lock = threading.Lock()
        self.wake = None
        if self.state is not DISABLED:
            self.state = FORKED
