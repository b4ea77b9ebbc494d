"""``Run`` and the module-level API: the caller's half of gradexp.

Threads, and who runs what in this module:

- The **caller** (the training loop, any thread) runs ``log()``. On the fast path (a
  plain dict of ``int``/``float``/``bool``/``str``/``None``, no ``step=``, ``commit=True``)
  it copies the dict, checks the value types in one C-level pass, reads the clock and
  appends ``(time, values)`` to the run's deque. No lock, no I/O, no JSON: ``deque.append``
  is atomic under the GIL, so any number of threads may log at once.
- The **stream thread** (``gradexp-stream``, see ``_stream.py``) pops the deque in order
  and does everything that needs order or state: it numbers the steps (auto-increment,
  explicit steps, ``commit=False`` merging, values attached by ``_attach_to_next_step``),
  validates keys, encodes, writes the run file and uploads. Because one thread does all
  of it in queue order, the step rules need no lock and hold across logging threads.
- The slow path (nested dicts, numpy/torch scalars, arrays, explicit steps) still runs
  on the caller, because what the caller may mutate must be copied before log() returns;
  it takes ``Run._lock`` only to update the drop counters, never across I/O or a wait.

Waking the stream: it ticks every ``write_interval`` (100 ms) while a run is active and
drains whatever is queued, so ``log()`` normally wakes nothing. The caller wakes it only
when the queue passes a threshold (a batch is due) or for a control item (flush, finish,
config), through ``loop.call_soon_threadsafe``.

Memory bound: queued bytes are estimated as ``len(queue)`` records of the current record's
estimated size, plus the exact bytes of captured arrays (counted in on the slow path, out
by the stream thread). Past ``memory_limit``, ``log()`` blocks (``alog()`` awaits in a
worker thread) until the stream has written enough: backpressure, never a drop. Except
when the disk refuses writes (full, over quota, file size limit): waiting could then
stall training for good, so past the bound the run sheds instead (``_SHEDDING``): new
records are dropped and counted, what was accepted stays queued, and logging resumes
once the stream writes again (see ``Run._end_shedding``).

Fork: see :func:`_after_fork_in_child`. Exit: see :func:`_finish_at_exit`.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, MutableMapping

from gradexp.core.output import say, set_quiet, warn
from gradexp.core.settings import Settings, resolve_settings
from gradexp.errors import GradexpError
from gradexp.protocol.names import project_name_problem, run_id_problem
from gradexp.protocol.values import PLAIN_TYPES, decode_value

# gradexp.sdk.values.normalize (the slow path) is imported where it is used: it imports typing, which
# init() should not pay for. Annotations here are strings (PEP 563), so typing is only
# needed by the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


__all__ = [
    "GradexpError",
    "Run",
    "aflush",
    "alog",
    "current_run",
    "finish",
    "flush",
    "init",
    "log",
]

# Queue items. The fast path appends ``(time, values)``: a history record at the next
# auto step (a 2-tuple, told apart by its length). Everything else is a tuple whose first
# element is its kind: records use their protocol type byte; control items are negative.
HISTORY = 1  # (HISTORY, step | None, time, values, captured_bytes)
CONFIG = 2  # (CONFIG, update, 0)
SUMMARY = 3  # (SUMMARY, update, 0)
FINISH = 5  # (FINISH, {"exit_code", "time"}, 0)
TELEMETRY = 6
PARTIAL = 101  # (PARTIAL, step | None, time, values, captured_bytes): log(commit=False)
ATTACH = 102  # (ATTACH, values, captured_bytes): _attach_to_next_step
CTRL_FLUSH = -1  # (CTRL_FLUSH, Waiter, want_ack): resolve once written (and acknowledged)
CTRL_CLOSE = -2  # (CTRL_CLOSE, Waiter, 0): after the finish record; resolve once it is uploaded
CTRL_SKIP = -3  # (CTRL_SKIP, n, 0): n auto steps were dropped (shed): skip their step numbers
#: Estimated bytes a queued record holds: the tuple, the dict, and per value (see estimate).
RECORD_BYTES, VALUE_BYTES = 232, 64

_ACTIVE, _FINISHING, _FINISHED, _DISABLED, _FORKED = "active", "finishing", "finished", "disabled", "forked"  # fmt: skip
_BROKEN = "broken"  # the stream thread failed for this run (see Channel.fail)
_SHEDDING = "shedding"  # the disk refuses writes and the queue is full: log() drops records
_OPEN = (_ACTIVE, _SHEDDING)  # states in which control calls (config, flush, finish) work

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _random_id(n: int = 10) -> str:
    """``n`` random lowercase base36 characters (protocol: run ids made on the client)."""
    raw = int.from_bytes(os.urandom(16), "big")
    chars = []
    for _ in range(n):
        raw, r = divmod(raw, 36)
        chars.append(_BASE36[r])
    return "".join(chars)


_ADJECTIVES = (
    "amber", "bold", "bright", "calm", "clever", "crisp", "dark", "eager", "fair", "fast",
    "gentle", "golden", "green", "happy", "jolly", "keen", "lively", "lucky", "misty", "noble",
    "proud", "quiet", "rapid", "royal", "silent", "silver", "smooth", "steady", "sunny", "swift",
    "tidy", "vivid", "warm", "wild", "wise", "young",
)  # fmt: skip
_NOUNS = (
    "badger", "bird", "brook", "cloud", "comet", "dawn", "dew", "dream", "field", "fire",
    "flower", "fog", "forest", "fox", "frost", "glade", "hill", "lake", "leaf", "meadow",
    "moon", "mountain", "night", "ocean", "owl", "pine", "rain", "river", "sea", "shadow",
    "sky", "snow", "star", "sun", "thunder", "tree", "wave", "wind", "wolf",
)  # fmt: skip


def _random_name() -> str:
    r = int.from_bytes(os.urandom(4), "big")
    return f"{_ADJECTIVES[r % len(_ADJECTIVES)]}-{_NOUNS[(r >> 8) % len(_NOUNS)]}-{r % 97 + 1}"


_time = time.time
#: ``_PLAIN_SUPERSET(map(type, values))``: are all values plain? One C-level pass.
_PLAIN_SUPERSET = PLAIN_TYPES.issuperset


def _captured_bytes(values: dict[str, Any]) -> int:
    """Bytes held by the captured (rich) values among ``values``."""
    total = 0
    for v in values.values():
        if type(v) not in PLAIN_TYPES:
            nbytes = getattr(v, "nbytes", None)
            if type(nbytes) is int:
                total += nbytes
    return total


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

    Written by callers: ``queue`` (append only: atomic), ``captured_in`` and ``dropped``
    (under ``Run._lock``, on the slow path only). Written by the stream thread: ``queue``
    (popleft only), ``captured_out``, ``written_seq``, ``last_seq``, ``acked_seq``,
    ``next_step``, ``upload_error``, ``last_values`` (under ``summary_lock``) and the
    waiters. Reading a plain attribute another thread writes is atomic under the GIL,
    which is all the readers here need. ``wake_pending`` and ``check_at`` are written by
    both: they are hints, and a lost update costs at most one tick (100 ms) of latency or
    one extra check, never a record.
    """

    def __init__(self, run: Run, settings: Settings) -> None:
        self.run = run
        self.settings = settings
        self.queue: deque[tuple[Any, ...]] = deque()
        self.captured_in = 0  # bytes of captured arrays queued (caller, under Run._lock)
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
        # Records dropped while shedding (caller threads, under Run._lock): for telemetry,
        # for the message when logging resumes, and the auto steps they would have taken.
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
        self.resume_mode: str | None = None  # None, "must" or "allow" (set by init)
        self.release = False  # the caller is done waiting: let go of the run now
        self.abandoned = False  # ... and whatever is not uploaded stays for `gradexp sync`

    def fail(self, reason: str) -> None:
        """The stream cannot serve this run: release everything that waits on it.

        The run stops accepting records (log() warns once and ignores them), so nothing
        piles up in memory behind a stream that will never take it.
        """
        self.stream_dead = reason
        self.start_error = self.start_error or reason
        if self.run._state in _OPEN:
            self.run._state = _BROKEN
        for waiter in (self.started, self.closed):
            if not waiter.event.is_set():
                waiter.resolve(False)
        with self.room:
            self.room.notify_all()

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
                        self.run._start_shedding(self.disk_error)
                        return
                    self.room.wait(0.05)
            finally:
                self.waiters -= 1


# --- the stream thread, started lazily ----------------------------------------------------


class StreamHandle:
    """The process's one ``gradexp-stream`` thread, as the caller sees it.

    The thread imports asyncio and aiohttp itself, so ``init()`` never pays for them.
    Until its loop is ready, runs to start wait in ``_pending`` (under ``_lock``); after
    that they are handed over with ``loop.call_soon_threadsafe``.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop: Any = None
        self._lock = threading.Lock()
        self._pending: list[Channel] = []
        self.thread = threading.Thread(target=self._main, name="gradexp-stream", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            from gradexp.stream import runstream as _stream  # imported here, on the stream thread

            _stream.serve(self)
        except BaseException as exc:
            # The thread cannot work (it should never happen): say why, and release every
            # caller that would otherwise wait on it.
            reason = f"{type(exc).__name__}: {exc}"
            say(f"the gradexp stream thread stopped ({reason}); runs cannot be written.")
            with self._lock:
                pending, self._pending = self._pending, []
            for channel in pending:
                channel.fail(reason)
            raise

    def loop_ready(self, loop: Any) -> list[Channel]:
        """Called by the stream thread once its loop runs: take the runs waiting to start."""
        with self._lock:
            self.loop = loop
            pending, self._pending = self._pending, []
        return pending

    def start_run(self, channel: Channel) -> None:
        """Hand a new run to the stream thread (any thread)."""
        with self._lock:
            loop = self.loop
            if loop is None:
                self._pending.append(channel)
                return
        from gradexp.stream.runstream import start_run  # the loop is running: the module is loaded

        loop.call_soon_threadsafe(start_run, channel)

    def alive(self) -> bool:
        return self.thread.is_alive()


_handle: StreamHandle | None = None
_handle_lock = threading.Lock()  # two threads calling init() at once start one stream thread


def _stream_handle() -> StreamHandle:
    global _handle
    with _handle_lock:
        if _handle is None or not _handle.alive():
            _handle = StreamHandle()
        return _handle


# --- config and summary -------------------------------------------------------------------


def _jsonable(value: Any, where: str) -> Any:
    """A config value as JSON can hold it (numpy scalars, paths, enums, tuples ...)."""
    if type(value) in PLAIN_TYPES:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, where) for v in value]
    from gradexp.sdk.values.normalize import BadValue, convert

    try:
        converted = convert(value)
    except BadValue:
        converted = None
    if type(converted) in PLAIN_TYPES and converted is not None:
        return converted
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    text = str(value)
    warn(f"config value {where} ({type(value).__name__}) is stored as its text {text[:60]!r}.")
    return text


def _as_config_dict(config: Any) -> dict[str, Any]:
    """``init(config=...)``: a mapping, an argparse.Namespace or a dataclass instance."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        items = dict(config)
    elif hasattr(config, "__dataclass_fields__"):
        import dataclasses

        items = dataclasses.asdict(config)
    elif hasattr(config, "__dict__"):
        items = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    else:
        raise TypeError(
            f"config must be a mapping, a dataclass or a namespace, not {type(config).__name__}"
        )
    return {str(k): _jsonable(v, str(k)) for k, v in items.items()}


class Config(MutableMapping["str", "Any"]):
    """``run.config``: a dict whose updates are recorded (as ``config`` records)."""

    def __init__(self, run: Run, initial: dict[str, Any]) -> None:
        self._run = run
        self._data = dict(initial)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        raise TypeError("config keys cannot be deleted once recorded; set a new value instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:  # run.config.lr, as wandb users write it
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Merge and record in one ``config`` record."""
        changes = _as_config_dict(dict(other, **kwargs))
        if changes:
            self._data.update(changes)
            self._run._control(CONFIG, changes)

    def as_dict(self) -> dict[str, Any]:
        """A plain copy."""
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Config({self._data!r})"


class Summary(MutableMapping["str", "Any"]):
    """``run.summary``: the last value of every key, unless set explicitly.

    Reading waits (briefly) for the stream thread to take what was logged so far, so a
    value logged just before is seen. Setting a key records a ``summary`` record; explicit
    values win over "last value" on the server too.
    """

    def __init__(self, run: Run) -> None:
        self._run = run
        self._explicit: dict[str, Any] = {}

    def _merged(self) -> dict[str, Any]:
        self._run._barrier()
        channel = self._run._channel
        with channel.summary_lock:
            merged = {k: decode_value(v) for k, v in channel.last_values.items()}
        merged.update(self._explicit)
        return merged

    def __getitem__(self, key: str) -> Any:
        return self._merged()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        raise TypeError("summary keys cannot be deleted; set a new value instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set explicit summary values (one ``summary`` record)."""
        bad: list[tuple[str, str]] = []
        from gradexp.sdk.values.normalize import normalize

        values = normalize(dict(other, **kwargs), set(), bad)
        for key, reason in bad:
            warn(f"summary value {key!r} dropped: {reason}.")
        if values:
            self._explicit.update(values)
            self._run._control(SUMMARY, values)

    def __repr__(self) -> str:
        return f"Summary({self._merged()!r})"


# --- the run -----------------------------------------------------------------------------


class Run:
    """One training run: its identity, step counter, config and summary, and ``log()``.

    Made by :func:`gradexp.init`; the module-level functions act on the current one. A
    context manager: ``with gradexp.init(...) as run:`` finishes it on exit, recording an
    exception as a failed run (exit code 1).
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
    ) -> None:
        self._settings = settings
        self._id = run_id
        self._name = name
        self._dir = run_dir
        self._meta = meta
        self._resume = resume
        self._lock = threading.Lock()  # see the module docstring: never held across I/O
        self._state = _DISABLED if settings.mode == "disabled" else _ACTIVE
        self._known_keys: set[str] = set()  # keys the slow path already validated
        self._warned: set[str] = set()  # what we already warned about (once each)
        self._channel = Channel(self, settings)
        self._config = Config(self, config)
        self._summary = Summary(self)
        self._pid = os.getpid()
        self._exit_code: int | None = None

    # --- identity ---

    @property
    def id(self) -> str:
        """The run id (made on the client; also the last part of the run dir)."""
        return self._id

    @property
    def name(self) -> str:
        """The display name (``bright-fox-12`` unless given)."""
        return self._name

    @property
    def project(self) -> str:
        """The project the run belongs to."""
        return str(self._meta.get("project", ""))

    @property
    def dir(self) -> str | None:
        """The run directory (``<dir>/gradexp/run-<time>-<id>``); None when disabled."""
        return self._dir

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
        return f"<gradexp.Run {self._id} {self._name!r} {self._state} dir={self._dir!r}>"

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
        # dict of plain scalars, auto step, committed. See the module docstring.
        if (
            type(data) is dict
            and step is None
            and commit
            and self._state is _ACTIVE
            and _PLAIN_SUPERSET(map(type, data.values()))
        ):
            queue = self._channel.queue
            queue.append((_time(), data.copy()))
            if len(queue) > self._channel.check_at and self._channel.over(len(data)):
                self._channel.wait_for_room(len(data))
            return
        if self._enqueue(data, step, commit):
            self._channel.wait_for_room()

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
        if self._state is not _ACTIVE:
            if self._state is not _SHEDDING:
                self._log_inactive()
                return False
            if not self._end_shedding():
                self._shed(step is None and commit)
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
        channel = self._channel
        if step is None and commit and not rich:
            channel.queue.append((_time(), values))
        else:
            if captured:
                with self._lock:
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
            with self._lock:
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
        return out, _captured_bytes(out)

    def _attach_to_next_step(self, values: dict[str, Any]) -> None:
        """Merge already-captured values into the next history record the user commits.

        Thread-safe: ``gradexp.watch`` calls this from autograd hooks, which may run on
        other threads. It only appends to the queue (atomic); the stream thread merges the
        values into the next history record it takes, in queue order. The user's own keys
        win over attached ones of the same name. Values still attached at finish() are
        committed as a record of their own.
        """
        if self._state is not _ACTIVE:
            return
        values = dict(values)
        captured = _captured_bytes(values)
        if captured:
            with self._lock:
                self._channel.captured_in += captured
        self._channel.queue.append((ATTACH, values, captured))

    def _start_shedding(self, reason: str) -> None:
        """The queue is full and the disk refuses writes: drop new records from now on
        (any caller thread, from wait_for_room)."""
        with self._lock:
            if self._state is not _ACTIVE:
                return
            self._state = _SHEDDING
        say(
            f"run {self._id}: the run file cannot be written ({reason}); what was logged so "
            "far is kept in memory, and new log() calls are dropped (and counted) so "
            f"training goes on. Free space for {self._dir}: logging resumes by itself."
        )

    def _shed(self, auto_step: bool) -> None:
        """Count one record dropped while shedding."""
        channel = self._channel
        with self._lock:
            channel.shed += 1
            channel.shed_episode += 1
            if auto_step:
                channel.shed_steps += 1

    def _end_shedding(self) -> bool:
        """Back to logging if the stream writes again and the queue has room (True)."""
        channel = self._channel
        if channel.disk_error is not None or channel.pending() > channel.limit // 2:
            return False
        with self._lock:
            if self._state is not _SHEDDING:
                return self._state is _ACTIVE
            dropped, skip = channel.shed_episode, channel.shed_steps
            channel.shed_episode = channel.shed_steps = 0
            # Before any record logged from here on (other threads' fast path included:
            # it starts once the state is active), so the auto steps keep counting the
            # user's loop: the dropped records' steps are left empty, not reused.
            channel.queue.append((CTRL_SKIP, skip, 0))
            self._state = _ACTIVE
        channel.wake_stream()
        say(
            f"run {self._id}: the run file is written again; {dropped} records logged "
            "meanwhile were dropped (the count is in the run's telemetry)."
        )
        return True

    def _warn_once(self, what: str, message: str, depth: int = 0) -> None:
        if what not in self._warned:
            self._warned.add(what)
            # Points the warning at the line that called log(): _warn_once <- _enqueue
            # <- log() <- the caller (``depth`` more frames from deeper call sites).
            warn(message, stacklevel=4 + depth)

    def _log_inactive(self) -> None:
        state = self._state
        if state is _DISABLED:
            return
        if state is _BROKEN:
            self._warn_once(
                "broken",
                f"run {self._id} cannot be written ({self._channel.stream_dead}); log() calls "
                f"are ignored. What was written is in {self._dir}.",
            )
        elif state is _FORKED:
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
        if self._state not in _OPEN:
            if self._state is not _DISABLED and kind in (CONFIG, SUMMARY):
                self._log_inactive()
            return
        self._channel.queue.append((kind, body, 0))
        self._channel.wake_stream()

    # --- flushing and finishing ---

    def _barrier(self, timeout: float = 5.0) -> None:
        """Wait until the stream has taken everything queued so far (used by summary)."""
        if self._state not in _OPEN:
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
        if self._state is _DISABLED:
            return True
        if self._state not in _OPEN:
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
        with self._lock:  # two threads finishing at once: one finishes, one returns
            state = self._state
            if state in _OPEN:
                self._state = _FINISHING
            elif state is _BROKEN:
                self._state = _FINISHED  # nothing to wait for: the stream already let go
        if state not in _OPEN:
            if state is _BROKEN:
                _forget(self)
            return
        self._exit_code = int(exit_code)
        closing = Waiter()
        # The stream commits values still held by commit=False or attached first.
        self._channel.queue.append((FINISH, {"exit_code": self._exit_code, "time": _time()}, 0))
        self._channel.queue.append((CTRL_CLOSE, closing, 0))
        self._channel.wake_stream()
        if timeout is None:
            timeout = self._settings.finish_timeout
        try:
            self._wait_finish(closing, timeout)
        finally:
            with self._lock:
                self._state = _FINISHED
            _forget(self)

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
        except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C, or SIGTERM (_on_sigterm)
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
        if self.mode == "online" and (left > 0 or channel.upload_error):
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
        elif exc_type is SystemExit:  # sys.exit(n), or SIGTERM (143: see _on_sigterm)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        else:
            code = 1
        self.finish(exit_code=code)


# --- the current run and the module-level API ------------------------------------------

_current: Run | None = None
_current_lock = threading.Lock()  # init() and finish() on different threads agree on it
_said_reinit = False
_hooks_installed = False
_uncaught_exception = False
_sigterm_handled = False  # our SIGTERM handler is installed (or someone else's is in place)
_terminated_by = 0  # the signal that ended this process through _on_sigterm, if one did


def current_run() -> Run | None:
    """The run module-level functions act on (None before init() or after finish())."""
    return _current


def _forget(run: Run) -> None:
    global _current
    with _current_lock:
        if _current is run:
            _current = None


def _require_run(what: str) -> Run:
    run = _current
    if run is None:
        raise GradexpError(
            f"gradexp.{what}() was called before gradexp.init(): call gradexp.init() "
            "first to start a run."
        )
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
    """Log a mapping of values to the current run (see :meth:`Run.log`)."""
    run = _current
    if run is None:
        _require_run("log")
        return
    # The fast path of Run.log(), inlined: one Python call less for the common case.
    if (
        type(data) is dict
        and step is None
        and commit
        and run._state is _ACTIVE
        and _PLAIN_SUPERSET(map(type, data.values()))
    ):
        channel = run._channel
        queue = channel.queue
        queue.append((_time(), data.copy()))
        if len(queue) > channel.check_at and channel.over(len(data)):
            channel.wait_for_room(len(data))
        return
    if run._enqueue(data, step, commit):
        run._channel.wait_for_room()


async def alog(data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
    """``await gradexp.alog({...})``: log() for async code (see :meth:`Run.alog`)."""
    await _require_run("alog").alog(data, step=step, commit=commit)


def flush(timeout: float | None = None) -> bool:
    """Flush the current run (see :meth:`Run.flush`)."""
    return _require_run("flush").flush(timeout)


async def aflush(timeout: float | None = None) -> bool:
    """Flush the current run from async code (see :meth:`Run.aflush`)."""
    return await _require_run("aflush").aflush(timeout)


def finish(exit_code: int = 0, timeout: float | None = None) -> None:
    """Finish the current run (see :meth:`Run.finish`); a no-op without one."""
    run = _current
    if run is not None:
        run.finish(exit_code=exit_code, timeout=timeout)


def init(
    project: str | None = None,
    *,
    name: str | None = None,
    id: str | None = None,
    config: Any = None,
    tags: list[str] | tuple[str, ...] | None = None,
    notes: str | None = None,
    group: str | None = None,
    mode: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    resume: bool | str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
) -> Run:
    """Start a run and make it the current one.

    Never waits on the network: the run id is made here and the stream thread creates
    the run on the server. Only ``resume=`` waits (bounded) for the server's last step.
    ``resume``: ``True``/``"must"`` continues run ``id`` (an error if it does not exist),
    ``"allow"`` continues it if it exists. Calling ``init()`` while a run is active
    finishes that run first. Use as a context manager to finish on exit.
    """
    global _current, _said_reinit
    previous = _current
    if previous is not None:
        if not _said_reinit:
            _said_reinit = True
            say(f"init() was called again: finishing run {previous.id} first.")
        previous.finish()

    overrides: dict[str, Any] = {}
    if isinstance(settings, Settings):
        overrides.update(settings.as_dict())
    elif settings is not None:
        overrides.update(settings)
    explicit = {
        "project": project,
        "mode": mode,
        "dir": os.fspath(dir) if dir is not None else None,
        "run_id": id,
        "base_url": base_url,
        "api_key": api_key,
    }
    overrides.update({k: v for k, v in explicit.items() if v is not None})
    resolved = resolve_settings(**overrides)
    if resolved.quiet:
        set_quiet(True)
    run_id = resolved.run_id or _random_id()
    problem = run_id_problem(run_id) or project_name_problem(resolved.project)
    if problem is not None:
        raise GradexpError(f"{problem}.")
    resume_mode: str | None = {True: "must", False: None, None: None}.get(resume, resume)  # type: ignore[arg-type]
    if resume_mode not in (None, "must", "allow"):
        raise GradexpError(f"resume={resume!r}: use True, 'must' or 'allow'.")
    if resume_mode and resolved.run_id is None:
        raise GradexpError("resume= needs the id of the run to continue: init(id=..., resume=True)")
    run_name = name or _random_name()
    config_dict = _as_config_dict(config)

    run_dir: str | None = None
    started_at = time.time()
    if resolved.mode != "disabled":
        stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(started_at))
        root = os.path.join(resolved.dir, "gradexp")
        run_dir = os.path.join(root, f"run-{stamp}-{run_id}")
        suffix = 1
        while os.path.exists(run_dir):  # the same id twice in one second (resume, tests)
            suffix += 1
            run_dir = os.path.join(root, f"run-{stamp}-{run_id}.{suffix}")
        # The one piece of file I/O on the caller's thread: a bad dir fails here, at once,
        # with a clear message, instead of later on the stream thread.
        try:
            os.makedirs(run_dir)
        except OSError as exc:
            raise GradexpError(
                f"cannot create the run directory {run_dir} ({exc.strerror}); pass "
                "dir= or set GRADEXP_DIR to a writable directory."
            ) from None
    hostname, system, machine = _host()
    meta: dict[str, Any] = {
        "id": run_id,
        "project": resolved.project,
        "name": run_name,
        "config": config_dict,
        "tags": [str(t) for t in (tags or ())],
        "notes": notes,
        "group": group,
        "attempt": _random_id(),
        "host": {
            "hostname": hostname,
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "platform": f"{system}-{machine}",
        },
        "started_at": started_at,
        "resume": bool(resume_mode),
        "dir": run_dir,
        "mode": resolved.mode,
        "base_url": resolved.base_url,
    }
    run = Run(
        resolved,
        run_id=run_id,
        name=run_name,
        run_dir=run_dir,
        meta=meta,
        config=config_dict,
        resume=bool(resume_mode),
    )
    if resolved.mode != "disabled":
        run._channel.resume_mode = resume_mode
        _install_hooks()
        _install_sigterm_handler()
        _stream_handle().start_run(run._channel)
        if resume_mode:
            _wait_resumed(run, resume_mode)
    with _current_lock:
        _current = run
    if resolved.mode == "offline" and not resolved.quiet:
        say(f"logging offline to {run_dir} (upload later with `gradexp sync`)")
    elif resolved.mode == "online":
        say(f"run {run_name} ({run_id}): {run.url}")
    if "IPython" in sys.modules:  # only then can this be a notebook; never import IPython
        from gradexp.sdk.jupyter import display_run

        display_run(run)
    return run


def _host() -> tuple[str, str, str]:
    """(hostname, system, machine), cheaply: os.uname where it exists (not on Windows)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        u = uname()
        return u.nodename, u.sysname, u.machine
    import platform

    return platform.node(), platform.system(), platform.machine()


def _wait_resumed(run: Run, resume_mode: str) -> None:
    """Resuming needs the last step and sequence: wait (bounded) for the stream to learn them."""
    channel = run._channel
    limit = 30.0
    if not channel.started.wait(limit):
        run._state = _FINISHED
        raise GradexpError(
            f"could not resume run {run.id}: no answer from {run.settings.base_url} within "
            f"{limit:.0f} s. Check the server (gradexp status), or start a new run."
        )
    if channel.start_error is not None:
        run._state = _FINISHED
        raise GradexpError(channel.start_error)
    if channel.resume_step >= 0:
        say(f"resuming run {run.id} at step {channel.resume_step + 1}")


# --- process hooks: exit, fork, uncaught exceptions -------------------------------------


def _install_hooks() -> None:
    """Once per process: the exit hook, the fork hook and the excepthook wrapper."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_finish_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
    previous = sys.excepthook

    def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
        global _uncaught_exception
        _uncaught_exception = True  # so the exit hook records the run as failed
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook


def _install_sigterm_handler() -> None:
    """Make SIGTERM end the process the way an exception would, so the run is finished.

    A scheduler's preemption, ``kill``, or a container stop sends SIGTERM, whose default
    action ends the process at once: the run would lose its last ~100 ms of records and
    read as crashed. With this handler the main thread raises ``SystemExit(143)``, so
    ``finally`` blocks and context managers run and the exit hook finishes the run with
    exit code 143. Installed only where SIGTERM still has its default action (a handler
    of the program's own, or a framework's, is left alone), and only from the main thread
    (Python's rule for signal handlers); a second SIGTERM ends the process at once.
    """
    global _sigterm_handled
    if _sigterm_handled or threading.current_thread() is not threading.main_thread():
        return
    import signal

    _sigterm_handled = True
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # no signals here (an embedded interpreter ...)
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    import signal

    global _terminated_by
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process now
    if _terminated_by:
        return
    _terminated_by = signum
    run = _current
    if run is not None and run._pid == os.getpid() and run._state in _OPEN:
        say(f"SIGTERM: finishing run {run._id} before exiting (send it again to exit now)")
    raise SystemExit(128 + signum)


def _finish_at_exit() -> None:
    """At interpreter exit, finish the current run with a bounded wait.

    Runs on the main thread after non-daemon threads were joined; the stream thread (a
    daemon) is still alive here. A forked child that inherited a run does nothing: the
    run belongs to its parent. Ctrl-C during the wait abandons the wait (finish() closes
    the run file first), never the file.
    """
    run = _current
    if run is None or run._pid != os.getpid() or run._state not in _OPEN:
        return
    code = int(_uncaught_exception)  # 1 if the program died of an uncaught exception
    if _terminated_by:
        code = 128 + _terminated_by
    try:
        run.finish(exit_code=code)
    except (KeyboardInterrupt, SystemExit):  # the wait was abandoned; the file is closed
        pass


def _reset_sigterm_in_child() -> None:
    """A forked child's SIGTERM is its own business (a DataLoader worker told to stop)."""
    import signal

    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass


def _after_fork_in_child() -> None:
    """In a forked child (a DataLoader worker, multiprocessing with fork ...).

    The stream thread does not exist in the child, and the parent's locks may have been
    held by a thread that does not exist either. So: drop the handle (a later init()
    starts a fresh thread), give the inherited run new locks, and mark it forked: its
    log() warns once and does nothing, so the child can neither deadlock nor write into
    the parent's run file. ``gradexp.init()`` in the child starts its own run.
    """
    global _handle, _handle_lock, _current_lock
    _handle = None
    _reset_sigterm_in_child()
    _handle_lock = threading.Lock()
    _current_lock = threading.Lock()
    run = _current
    if run is not None:
        run._lock = threading.Lock()
        run._channel.room = threading.Condition(threading.Lock())
        run._channel.summary_lock = threading.Lock()
        run._channel.wake = None
        if run._state is not _DISABLED:
            # It stays the current run, so gradexp.log() in the child warns (once)
            # instead of raising "call gradexp.init() first" inside a DataLoader worker.
            run._state = _FORKED
