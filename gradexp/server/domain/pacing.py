"""Pacing writers: how often each run should send, told in every ingest reply.

Many runs each sending a small batch a second is the load a team's server sees. Each ingest
reply tells the writer two things (``docs/protocol.md``):

- ``watched``: whether a live stream (of any server process) follows the run's rows. The
  SDK then sends every ~0.1 s, so a ``log()`` is drawn within ~300 ms, and less often than
  its default when nobody watches.
- ``batch_interval``: the least number of seconds the server wants between one writer's
  batches now. 0 while this process keeps up; past its load target it grows (x1.5 per
  adjustment, up to :data:`MAX_INTERVAL`) and shrinks back once batches are quick again.

The load signal is the time a batch spends in this process, from its request to its
commit (an exponential average): on SQLite it includes the wait for the one writer, on
PostgreSQL the wait for a pooled connection and the run's row lock, everywhere the event
loop's lag. A batch is refused before its body is read (429 with ``Retry-After``) past
``max_in_flight`` batches being handled at once, past :data:`MIN_IN_FLIGHT` while the
average is over :data:`LATENCY_BOUND` times the target, and past as many as the process
can finish within :data:`QUEUE_BUDGET` times the target (its measured capacity: batches
finished per second while busy, times that time; Little's law), or, with
:data:`BURST_IN_FLIGHT` in hand, while the oldest has been there that long: a burst, which
the average does not see yet, is not queued longer than the target allows. The SDK keeps a
refused batch on disk and sends it again, so the batches that are accepted keep a bounded
latency and nothing is lost. ``Retry-After`` varies from refusal to refusal (one to two
times the interval asked for), and the SDK adds its own jitter, so that writers refused
together do not all come back together.

Everything here runs on the server's event loop: no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator

from gradexp.server.domain.errors import RateLimited
from gradexp.server.domain.live.watchers import watched_runs
from gradexp.server.storage.db import Database

log = logging.getLogger("gradexp.server")

MAX_INTERVAL = 30.0  # the most a writer is asked to wait between batches (seconds)
BASE_INTERVAL = 1.0  # the SDK's default batch interval: what stretching starts from
STRETCH = 1.5  # factor per adjustment, up or down
ADJUST_EVERY = 0.5  # seconds between adjustments of the factor
EWMA_WEIGHT = 0.1  # weight of the newest batch in the latency average
WATCHED_REFRESH = 1.0  # seconds between reads of the other processes' watched runs
# While batches take LATENCY_BOUND x target on average, at most MIN_IN_FLIGHT are taken at
# once: asking writers to slow down takes a batch interval to show, and meanwhile the
# queue, not the work, would make the latency of the batches accepted.
LATENCY_BOUND = 2.5
MIN_IN_FLIGHT = 4
QUEUE_BUDGET = 1.5  # admit what the measured capacity finishes within this x the target
BURST_IN_FLIGHT = 8  # ... and with this many in hand, none while the oldest waited that long
MIN_BUSY = 0.05  # seconds busy in a half second before the capacity is measured again


class Pacer:
    """This process's pacing of writers (``AppState.pacer``).

    ``target``: the batch latency (seconds) past which writers are asked to slow down;
    ``max_in_flight``: batches handled at once past which new ones are refused (429);
    ``follows(run_pk)``: whether this process's live streams follow a run (the hub's
    answer, without a query); the other processes' watches are read from the database at
    most every :data:`WATCHED_REFRESH` seconds, in the background.
    """

    def __init__(
        self,
        db: Database,
        follows: Callable[[int], bool],
        *,
        target: float = 0.05,
        max_in_flight: int = 64,
    ) -> None:
        self.db = db
        self.follows = follows
        self.target = target
        self.max_in_flight = max_in_flight
        self.latency = 0.0  # seconds, exponential average over recent batches
        self.factor = 1.0  # 1: keeping up; else how much slower writers should send
        self.refused = 0  # batches refused with 429 (for tests and the benchmark)
        self.capacity = 0.0  # batches finished per second while busy (0: not measured)
        self._adjusted_at = time.monotonic()
        self._busy = 0.0  # seconds with a batch in flight since the last adjustment
        self._busy_since = 0.0
        self._done = 0  # batches finished since the last adjustment
        self._started: dict[object, float] = {}  # batches in hand -> when each came
        self._watched: set[int] = set()  # the other processes' watched runs, as last read
        self._watched_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Around one ingest request: refuses it (RateLimited, with ``retry_after``) when
        too many are in flight; else counts it and times it into the load signal."""
        if (
            self.in_flight >= self.admit_limit()
            or (self.in_flight >= MIN_IN_FLIGHT and self.latency > LATENCY_BOUND * self.target)
            or (
                self.in_flight >= BURST_IN_FLIGHT and self.oldest_age() > QUEUE_BUDGET * self.target
            )
        ):
            self.refused += 1
            now = time.monotonic()
            if now - self._adjusted_at >= ADJUST_EVERY:
                self._adjust(now, stretch=True)
            lo = max(1, round(self.interval(False)))
            raise RateLimited(
                "the server is busy: send this batch again after Retry-After seconds",
                code="slow_down",
                retry_after=random.randint(lo, 2 * lo),
            )
        started = time.monotonic()
        if not self.in_flight:
            self._busy_since = started
        token = object()
        self._started[token] = started
        try:
            yield
        finally:
            del self._started[token]
            self._done += 1
            now = time.monotonic()
            if not self.in_flight:
                self._busy += now - self._busy_since
            self.latency += EWMA_WEIGHT * (now - started - self.latency)
            if now - self._adjusted_at >= ADJUST_EVERY:
                self._adjust(now, stretch=self.latency > self.target)

    @property
    def in_flight(self) -> int:
        """Batches being handled now."""
        return len(self._started)

    def oldest_age(self) -> float:
        """Seconds the oldest batch in hand has been in this process (0 if none)."""
        for started in self._started.values():  # insertion order: the first is the oldest
            return time.monotonic() - started
        return 0.0

    def admit_limit(self) -> int:
        """The most batches handled at once now: ``max_in_flight``, or fewer when the
        measured capacity would not finish more within QUEUE_BUDGET x the target."""
        if self.capacity <= 0.0:
            return self.max_in_flight
        fits = int(self.capacity * self.target * QUEUE_BUDGET)
        return min(self.max_in_flight, max(MIN_IN_FLIGHT, fits))

    def _adjust(self, now: float, stretch: bool) -> None:
        """Every ADJUST_EVERY: the capacity measured over the last period, and the factor
        (stretched when overloaded, shrunk back once batches are quick)."""
        busy = self._busy + (now - self._busy_since if self.in_flight else 0.0)
        if busy >= MIN_BUSY and self._done:
            measured = self._done / busy
            self.capacity = measured if not self.capacity else (self.capacity + measured) / 2
        self._busy, self._done = 0.0, 0
        if self.in_flight:
            self._busy_since = now
        self._adjusted_at = now
        if stretch:
            self._stretch()
        elif self.latency < self.target / 2 and self.factor > 1.0:
            self.factor = max(1.0, self.factor / STRETCH)

    def _stretch(self) -> None:
        self.factor = min(MAX_INTERVAL / BASE_INTERVAL, self.factor * STRETCH)

    def interval(self, watched: bool) -> float:
        """The ``batch_interval`` of a reply: 0 while keeping up, else the seconds the
        writers should leave between batches (a watched run's a tenth of the others')."""
        if self.factor <= 1.0:
            return 0.0
        seconds = BASE_INTERVAL * self.factor * (0.1 if watched else 1.0)
        return round(min(MAX_INTERVAL, seconds), 2)

    def watched(self, run_pk: int) -> bool:
        """Whether a live stream of any process follows this run (this process's at once,
        the others' as of the last background read)."""
        if self.follows(run_pk):
            return True
        now = time.monotonic()
        if now - self._watched_at >= WATCHED_REFRESH and self._refresh is None:
            self._watched_at = now
            self._refresh = asyncio.ensure_future(self._read_watched())
        return run_pk in self._watched

    async def _read_watched(self) -> None:
        try:
            self._watched = await watched_runs(self.db)
        except Exception as exc:  # a failed read keeps the last answer; ingest goes on
            log.warning("could not read the watched runs: %s", exc)
        finally:
            self._refresh = None

    async def close(self) -> None:
        """Wait for a background read in progress (before the database closes)."""
        if self._refresh is not None:
            with contextlib.suppress(Exception):
                await self._refresh
