"""Wrong-password limits, counted before the password is checked.

A sign-in attempt first **reserves** itself on its counters, in one write transaction, and
only then is its password hashed (slow, on purpose). The reservation is a conditional
``UPDATE`` that adds one to a counter only while it is not locked (and an ``INSERT`` that
skips an existing row, for the first failure): the database's row lock makes the check and
the count one step, so neither parallel guesses nor several server processes on one
database can outrun a limit. The attempt that reaches a limit takes the lockout up front
and holds it while its password is checked: every other attempt on that counter is refused
meanwhile. After the check the attempt is **settled**: a wrong password stays counted (and
keeps the lockout it took); a right one gives its count back and lifts the lockout it took,
and restarts its (user, address) or (user, known browser) counter; an attempt that never
reached the hasher (the server was too busy) gives its count back. A server that dies in
between leaves the attempt counted as a failure: the safe side.

The counters, rows of ``login_failures`` keyed by a hash:

- per (user, client address): ``Policy.max_failures`` (5) within ``failure_window``;
- per user, from any address: ``Policy.max_user_failures`` (20), so that many addresses
  cannot guess without end; when it is locked, nobody signs in as that user from a new
  browser until the lockout ends...
- ...but a browser that has signed in as that user before (the "known browser" cookie,
  ``devices.py``) counts on its own (user, browser) counter instead of the two above, so a
  lockout caused by others never keeps the user out of their own browser.

Names that do not exist get no row (a flood of made-up names must not grow the table):
:class:`UnknownNames` counts them per (name, address) in this process's memory, with the
same limits, so that they lock like real ones do and a lockout tells nothing about whether
a name exists (as long as one process answers; with several, each counts on its own).

A lockout lasts ``lockout_base`` seconds, doubling with each further failure up to
``lockout_max``; counts older than ``failure_window`` are forgotten (:func:`prune`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import case, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from gradexp.server.domain.accounts.policy import Policy
from gradexp.server.domain.errors import RateLimited
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, insert_ignore, is_deadlock

# What a settled attempt was.
RIGHT, WRONG, NOT_TRIED = "right", "wrong", "not tried"
UNKNOWN_NAMES_MAX = 10_000  # (name, address) pairs of unknown names kept in memory
DEADLOCK_RETRIES = 5

log = logging.getLogger("gradexp.server")


def address_key(ip: str) -> str:
    """The client address as limits count it: an IPv6 address by its /64 (one household or
    server holds a whole /64), an IPv4-mapped one as IPv4, anything unparsable as is."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{addr}/64", strict=False))
    return str(addr)


def lock_seconds(failures: int, limit: int, policy: Policy) -> float:
    """How long a counter at ``failures`` (at or past its ``limit``) stays locked."""
    return float(min(policy.lockout_base * 2 ** min(failures - limit, 30), policy.lockout_max))


def _duration(seconds: float) -> str:
    whole = max(1, round(seconds))
    if whole < 90:
        return f"{whole} second{'s' if whole != 1 else ''}"
    return f"{round(whole / 60)} minutes"


def locked_error(wait: float) -> RateLimited:
    """The refusal of an attempt on a locked counter (its password is not checked)."""
    return RateLimited(
        f"Too many wrong passwords. Try again in {_duration(wait)}.",
        code="locked",
        retry_after=max(1, round(wait)),
    )


def wrong_and_locked_error(wait: float) -> RateLimited:
    """The answer to a wrong password that reached a limit."""
    return RateLimited(
        f"Wrong user name or password. Too many tries: wait {_duration(wait)}.",
        code="locked",
        retry_after=max(1, round(wait)),
    )


@dataclass(frozen=True)
class Counter:
    """One wrong-password counter: its row's key, its limit, and whether a right password
    starts it afresh (the user's own counter only gives back the attempt)."""

    key: str
    limit: int
    restarts: bool


def _key(*parts: object) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()


def counters_for(user_id: int, address: str, device: str | None, policy: Policy) -> list[Counter]:
    """The counters of an attempt to sign in as ``user_id`` from ``address``; ``device``:
    the id of this user's known browser the attempt came from, if any."""
    if device is not None:
        return [Counter(_key("device", user_id, device), policy.max_failures, True)]
    return [
        Counter(_key("pair", user_id, address), policy.max_failures, True),
        Counter(_key("user", user_id), policy.max_user_failures, False),
    ]


@dataclass(frozen=True)
class Taken:
    """One counter as a reservation left it: the attempt's number on it, and the lockout
    (an absolute time) the attempt took if it reached the limit."""

    counter: Counter
    number: int
    locked_until: float | None


@dataclass(frozen=True)
class Reservation:
    """An attempt, counted on its counters before its password is checked."""

    taken: tuple[Taken, ...]

    @property
    def locked_for(self) -> float:
        """Seconds of lockout this attempt took (0: none): what a wrong password costs."""
        ends = [t.locked_until for t in self.taken if t.locked_until is not None]
        return max(0.0, max(ends) - time.time()) if ends else 0.0


class Lockouts:
    """The counters in the database (see the module's docstring)."""

    def __init__(self, db: Database, policy: Policy) -> None:
        self.db = db
        self.policy = policy
        self._pruned_at = 0.0

    async def reserve(self, counters: list[Counter]) -> Reservation:
        """Count an attempt on every counter, or on none: RateLimited ``locked`` (with
        ``retry_after``) when one of them is locked."""
        t = s.login_failures
        policy = self.policy
        kind = self.db.kind

        def take(conn: Connection, counter: Counter, now: float) -> int | None:
            stale = t.c.first_failed_at < now - policy.failure_window
            bump = (
                update(t)
                .where(t.c.key_hash == counter.key, t.c.locked_until <= now)
                # MySQL assigns left to right, each seeing the ones before: `failures`
                # must be set while `first_failed_at` is still the old value.
                .ordered_values(
                    (t.c.failures, case((stale, 1), else_=t.c.failures + 1)),
                    (t.c.first_failed_at, case((stale, now), else_=t.c.first_failed_at)),
                )
            )
            for _ in range(2):
                if conn.execute(bump).rowcount == 1:
                    number = conn.execute(
                        select(t.c.failures).where(t.c.key_hash == counter.key)
                    ).scalar_one()
                    return int(number)
                first = insert_ignore(kind, t).values(
                    key_hash=counter.key, failures=1, first_failed_at=now, locked_until=0.0
                )
                if conn.execute(first).rowcount == 1:
                    return 1
                # Another attempt made the row between the two statements: bump it now.
            return None

        def write(conn: Connection) -> tuple[Taken, ...]:
            now = time.time()
            taken = []
            for counter in counters:
                number = take(conn, counter, now)
                if number is None:
                    until = conn.execute(
                        select(t.c.locked_until).where(t.c.key_hash == counter.key)
                    ).scalar()
                    # Raising rolls back what this attempt counted on the other counters.
                    raise locked_error(float(until or now) - now)
                until = None
                if number >= counter.limit:  # take the lockout now, for the hash's duration
                    until = now + lock_seconds(number, counter.limit, policy)
                    conn.execute(
                        update(t).where(t.c.key_hash == counter.key).values(locked_until=until)
                    )
                taken.append(Taken(counter, number, until))
            return tuple(taken)

        await self._prune_now_and_then()
        tries = 1
        while True:
            taken = await self._write_retrying_deadlocks(write, tries)
            if taken is not None:
                return Reservation(taken)
            tries += 1

    async def _write_retrying_deadlocks(
        self, write: Callable[[Connection], tuple[Taken, ...]], tries: int
    ) -> tuple[Taken, ...] | None:
        """The reservation's transaction; None when it lost a deadlock and may run again.

        Two first failures for one user can deadlock on MySQL (both wait to insert its row,
        then both want to update it); the database picks one to fail, which runs again.
        """
        try:
            return await self.db.write(write)
        except DBAPIError as exc:
            if is_deadlock(exc) and tries < DEADLOCK_RETRIES:
                return None
            raise

    async def settle(self, reservation: Reservation, outcome: str) -> None:
        """After the check: ``WRONG`` stays counted (and locked, if it took a lockout);
        ``RIGHT`` and ``NOT_TRIED`` give the attempt back (``RIGHT`` restarts the counters
        that restart on success)."""
        if outcome == WRONG or not reservation.taken:
            return
        t = s.login_failures

        def write(conn: Connection) -> None:
            for taken in reservation.taken:
                key = t.c.key_hash == taken.counter.key
                if outcome == RIGHT and taken.counter.restarts:
                    conn.execute(delete(t).where(key))
                    continue
                conn.execute(
                    update(t)
                    .where(key)
                    .values(failures=case((t.c.failures > 0, t.c.failures - 1), else_=0))
                )
                if taken.locked_until is not None:  # lift the lockout this attempt took
                    conn.execute(
                        update(t)
                        .where(key, t.c.locked_until == taken.locked_until)
                        .values(locked_until=0.0)
                    )

        await self.db.write_retrying(write)

    async def _prune_now_and_then(self) -> None:
        """Housekeeping on a sign-in's way: it never fails the sign-in. A prune that loses
        a deadlock to the sign-ins counting failures (MySQL locks the gaps it deletes from)
        is run again, and if it keeps losing, left to the next minute."""
        now = time.time()
        if now - self._pruned_at >= 60.0:
            self._pruned_at = now
            try:
                await prune(self.db, self.policy)
            except DBAPIError as exc:
                if not is_deadlock(exc):
                    raise
                log.info("pruning old sign-in failures lost a deadlock; next try in a minute")


async def prune(db: Database, policy: Policy) -> None:
    """Forget counters that are past their window and not locked (the table stays the size
    of the last quarter hour's failures)."""
    t = s.login_failures
    now = time.time()

    def write(conn: Connection) -> None:
        conn.execute(
            delete(t).where(
                t.c.first_failed_at < now - policy.failure_window, t.c.locked_until < now
            )
        )

    await db.write_retrying(write)


class UnknownNames:
    """Wrong passwords for names that do not exist, per (name, address), in this process's
    memory (at most :data:`UNKNOWN_NAMES_MAX` pairs, the oldest forgotten first): the same
    limits as a real user's (user, address) counter, and no row in the database."""

    def __init__(self, policy: Policy, capacity: int = UNKNOWN_NAMES_MAX) -> None:
        self.policy = policy
        self.capacity = capacity
        # key -> [failures, first_failed_at, locked_until]
        self._counts: OrderedDict[tuple[str, str], list[float]] = OrderedDict()

    def reserve(self, name: str, address: str) -> Reservation:
        """Count an attempt (RateLimited ``locked`` while the pair is locked)."""
        policy, now = self.policy, time.time()
        key = (name.lower(), address)
        entry = self._counts.pop(key, None)
        if entry is not None and entry[2] > now:
            self._counts[key] = entry
            raise locked_error(entry[2] - now)
        if entry is None or entry[1] < now - policy.failure_window:
            entry = [0.0, now, 0.0]
        entry[0] += 1
        until = None
        if entry[0] >= policy.max_failures:
            until = now + lock_seconds(int(entry[0]), policy.max_failures, policy)
            entry[2] = until
        self._counts[key] = entry
        while len(self._counts) > self.capacity:
            self._counts.popitem(last=False)
        counter = Counter(_key("unknown", *key), policy.max_failures, True)
        return Reservation((Taken(counter, int(entry[0]), until),))

    def settle(self, name: str, address: str, reservation: Reservation, outcome: str) -> None:
        """Give back an attempt that never reached the hasher (an unknown name is never
        right)."""
        entry = self._counts.get((name.lower(), address))
        if outcome != NOT_TRIED or entry is None:
            return
        entry[0] = max(0.0, entry[0] - 1)
        if reservation.taken and entry[2] == reservation.taken[0].locked_until:
            entry[2] = 0.0
