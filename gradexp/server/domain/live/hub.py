"""The live hub: one database poll per process per interval feeds every live stream.

A stream registers what it follows (one run, or one project with or without rows) and
waits on its mailbox (``mailbox.py``). One task per process, the hub, does the rest:

- **One read per interval** (``poll_interval``, and at once when this process ingested
  into a followed run: :meth:`LiveHub.notify`): the followed runs that can have news
  (running, or updated lately), then every new row of those runs in one query, from each
  run's *head* (the last sequence the hub fanned out) to its ``acked_seq``. Rows are put,
  encoded once, in the mailbox of every stream that follows the run; a changed run becomes
  one ``run`` event for its run streams and its project's streams. The database stays the
  source of truth, read by cursor, so a process sees what any other process committed.
  However often ingest wakes it, a look starts at least :data:`POLL_REST` times what the
  last one took after it (and :data:`MIN_POLL_GAP`): the hub's share of its process stays
  bounded when a project has a thousand running runs.
- A stream that is behind the head (it just opened, resumes, or the hub skipped a burst of
  more than :data:`FEED_SPAN` sequences or :data:`FANOUT_BYTES` rather than hold it in
  memory for every stream) reads the rows in
  between from the database itself, at the pace its client reads, then follows the hub's
  events again (see ``RowsEvent``). So an idle stream costs nothing but its mailbox: no
  timer, no query.
- **Shared chores**, once per interval over all streams: a stream whose client left ends;
  one whose client has not taken a write for :data:`WRITE_STALL` seconds is dropped; a
  keepalive comment is asked of those that wrote nothing for ``keepalive_interval``.
- **Credentials**: a revocation, sign-out or password change in this process ends the
  streams opened with it at once (``accounts/revocations.py``); every
  :data:`CREDENTIAL_CHECK_INTERVAL` seconds one read re-checks the keys and sessions of all
  open streams, which covers the other processes. The same re-check asks whether each
  stream's caller still reaches its project (team roles, visibility, share links), and a
  change of access in this process (``ACCESS_CHANGED``) runs it at once.
- **Who watches what**: the runs the hub follows are written to ``live_watches`` every few
  seconds (``watchers.py``), so any process can tell whether a run is watched.
- **A cap** of ``max_streams_per_user`` open streams per user in this process.

Everything runs on the server's event loop; no lock is needed. The hub task runs only
while streams are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

from gradexp.server.domain.accounts.policy import Policy
from gradexp.server.domain.accounts.revocations import (
    ACCESS_CHANGED,
    CredentialsEnded,
    Revocations,
)
from gradexp.server.domain.errors import RateLimited
from gradexp.server.domain.history import read_row_ranges
from gradexp.server.domain.live.credentials import dead_credentials
from gradexp.server.domain.live.mailbox import (
    MAX_QUEUED_BYTES,
    QUIETLY,
    RowsEvent,
    RunEvent,
    Subscriber,
    rows_events,
)
from gradexp.server.domain.live.reads import ROWS_PER_EVENT, full_runs, poll_runs, signature
from gradexp.server.domain.live.watchers import WATCH_RENEW, mark_watched
from gradexp.server.domain.runs import run_objects
from gradexp.server.storage.db import Database

log = logging.getLogger("gradexp.server.live")

CLOCK_SLACK = 5.0  # seconds of clock difference tolerated between server processes
PROGRESS_EVENT_INTERVAL = 2.0  # seconds between "run" events for a run that only progressed
FEED_SPAN = 2000  # most sequences of one run read per interval; more: streams read them
TICK_SPAN = 20_000  # most sequences read per interval, all runs together
FANOUT_BYTES = MAX_QUEUED_BYTES // 4  # most encoded rows of one run fanned out per interval
CREDENTIAL_CHECK_INTERVAL = 2.0  # seconds between re-checks of every stream's credential
WRITE_STALL = 60.0  # a client that takes no byte of a write for this long is dropped
MIN_POLL_GAP = 0.02  # seconds between two polls, however often ingest wakes the hub
POLL_REST = 5.0  # ... and at least this many times what the last look took, from its start
RETRY_AFTER = 10  # seconds a client refused by the cap is told to wait
FAILURE_LOG_INTERVAL = 60.0  # at most one log line a minute while the database fails


class _Feed:
    """One run whose rows the hub fans out: the last sequence fanned out (None: not started)
    and the last signature its run streams were told."""

    __slots__ = ("head", "signature")

    def __init__(self) -> None:
        self.head: int | None = None
        self.signature: tuple[Any, ...] | None = None


class _ProjectWatch:
    """One project that streams follow: its subscribers, and what they were last told of
    each of its runs (shared: every stream of the project gets the same ``run`` events)."""

    __slots__ = ("progress", "row_subscribers", "seeded", "signatures", "subscribers")

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.row_subscribers = 0
        self.seeded = False  # its first stream has taken its first look (seed_project)
        self.signatures: dict[int, tuple[Any, ...]] = {}
        self.progress: dict[int, tuple[float, int]] = {}  # run pk -> (when told, last_step)


class LiveHub:
    """The process's live fan-out (``AppState.live``); see the module docstring."""

    def __init__(
        self,
        db: Database,
        *,
        poll_interval: float,
        keepalive_interval: float,
        crash_after: float,
        max_streams_per_user: int,
        policy: Policy,
        revocations: Revocations,
    ) -> None:
        self._db = db
        self._interval = poll_interval
        self._keepalive = keepalive_interval
        self._crash_after = crash_after
        self.max_streams_per_user = max_streams_per_user
        self._policy = policy
        self._subscribers: set[Subscriber] = set()
        self._per_user: Counter[int] = Counter()
        self._runs: dict[int, set[Subscriber]] = {}  # run pk -> its run streams
        self._projects: dict[int, _ProjectWatch] = {}
        self._feeds: dict[int, _Feed] = {}  # run pk -> the runs whose rows are fanned out
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._last_poll = 0.0
        self._last_check = 0.0
        self._published: set[int] = set()
        self._last_publish = 0.0
        self._last_failure_log = -FAILURE_LOG_INTERVAL
        self.closed = False
        revocations.listen(self._credentials_ended)

    # --- what the HTTP layer calls ---------------------------------------------------------

    @property
    def open_streams(self) -> int:
        """Streams open in this process now (``GET /healthz`` reports it)."""
        return len(self._subscribers)

    def streams_of(self, user_id: int) -> int:
        """How many streams this user has open in this process."""
        return self._per_user[user_id]

    def open(self, sub: Subscriber) -> None:
        """Register a new stream (RateLimited ``too_many_streams`` past the per-user cap).

        For a run stream, call :meth:`start_at` next; for a project stream,
        :meth:`seed_project`. Events for it queue from now on."""
        if self.closed:
            sub.end(QUIETLY)
            return
        if self._per_user[sub.user_id] >= self.max_streams_per_user:
            raise RateLimited(
                f"you have {self.max_streams_per_user} live streams open already; close some "
                "pages or tabs and try again",
                code="too_many_streams",
            )
        if not self._subscribers:
            self._last_poll = time.time()  # nothing to catch up from before this stream
        self._subscribers.add(sub)
        self._per_user[sub.user_id] += 1
        if sub.run_pk is not None:
            self._runs.setdefault(sub.run_pk, set()).add(sub)
            self._feeds.setdefault(sub.run_pk, _Feed())
        elif sub.project_id is not None:
            watch = self._projects.setdefault(sub.project_id, _ProjectWatch())
            watch.subscribers.add(sub)
            watch.row_subscribers += sub.with_rows
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="live-hub")
        if len(self._subscribers) == 1:
            self._wake.set()  # the hub was idle: start polling

    def start_at(self, run_pk: int, acked_seq: int) -> int:
        """Where the hub's events for a run stream start: the run's feed head, set to
        ``acked_seq`` (what the stream just read) if the feed has not started. The stream
        catches up to the returned sequence itself; every row after it comes as events."""
        feed = self._feeds.get(run_pk)
        if feed is None:
            return acked_seq
        if feed.head is None:
            feed.head = acked_seq
        return feed.head

    def seed_project(self, project_id: int, rows: list[Any]) -> None:
        """A project stream's first look at the project's runs: the first one of a project
        tells the hub what its runs looked like, so later ``run`` events are changes."""
        watch = self._projects.get(project_id)
        if watch is None or watch.seeded:
            return
        for r in rows:
            watch.signatures.setdefault(r.pk, signature(r, self._crash_after))
            watch.progress.setdefault(r.pk, (0.0, int(r.last_step)))
        watch.seeded = True

    def close_stream(self, sub: Subscriber) -> None:
        """Forget a stream that ended."""
        if sub not in self._subscribers:
            return
        self._subscribers.discard(sub)
        self._per_user[sub.user_id] -= 1
        if self._per_user[sub.user_id] <= 0:
            del self._per_user[sub.user_id]
        if sub.run_pk is not None:
            subs = self._runs.get(sub.run_pk)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._runs[sub.run_pk]
                    self._feeds.pop(sub.run_pk, None)  # a project's feed starts again
        elif sub.project_id is not None:
            watch = self._projects.get(sub.project_id)
            if watch is not None:
                watch.subscribers.discard(sub)
                watch.row_subscribers -= sub.with_rows
                if not watch.subscribers:
                    del self._projects[sub.project_id]

    def notify(self, project_id: int, run_pk: int) -> None:
        """This process committed a change to a run: poll soon if a stream follows it."""
        if run_pk in self._runs or project_id in self._projects:
            self._wake.set()

    def follows(self, run_pk: int) -> bool:
        """Whether this process's streams follow the run's rows now (no copy, no query)."""
        return run_pk in self._feeds

    def watched_here(self) -> set[int]:
        """The runs whose rows this process's streams follow now (see ``watchers.py``)."""
        return set(self._feeds)

    async def close(self) -> None:
        """End every stream (quietly: clients reconnect elsewhere) and stop polling."""
        self.closed = True
        for sub in list(self._subscribers):
            sub.end(QUIETLY)
        for task in (self._task, self._publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # --- the hub's task ----------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self.closed:
            if not self._subscribers:
                self._wake.clear()
                await self._wake.wait()  # nobody follows anything: no timer, no query
                continue
            started = time.monotonic()
            try:
                await self._tick()
                if time.time() - self._last_check >= CREDENTIAL_CHECK_INTERVAL:
                    await self._check_credentials()
            except Exception:
                self._log_failure()
            self._chores()
            self._publish_watched()
            # However often ingest wakes it, the hub takes at most about a fifth of the
            # process's time: a look that took long (a project of a thousand running runs)
            # is followed by a longer rest.
            rest = max(MIN_POLL_GAP, POLL_REST * (time.monotonic() - started))
            if not self._wake.is_set():
                left = self._interval - (time.monotonic() - started)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(left, 0.0))
            self._wake.clear()
            gap = rest - (time.monotonic() - started)
            if gap > 0:
                await asyncio.sleep(gap)

    def _log_failure(self) -> None:
        now = time.monotonic()
        if now - self._last_failure_log >= FAILURE_LOG_INTERVAL:
            self._last_failure_log = now
            log.exception("live streams could not read the database (retrying every poll)")

    async def _tick(self) -> None:
        """One look at the database for every stream of the process."""
        poll_time = time.time()
        since = self._last_poll - CLOCK_SLACK
        ranges: list[tuple[int, int, int]] = []
        marks: dict[int, int] = {}
        run_changed: set[int] = set()
        project_changed: set[int] = set()
        budget = TICK_SPAN
        now_mono = time.monotonic()
        async with self._db.read() as conn:
            polled = await poll_runs(conn, list(self._runs), list(self._projects), since)
            for row in polled:
                pk = int(row.pk)
                sig = signature(row, self._crash_after)
                feed = self._feed_for(row)
                # A run stream's feed starts where that stream's own first read ended
                # (start_at): until then there is nothing to fan out.
                if feed is not None and (feed.head is not None or pk not in self._runs):
                    budget -= _plan_rows(feed, row, ranges, marks, budget)
                    if pk in self._runs and feed.signature != sig:
                        feed.signature = sig
                        run_changed.add(pk)
                watch = self._projects.get(int(row.project_id))
                if watch is not None and watch.seeded and _project_news(watch, row, sig, now_mono):
                    project_changed.add(pk)
            rows = await read_row_ranges(conn, ranges) if ranges else {}
            changed = [int(r.pk) for r in polled if r.pk in run_changed or r.pk in project_changed]
            full = await full_runs(conn, changed)
            objects = await run_objects(conn, full, "", self._crash_after) if full else []
        self._last_poll = poll_time
        events = {
            int(r.pk): RunEvent(
                r,
                obj,
                signature(r, self._crash_after),
                poll_time,
                changed=r.pk in run_changed,
                for_projects=r.pk in project_changed,
            )
            for r, obj in zip(full, objects, strict=True)
        }
        spans = {pk: (lo, hi) for pk, lo, hi in ranges}
        for row in polled:
            pk = int(row.pk)
            if pk in spans:
                self._fan_out_rows(row, *spans[pk], rows.get(pk, []), poll_time)
            elif pk in marks:
                self._deliver_rows(RowsEvent(_ids(row), marks[pk], marks[pk], poll_time))
            event = events.get(pk)
            if event is not None:
                self._deliver_run(event)
        self._forget_idle_feeds(polled)

    def _feed_for(self, row: Any) -> _Feed | None:
        """The feed of a polled run if any stream wants its rows (made when first needed)."""
        pk = int(row.pk)
        feed = self._feeds.get(pk)
        if feed is None:
            watch = self._projects.get(int(row.project_id))
            if watch is None or not watch.row_subscribers:
                return None
            feed = self._feeds[pk] = _Feed()
        return feed

    def _fan_out_rows(
        self, row: Any, after: int, upto: int, rows: list[dict[str, Any]], poll_time: float
    ) -> None:
        """A run's rows in ``(after, upto]`` as events (an empty range too: streams then move
        their position to ``upto``). Past FANOUT_BYTES the rest becomes a mark: a burst is
        not held in memory for every stream, each reads it from the database instead."""
        budget = FANOUT_BYTES
        for event in rows_events(_ids(row), after, upto, rows, poll_time, ROWS_PER_EVENT):
            budget -= event.size
            if budget < 0:
                self._deliver_rows(RowsEvent(_ids(row), upto, upto, poll_time))
                return
            self._deliver_rows(event)

    def _deliver_rows(self, event: RowsEvent) -> None:
        for sub in self._runs.get(event.run_pk, ()):
            sub.put(event)
        watch = self._projects.get(event.project_id)
        if watch is not None and watch.row_subscribers:
            for sub in watch.subscribers:
                if sub.with_rows:
                    sub.put(event)

    def _deliver_run(self, event: RunEvent) -> None:
        if event.changed:
            for sub in self._runs.get(event.run_pk, ()):
                sub.put(event)
        if event.for_projects:
            watch = self._projects.get(event.project_id)
            if watch is not None:
                for sub in watch.subscribers:
                    sub.put(event)

    def _forget_idle_feeds(self, polled: list[Any]) -> None:
        """Drop the feeds that only project streams used, of runs no longer running (a run
        that is resumed gets a new feed from its new attempt)."""
        running = {int(r.pk) for r in polled if r.state == "running"}
        for pk in [pk for pk in self._feeds if pk not in self._runs and pk not in running]:
            del self._feeds[pk]

    # --- chores over all streams ---------------------------------------------------------------

    def _chores(self) -> None:
        """Clients that left, writes that stalled, keepalives due: one pass, no timers."""
        now = time.monotonic()
        for sub in self._subscribers:
            if sub.ended is not None:
                continue
            if sub.gone():
                sub.end(QUIETLY)
            elif sub.writing_since is not None:
                if now - sub.writing_since > WRITE_STALL:
                    sub.end(QUIETLY)
                    sub.abort()  # its pending write fails, and its task ends
            elif now - sub.last_write >= self._keepalive and not sub.keepalive_due:
                sub.ask_keepalive()

    async def _check_credentials(self) -> None:
        self._last_check = time.time()
        if not any(
            s.key_id is not None or s.session_id is not None or s.reach_project_id is not None
            for s in self._subscribers
        ):
            return
        async with self._db.read() as conn:
            dead = await dead_credentials(conn, list(self._subscribers), self._policy)
        for sub, reason in dead:
            sub.end(reason)

    def _credentials_ended(self, ended: CredentialsEnded) -> None:
        """A key, a session or a user's sessions died in this process: end their streams.
        Access changed: re-check every stream's reach on the hub's next turn, now."""
        if ended.reason == ACCESS_CHANGED:
            self._last_check = 0.0
            self._wake.set()
            return
        for sub in self._subscribers:
            if (
                (sub.key_id is not None and sub.key_id in ended.key_ids)
                or (sub.session_id is not None and sub.session_id in ended.session_ids)
                or (
                    ended.user_id is not None
                    and sub.session_id is not None
                    and sub.user_id == ended.user_id
                )
            ):
                sub.end(ended.reason)

    def _publish_watched(self) -> None:
        """Renew this process's rows in ``live_watches``: at once for a run it starts to
        follow, else every WATCH_RENEW seconds (in the background: a slow write never
        delays the streams)."""
        watched = set(self._feeds)
        if not watched or (self._publisher is not None and not self._publisher.done()):
            return
        now = time.monotonic()
        if watched <= self._published and now - self._last_publish < WATCH_RENEW:
            return
        self._published = watched
        self._last_publish = now
        self._publisher = asyncio.get_running_loop().create_task(self._publish(watched))

    async def _publish(self, watched: set[int]) -> None:
        try:
            await mark_watched(self._db, watched)
        except Exception:
            self._published = set()  # try again next time
            self._log_failure()


def _ids(row: Any) -> tuple[str, int, int, int]:
    return str(row.id), int(row.pk), int(row.project_id), int(row.attempt_seq)


def _plan_rows(
    feed: _Feed,
    row: Any,
    ranges: list[tuple[int, int, int]],
    marks: dict[int, int],
    budget: int,
) -> int:
    """Decide what of a run is read this interval; returns the sequences it takes.

    A feed that has not started begins at the current attempt (a run new to a project
    stream is sent from there). A span too big to hold in memory for every stream becomes
    a mark: each stream then reads it from the database at its client's pace."""
    acked = int(row.acked_seq)
    head = int(row.attempt_seq) if feed.head is None else feed.head
    if acked <= head:
        feed.head = head
        return 0
    feed.head = acked
    span = acked - head
    if span <= FEED_SPAN and span <= budget:
        ranges.append((int(row.pk), head, acked))
        return span
    marks[int(row.pk)] = acked
    return 0


def _project_news(watch: _ProjectWatch, row: Any, sig: tuple[Any, ...], now: float) -> bool:
    """Whether a project's streams hear of this run now: it is new to them, it changed, or
    it progressed and was last told more than PROGRESS_EVENT_INTERVAL ago."""
    pk = int(row.pk)
    old = watch.signatures.get(pk)
    watch.signatures[pk] = sig
    last_told, last_step = watch.progress.get(pk, (0.0, int(row.last_step)))
    if old != sig or (row.last_step != last_step and now - last_told >= PROGRESS_EVENT_INTERVAL):
        watch.progress[pk] = (now, int(row.last_step))
        return True
    watch.progress.setdefault(pk, (0.0, int(row.last_step)))
    return False
