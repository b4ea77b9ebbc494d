"""Sign-in throttling in this process's memory, in front of the password hasher.

A password check costs ~0.1 s of a core and 32 MiB (scrypt, on purpose), and only
``SCRYPT_CONCURRENCY`` run at once, so whoever sends the most attempts would otherwise
decide how long everyone else waits. Two fences, both before any hashing:

- :class:`Buckets`: each client address (or, for a known browser, its user) has a bucket of
  :data:`BURST` attempts that refills one every :data:`REFILL_SECONDS`; an empty bucket is
  answered 429 with ``Retry-After`` at once. A right password from an address gives its
  attempt back: people who sign in are not what the bucket is for.
- :class:`FairQueue`: the attempts that may hash wait here, not in the hasher's FIFO. Known
  browsers are served first; the others by address in turn (round robin), so one address
  with many attempts waits behind each of the others' next one, not the reverse. The queue
  is bounded (:data:`MAX_WAITING` in all, fewer when the hasher is slow so that none waits
  much past :data:`MAX_WAIT_SECONDS`, and :data:`MAX_PER_ADDRESS` per address): past that
  an attempt is answered 429 with ``Retry-After`` instead of waiting.

So a flood from one address spends its burst and is refused; a flood from many addresses
fills the queue and is refused past it, and a known browser never waits behind either.
Both are per process (several processes each apply them); the wrong-password counters of
``lockout.py`` are the ones shared through the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

from gradexp.server.domain.errors import RateLimited

BURST = 20  # sign-in attempts an address may make at once...
REFILL_SECONDS = 1.0  # ...and then one more every this many seconds
BUCKETS_MAX = 10_000  # addresses remembered (the least recently seen forgotten first)
MAX_WAITING = 16  # attempts waiting for the hasher, of all addresses together...
MAX_WAIT_SECONDS = 1.0  # ...and fewer when the hasher is slow: at most about this long
MAX_PER_ADDRESS = 4  # attempts of one address waiting for the hasher
MAX_KNOWN_WAITING = 16  # attempts of known browsers waiting for the hasher


def busy_error(wait: float) -> RateLimited:
    """The refusal of an attempt that may not wait for the hasher."""
    seconds = max(1, round(wait))  # whole seconds (HTTP's); rounded: the queue moves fast
    return RateLimited(
        f"The server is busy with sign-ins. Try again in {seconds} second"
        f"{'s' if seconds != 1 else ''}.",
        code="busy",
        retry_after=seconds,
    )


class Buckets:
    """Token buckets by key (an address, or a known browser's user)."""

    def __init__(
        self, burst: int = BURST, refill: float = REFILL_SECONDS, capacity: int = BUCKETS_MAX
    ) -> None:
        self.burst = burst
        self.refill = refill
        self.capacity = capacity
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> None:
        """Spend one attempt of ``key``'s bucket; RateLimited ``busy`` when it is empty."""
        now = time.monotonic()
        tokens, at = self._levels.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) / self.refill)
        if tokens < 1.0:
            self._levels[key] = (tokens, now)
            raise RateLimited(
                "Too many sign-in attempts from here. Try again in "
                f"{math.ceil((1.0 - tokens) * self.refill)} seconds.",
                code="slow_down",
                retry_after=math.ceil((1.0 - tokens) * self.refill),
            )
        self._levels[key] = (tokens - 1.0, now)
        while len(self._levels) > self.capacity:
            self._levels.popitem(last=False)

    def give_back(self, key: str) -> None:
        """Return the attempt ``key`` spent last (its password was right)."""
        level = self._levels.get(key)
        if level is not None:
            self._levels[key] = (min(float(self.burst), level[0] + 1.0), level[1])


class FairQueue:
    """Who checks a password next (see the module's docstring): ``concurrency`` at once."""

    def __init__(
        self,
        concurrency: int,
        *,
        max_waiting: int = MAX_WAITING,
        max_per_address: int = MAX_PER_ADDRESS,
        max_known_waiting: int = MAX_KNOWN_WAITING,
        max_wait: float = MAX_WAIT_SECONDS,
    ) -> None:
        self.concurrency = concurrency
        self.max_waiting = max_waiting
        self.max_wait = max_wait
        self.max_per_address = max_per_address
        self.max_known_waiting = max_known_waiting
        self._running = 0
        self._known: deque[asyncio.Future[None]] = deque()
        self._lanes: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._waiting = 0  # futures in _lanes
        self._seconds = 0.25  # a moving average of one turn (a cautious start), to bound waits

    @property
    def waiting(self) -> int:
        """Attempts waiting for their turn."""
        return self._waiting + len(self._known)

    def _estimate(self) -> float:
        """Seconds until those waiting now have had their turn (when a retry finds room)."""
        return self.waiting / self.concurrency * self._seconds

    @contextlib.asynccontextmanager
    async def turn(self, address: str, known: bool) -> AsyncIterator[None]:
        """Wait for this attempt's turn, then hold it for the block; RateLimited ``busy``
        when the queue (or this address's share of it) is full."""
        if self._running >= self.concurrency or self.waiting:
            await self._wait(address, known)
        else:
            self._running += 1
        started = time.monotonic()
        try:
            yield
        finally:
            self._seconds = 0.8 * self._seconds + 0.2 * (time.monotonic() - started)
            self._running -= 1
            self._next()

    async def _wait(self, address: str, known: bool) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if known:
            if len(self._known) >= self.max_known_waiting:
                raise busy_error(self._estimate())
            self._known.append(future)
        else:
            lane = self._lanes.get(address)
            wait = (self._waiting + 1) / self.concurrency * self._seconds
            if (
                self._waiting >= self.max_waiting
                or (self._waiting and wait > self.max_wait)
                or (lane is not None and len(lane) >= self.max_per_address)
            ):
                raise busy_error(self._estimate())
            if lane is None:
                lane = self._lanes[address] = deque()
            lane.append(future)
            self._waiting += 1
        try:
            await future  # _next() counted this attempt as running when it woke it
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._running -= 1  # woken, then cancelled: hand the turn on
                self._next()
            else:
                self._forget(address, known, future)
            raise

    def _forget(self, address: str, known: bool, future: asyncio.Future[None]) -> None:
        if known:
            with contextlib.suppress(ValueError):
                self._known.remove(future)
            return
        lane = self._lanes.get(address)
        if lane is not None and future in lane:
            lane.remove(future)
            self._waiting -= 1
            if not lane:
                del self._lanes[address]

    def _next(self) -> None:
        """Wake the next attempts while there is room: known browsers first, then the
        address whose turn it is (it goes to the back of the line)."""
        while self._running < self.concurrency:
            if self._known:
                future = self._known.popleft()
            elif self._lanes:
                address, lane = next(iter(self._lanes.items()))
                future = lane.popleft()
                self._waiting -= 1
                del self._lanes[address]
                if lane:
                    self._lanes[address] = lane  # to the back
            else:
                return
            if not future.done():
                self._running += 1
                future.set_result(None)
