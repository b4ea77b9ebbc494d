"""What a live stream receives from the hub, and the bounded mailbox it receives it in.

The hub (``hub.py``) reads each run's new rows once per interval and puts the same
:class:`RowsEvent` (rows and their JSON, encoded once) in the mailbox of every stream that
follows the run; a stream's own task takes them out and writes them to its client. A
mailbox holds at most :data:`MAX_QUEUED_BYTES`: a client that reads slower than its run
logs is ended (:data:`TOO_SLOW`) rather than let memory grow, and resumes where it stopped
(the reason's event carries its position as the event id).

Everything here runs on the server's event loop; nothing needs a lock.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

#: The most a stream's mailbox holds (the encoded size of its waiting events).
MAX_QUEUED_BYTES = 4 * 1024 * 1024
MAX_QUEUED_EVENTS = 2000
#: About the most one ``rows`` event of the hub holds (one row may be bigger).
EVENT_BYTES = 256 * 1024

#: A stream whose client read too slowly: it ends, and the client resumes from its id.
TOO_SLOW = "too_slow"
#: A stream that ends without a last event (its client left, or the server stops).
QUIETLY = ""


class RowsEvent:
    """Rows of one run with ``after < _seq <= upto``, in sequence order, for every stream
    that follows the run: the ``rows`` event's data, encoded once (``payload``), and the
    rows' sequence numbers.

    It holds every history row in that range, except when ``after == upto`` (a *mark*):
    then it holds none and says only that the run's rows up to ``upto`` are committed. A
    stream whose position is below ``after`` reads the rows in between from the database
    itself (it joined late, or the hub did not hold a burst in memory).
    """

    __slots__ = (
        "after",
        "attempt_seq",
        "offsets",
        "payload",
        "poll_time",
        "project_id",
        "run_id",
        "run_pk",
        "seqs",
        "size",
        "upto",
    )

    def __init__(
        self,
        ids: tuple[str, int, int, int],
        after: int,
        upto: int,
        poll_time: float,
        payload: bytes = b"",
        seqs: list[int] | None = None,
        offsets: list[int] | None = None,
    ) -> None:
        self.run_id, self.run_pk, self.project_id, self.attempt_seq = ids
        self.after = after
        self.upto = upto
        self.poll_time = poll_time
        self.payload = payload
        self.seqs = seqs or []
        self.offsets = offsets or []  # where each row starts in the payload
        self.size = len(payload) + 64

    def data_after(self, position: int) -> bytes | None:
        """The ``rows`` event's data for a stream that already has every row up to
        ``position`` (None: nothing new for it)."""
        if not self.seqs or self.seqs[-1] <= position:
            return None
        if self.seqs[0] > position:
            return self.payload
        first = bisect.bisect_right(self.seqs, position)
        return self.payload[: self.offsets[0]] + self.payload[self.offsets[first] :]


def rows_events(
    ids: tuple[str, int, int, int],
    after: int,
    upto: int,
    rows: list[dict[str, Any]],
    poll_time: float,
    max_rows: int,
) -> list[RowsEvent]:
    """A run's rows in ``(after, upto]`` as consecutive events of at most ``max_rows`` rows
    and about :data:`EVENT_BYTES` each (one event, with no rows, when there are none)."""
    if not rows:
        return [RowsEvent(ids, after, upto, poll_time)]
    head = orjson.dumps({"run_id": ids[0], "rows": []})[:-2]  # '{"run_id":..,"rows":['
    events: list[RowsEvent] = []
    pieces: list[bytes] = []
    seqs: list[int] = []
    size = 0

    def flush(end: int) -> None:
        nonlocal after, size
        offsets, at = [], len(head)
        for piece in pieces:
            offsets.append(at)
            at += len(piece) + 1
        payload = head + b",".join(pieces) + b"]}"
        events.append(RowsEvent(ids, after, end, poll_time, payload, seqs.copy(), offsets))
        after, size = end, 0
        pieces.clear()
        seqs.clear()

    for row in rows:
        piece = orjson.dumps(row)
        if pieces and (len(pieces) >= max_rows or size + len(piece) > EVENT_BYTES):
            flush(seqs[-1])
        pieces.append(piece)
        seqs.append(int(row["_seq"]))
        size += len(piece) + 1
    flush(upto)
    return events


def rows_payload(run_id: str, rows: list[dict[str, Any]]) -> bytes:
    """The data of a ``rows`` event."""
    return orjson.dumps({"run_id": run_id, "rows": rows})


class RunEvent:
    """A run that changed (its state, name, tags...) or progressed, as the run object.

    ``changed`` says whether what a run page shows changed (run streams get only those);
    project streams also get progress. The object's ``url`` is filled in per stream
    (:meth:`data`), since it depends on the address the client used.
    """

    __slots__ = (
        "_encoded",
        "acked_seq",
        "attempt_seq",
        "changed",
        "for_projects",
        "obj",
        "poll_time",
        "project_id",
        "run_id",
        "run_pk",
        "signature",
        "size",
        "state",
    )

    def __init__(
        self,
        row: Any,
        obj: dict[str, Any],
        signature: tuple[Any, ...],
        poll_time: float,
        *,
        changed: bool,
        for_projects: bool,
    ) -> None:
        self.run_id: str = row.id
        self.run_pk = int(row.pk)
        self.project_id = int(row.project_id)
        self.attempt_seq = int(row.attempt_seq)
        self.acked_seq = int(row.acked_seq)
        self.state: str = signature[0]
        self.signature = signature
        self.obj = obj
        self.poll_time = poll_time
        self.changed = changed
        self.for_projects = for_projects
        self._encoded: dict[str, bytes] = {}
        self.size = len(self.data("")) + 64

    def data(self, base_url: str) -> bytes:
        """The ``run`` event's data for clients of ``base_url`` (encoded once per address)."""
        encoded = self._encoded.get(base_url)
        if encoded is None:
            encoded = orjson.dumps({**self.obj, "url": f"{base_url}/r/{self.run_id}"})
            self._encoded[base_url] = encoded
        return encoded


Event = RowsEvent | RunEvent


class Subscriber:
    """One open live stream as the hub sees it: what it follows, who opened it with which
    credential, and its mailbox.

    The hub puts events in (:meth:`put`), asks for a keepalive, or ends the stream
    (:meth:`end`); the stream's task takes them out (:meth:`take`) and says when it writes
    (:meth:`writing`, :meth:`wrote`), which is how the hub finds a client that stopped
    reading. ``gone`` and ``abort`` come from the HTTP layer: whether the client has
    disconnected, and how to drop its connection.
    """

    def __init__(
        self,
        *,
        user_id: int,
        key_id: int | None,
        session_id: int | None,
        gone: Callable[[], bool],
        abort: Callable[[], None],
        run_pk: int | None = None,
        project_id: int | None = None,
        with_rows: bool = True,
        reach_project_id: int | None = None,
    ) -> None:
        self.user_id = user_id
        # The project whose access the hub re-checks for this stream (a team's project,
        # one shared with signed-in users, or a share link's): None when the caller owns
        # it, which nothing can take away.
        self.reach_project_id = reach_project_id
        self.key_id = key_id
        self.session_id = session_id
        self.opened_at = time.time()
        # When the session would expire if unused, as the last re-check saw it (None: not
        # checked yet): a session that then vanishes past it expired, not signed out.
        self.session_deadline: float | None = None
        self.run_pk = run_pk
        self.project_id = project_id
        self.with_rows = with_rows
        self.gone = gone
        self.abort = abort
        self.ended: str | None = None  # why the stream must end (QUIETLY: no last event)
        self.keepalive_due = False
        self.last_write = time.monotonic()
        self.writing_since: float | None = None
        self._queue: deque[Event] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()

    @property
    def queued_bytes(self) -> int:
        """The encoded size of the events waiting in the mailbox."""
        return self._queued_bytes

    def put(self, event: Event) -> None:
        """Queue an event; a full mailbox ends the stream as too slow instead."""
        if self.ended is not None:
            return
        if (
            self._queued_bytes + event.size > MAX_QUEUED_BYTES
            or len(self._queue) >= MAX_QUEUED_EVENTS
        ):
            self.end(TOO_SLOW)
            return
        self._queue.append(event)
        self._queued_bytes += event.size
        self._wake.set()

    def ask_keepalive(self) -> None:
        """Ask the stream to write a keepalive comment."""
        self.keepalive_due = True
        self._wake.set()

    def end(self, reason: str) -> None:
        """End the stream (the first reason wins); what was queued is dropped."""
        if self.ended is None:
            self.ended = reason
        self._queue.clear()
        self._queued_bytes = 0
        self._wake.set()

    async def take(self) -> list[Event]:
        """Every queued event, in order, once there is one (or the stream ends, or a
        keepalive is due: then the list may be empty). An idle stream waits here at no
        cost: no timer, no poll."""
        while not self._queue and self.ended is None and not self.keepalive_due:
            self._wake.clear()
            await self._wake.wait()
        events = list(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        return events

    def writing(self) -> None:
        """The stream starts a write to its client."""
        self.writing_since = time.monotonic()

    def wrote(self) -> None:
        """The write is done (or failed)."""
        self.writing_since = None
        self.last_write = time.monotonic()
        self.keepalive_due = False
