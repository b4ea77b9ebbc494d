"""Live updates: Server-Sent Events per run and per project.

Each stream registers with the process's hub (``domain/live/hub.py``), which reads the
database once per interval for every stream of the process and puts what is new in each
stream's mailbox; a stream's task here turns that into SSE and writes it. A stream that is
behind the hub (it just opened, resumes with ``Last-Event-ID``, or the hub skipped a burst)
reads the rows in between from the database itself, by its own cursor, at its client's
pace. The database is the source of truth throughout, so any process serves any run,
whichever process ingested it.

A stream ends with ``event: end`` and ``{"reason": ...}`` when the credential it was opened
with dies (``key_revoked``, ``signed_out``, ``password_changed``, ``session_expired``) or
when its client reads too slowly (``too_slow``: the event's id resumes it). A user may have
``max_streams_per_user`` streams open per process; past that, 429 with ``Retry-After``.
"""

from __future__ import annotations

import base64
import itertools
import logging
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain.access import Role
from gradexp.server.domain.errors import RateLimited
from gradexp.server.domain.history import read_rows, read_rows_of_runs
from gradexp.server.domain.live.cursor_store import TOKEN_PREFIX, CursorStore
from gradexp.server.domain.live.hub import CLOCK_SLACK, RETRY_AFTER
from gradexp.server.domain.live.mailbox import RowsEvent, Subscriber, rows_payload
from gradexp.server.domain.live.reads import ROWS_PER_EVENT, signature
from gradexp.server.domain.runs import (
    effective_state,
    find_run_role,
    project_runs,
    run_by_pk,
    run_objects,
)
from gradexp.server.http.errors import HttpError, error_response
from gradexp.server.http.params import parse_int, project_id_role
from gradexp.server.http.sessions import USER, current_session
from gradexp.server.http.state import app_state, public_url

log = logging.getLogger("gradexp.server.live")

routes = web.RouteTableDef()


@routes.get(API_PREFIX + "/runs/{run_id}/events")
async def run_events(request: web.Request) -> web.StreamResponse:
    """New rows and state changes of one run; resumable with ``Last-Event-ID``."""
    state = app_state(request)
    raw = request.headers.get("Last-Event-ID") or request.query.get("after_seq") or "0"
    after = parse_int(raw, "Last-Event-ID / after_seq")
    if after < 0:
        raise HttpError(400, "bad_request", "Last-Event-ID / after_seq must be >= 0")
    async with state.db.read() as conn:
        run, role = await find_run_role(conn, request[USER], request.match_info["run_id"])
    sub = await _subscriber(request, _reach(run.project_id, role), run_pk=int(run.pk))
    return await _serve(request, sub, lambda out: _stream_run(request, out, run, after))


@routes.get(API_PREFIX + "/projects/{owner}/{project}/events")
async def project_events(request: web.Request) -> web.StreamResponse:
    """Run changes and new rows of every run in a project; resumable with ``Last-Event-ID``.

    ``?rows=0`` sends run events only (a runs table has no use for history rows)."""
    async with app_state(request).db.read() as conn:
        pid, role = await project_id_role(request, conn)
    token = request.headers.get("Last-Event-ID") or request.query.get("cursor")
    rows = request.query.get("rows", "1")
    if rows not in ("0", "1"):
        raise HttpError(400, "bad_request", "rows must be 0 (run events only) or 1 (the default)")
    sub = await _subscriber(request, _reach(pid, role), project_id=pid, with_rows=rows == "1")
    return await _serve(
        request, sub, lambda out: _stream_project(request, out, pid, token, rows == "1")
    )


def sse_event(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message (data is JSON on a single line)."""
    return sse_message(event, orjson.dumps(data), event_id)


def sse_message(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One SSE message whose data is already encoded JSON."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return head.encode() + b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def open_stream(request: web.Request) -> web.StreamResponse:
    """Start an SSE response."""
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    await resp.prepare(request)
    await resp.write(b"retry: 2000\n\n")
    return resp


def encode_cursor(made_at: float, positions: dict[int, int]) -> str:
    """A project stream cursor (its time, and run pk -> last sequence sent) as an opaque,
    URL-safe token, small enough for a ``Last-Event-ID`` header with thousands of runs.

    ``z`` + base64url(zlib(time, count, pk gaps, sequences)), fixed-width little-endian
    integers sorted by pk: zlib removes the zero bytes. A thousand running runs take ~3 KB
    (their ids in JSON took ~35 KB, past the 8 KB a header may hold here and in proxies:
    a big project's stream could not be resumed).
    """
    pks = np.fromiter(sorted(positions), dtype=np.uint64, count=len(positions))
    seqs = np.fromiter((positions[int(k)] for k in pks), dtype=np.uint64, count=len(pks))
    gaps = np.diff(pks, prepend=np.uint64(0))
    raw = struct.pack("<dI", made_at, len(pks)) + gaps.tobytes() + seqs.tobytes()
    return "z" + base64.urlsafe_b64encode(zlib.compress(raw, 1)).decode().rstrip("=")


def encode_delta(made_at: float, positions: dict[int, int]) -> str:
    """The runs that moved since a whole cursor (at most ``DELTA_MAX``): ``j`` and the
    base64url of JSON ``[time, pk, seq, pk, seq, ...]``. Written with nearly every event,
    so no packing (packed as a whole cursor is, it cost ~15x as much: ~50 ms of a poll with
    a thousand runs' rows)."""
    doc = orjson.dumps([made_at, *itertools.chain.from_iterable(positions.items())])
    return "j" + base64.urlsafe_b64encode(doc).decode().rstrip("=")


#: At most this many runs in a cursor (a hostile token cannot make a bigger one).
CURSOR_MAX_RUNS = 1_000_000


#: A project stream's event ids: a whole cursor at most every DELTA_MAX events, and in
#: between that cursor plus the runs that moved since (``<cursor>.<delta>``). A whole
#: cursor names every running run of the project: written with every event, a thousand
#: running runs cost a thousand times their cursor per poll (30 MB), which is what made
#: a big project's stream the busiest thing on its server.
DELTA_MAX = 32


class _Moves(dict[str, int]):
    """A project stream's positions (run id -> last sequence sent), remembering which runs
    moved since ``moved`` was last cleared."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.moved: set[str] = set()

    def __setitem__(self, key: str, value: int) -> None:
        super().__setitem__(key, value)
        self.moved.add(key)

    def setdefault(self, key: str, value: int) -> int:
        if key not in self:
            self[key] = value
        return int(self[key])


class _Joins(set[str]):
    """The runs a project stream's cursors name, remembering which joined lately."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.joined: set[str] = set()

    def add(self, item: str) -> None:
        if item not in self:
            super().add(item)
            self.joined.add(item)


def decode_cursor(token: str) -> dict[str, Any] | None:
    """The cursor behind a token (a whole cursor, or one and the moves since): ``{"t":
    time, "p": {run pk: sequence}, "r": {run id: sequence}}`` (``r``: tokens of earlier
    versions, which named runs by id), or None if it is not one of ours."""
    whole, _, delta = token.partition(".")
    doc = _decode_one(whole)
    if doc is None or not delta:
        return doc
    moves = _decode_one(delta)
    if moves is None:
        return None
    return {"t": moves["t"], "p": {**doc["p"], **moves["p"]}, "r": {**doc["r"], **moves["r"]}}


def _decode_one(token: str) -> dict[str, Any] | None:
    if token.startswith("j"):
        return _decode_delta(token)
    try:
        if token.startswith("z"):
            return _decode_packed(
                base64.urlsafe_b64decode(token[1:] + "=" * (-(len(token) - 1) % 4))
            )
        doc = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError, zlib.error, struct.error):
        return None
    if (
        type(doc) is not dict
        or type(doc.get("t")) not in (int, float)
        or type(doc.get("r")) is not dict
        or not all(type(v) is int and 0 <= v < 2**63 for v in doc["r"].values())
        or abs(doc["t"]) > 1e12
    ):
        return None
    return {"t": doc["t"], "p": {}, "r": doc["r"]}


def _decode_delta(token: str) -> dict[str, Any] | None:
    if len(token) > 64 * DELTA_MAX:
        return None
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(token[1:] + "=" * (-(len(token) - 1) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if type(doc) is not list or len(doc) % 2 != 1 or type(doc[0]) not in (int, float):
        return None
    made_at, ints = doc[0], doc[1:]
    if not abs(made_at) <= 1e12 or not all(type(v) is int and 0 <= v < 2**63 for v in ints):
        return None
    return {"t": made_at, "p": dict(zip(ints[::2], ints[1::2], strict=True)), "r": {}}


def _decode_packed(raw: bytes) -> dict[str, Any] | None:
    z = zlib.decompressobj()
    data = z.decompress(raw, 12 + 16 * CURSOR_MAX_RUNS)  # bounded: a bomb stops here
    if z.unconsumed_tail or not z.eof:
        return None
    made_at, n = struct.unpack_from("<dI", data)
    if len(data) != 12 + 16 * n or not abs(made_at) <= 1e12:
        return None
    gaps = np.frombuffer(data, dtype=np.uint64, count=n, offset=12)
    seqs = np.frombuffer(data, dtype=np.uint64, count=n, offset=12 + 8 * n)
    if n and (int(seqs.max()) >= 2**63 or int(gaps.max()) >= 2**63):
        return None
    pks = np.cumsum(gaps, dtype=np.uint64)
    return {"t": made_at, "p": dict(zip(pks.tolist(), seqs.tolist(), strict=True)), "r": {}}


def _stored_cursor(store: CursorStore, project_id: int, token: str) -> str | None:
    """``token`` with a kept cursor's token (``m...``, see cursor_store.py) replaced by the
    cursor; None if this process does not keep it."""
    if not token.startswith(TOKEN_PREFIX):
        return token
    base, dot, delta = token.partition(".")
    whole = store.get(project_id, base)
    return None if whole is None else whole + dot + delta


def client_gone(request: web.Request) -> bool:
    """Whether the client of a stream has disconnected (its transport is closing)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _drop(request: web.Request) -> None:
    """Drop a stalled client's connection at once (its pending write then fails)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def _reach(project_id: int, role: Role) -> int | None:
    """The project the hub re-checks the caller's access to (None: the caller's own)."""
    return None if role == Role.OWNER else int(project_id)


async def _subscriber(
    request: web.Request, reach_project_id: int | None, **follows: Any
) -> Subscriber:
    """A stream's registration: who opened it, with which key or session, and the project
    whose access the hub re-checks."""
    user = request[USER]
    session_id = None
    if user.key_id is None:  # a browser: the session cookie it came with
        session = await current_session(request)
        session_id = session.id if session is not None else None
    return Subscriber(
        user_id=user.id,
        key_id=user.key_id,
        session_id=session_id,
        gone=lambda: client_gone(request),
        abort=lambda: _drop(request),
        reach_project_id=reach_project_id,
        **follows,
    )


class StreamOut:
    """A stream's writes to its client, told to the hub (which drops a stalled client)."""

    def __init__(self, resp: web.StreamResponse, sub: Subscriber) -> None:
        self.resp = resp
        self.sub = sub

    async def write(self, data: bytes) -> None:
        self.sub.writing()
        try:
            await self.resp.write(data)
        finally:
            self.sub.wrote()

    async def end(self, event_id: str) -> None:
        """The last event, saying why the stream ends (nothing when it ends quietly)."""
        if self.sub.ended:
            await self.write(sse_event("end", {"reason": self.sub.ended}, event_id))


async def _serve(
    request: web.Request,
    sub: Subscriber,
    body: Callable[[StreamOut], Awaitable[None]],
    start_at: int | None = None,
) -> web.StreamResponse:
    """Register a stream with the hub, run it, and end it quietly when the client leaves.

    A client going away is the normal end of every stream (a tab closed, a page left), so
    it is logged at debug level only."""
    hub = app_state(request).live
    try:
        hub.open(sub)
    except RateLimited as exc:
        refused = error_response(429, exc.code, exc.message)
        refused.headers["Retry-After"] = str(RETRY_AFTER)
        return refused
    if start_at is not None and sub.run_pk is not None:
        hub.start_at(sub.run_pk, start_at)
    resp = web.StreamResponse()
    try:
        resp = await open_stream(request)
        await body(StreamOut(resp, sub))
    except ConnectionError:  # ConnectionResetError, BrokenPipeError, aiohttp's reset error
        pass
    finally:
        hub.close_stream(sub)
        log.debug("stream closed (%d open)", hub.open_streams)
    return resp


async def follow_run(
    request: web.Request,
    run: Any,
    role: Role,
    body: Callable[[StreamOut], Awaitable[None]],
) -> web.StreamResponse:
    """Serve a stream of one run's changes with ``body`` (another view of the run, such as
    its console lines): registered with the hub like a run stream, so the per-user cap and
    the credential re-check apply, and woken by the hub's events for that run (its
    :meth:`Subscriber.take` returns at each of them and at keepalives) instead of polling.

    ``run`` is the row whose progress wakes the stream: a run's, or one of its writers'
    (a distributed run's other ranks commit to rows of their own). Its feed is started
    here, so every batch committed to it (one with no history row too) is an event."""
    sub = await _subscriber(request, _reach(run.project_id, role), run_pk=int(run.pk))
    return await _serve(request, sub, body, start_at=int(run.acked_seq))


async def _stream_run(request: web.Request, out: StreamOut, run: Any, after_seq: int) -> None:
    """Follow one run: ``rows`` events by cursor, ``run`` events when it changes."""
    state = app_state(request)
    crash_after = state.settings.crash_after
    sub = out.sub
    base = public_url(request)
    async with state.db.read() as conn:
        row = await run_by_pk(conn, run.pk)
    head = state.live.start_at(int(run.pk), int(row.acked_seq))
    cursor = await _catch_up(request, out, run, after_seq, max(head, int(row.acked_seq)))
    last_sig = signature(row, crash_after)
    if sub.ended is None:
        async with state.db.read() as conn:
            (obj,) = await run_objects(conn, [row], base, crash_after)
        # Sent after the rows it covers, so a client sees "finished" after the last row.
        await out.write(sse_event("run", obj, str(cursor)))
    while sub.ended is None:
        for event in await sub.take():
            if sub.ended is not None:
                break
            if isinstance(event, RowsEvent):
                if event.upto <= cursor:
                    continue
                if cursor < event.after:  # rows the hub had before this stream followed it
                    cursor = await _catch_up(request, out, run, cursor, event.after)
                    if cursor < event.after:
                        break  # ended while catching up: the end event says where
                data = event.data_after(cursor)
                cursor = event.upto
                if data is not None:
                    await out.write(sse_message("rows", data, str(cursor)))
            elif event.changed and event.signature != last_sig:
                last_sig = event.signature
                await out.write(sse_message("run", event.data(base), str(cursor)))
        if sub.keepalive_due and sub.ended is None:
            await out.write(b": keepalive\n\n")
    await out.end(str(cursor))


async def _catch_up(
    request: web.Request, out: StreamOut, run: Any, cursor: int, target: int
) -> int:
    """Send a run's rows in ``(cursor, target]`` from the database, a page at a time (the
    connection is let go between pages, so a slow client holds none); the new cursor."""
    db = app_state(request).db
    while cursor < target and out.sub.ended is None:
        async with db.read() as conn:
            rows, _ = await read_rows(
                conn, run.pk, after_seq=cursor, max_seq=target, limit=ROWS_PER_EVENT
            )
        cursor = target if len(rows) < ROWS_PER_EVENT else int(rows[-1]["_seq"])
        if rows:
            await out.write(sse_message("rows", rows_payload(run.id, rows), str(cursor)))
    return cursor


async def _stream_project(
    request: web.Request, out: StreamOut, project_id: int, token: str | None, with_rows: bool
) -> None:
    """Follow every run of a project: ``run`` events and every run's new ``rows``.

    Without ``with_rows`` (``?rows=0``: the runs table, which only shows run objects) no
    history is read or sent at all, only ``run`` events.

    The cursor (the event id) holds the time it was made and, for each run that was running
    or sent rows on this stream, the last sequence sent. A run absent from a cursor had
    nothing in flight when the cursor was made; on resume it is sent from the start of its
    current attempt if that attempt began after the cursor (minus a few seconds of clock
    slack between processes), else from its current end.
    """
    state = app_state(request)
    crash_after = state.settings.crash_after
    sub = out.sub
    base = public_url(request)
    stored = _stored_cursor(state.cursors, project_id, token) if token else None
    resumed = decode_cursor(stored) if stored else None
    made_at = time.time()
    async with state.db.read() as conn:
        runs = await project_runs(conn, project_id)
    state.live.seed_project(project_id, runs)
    pks = {r.id: int(r.pk) for r in runs}  # cursors name runs by pk (see encode_cursor)
    start = dict(resumed["r"]) if resumed else {}
    if resumed and resumed["p"]:
        ids = {pk: run_id for run_id, pk in pks.items()}
        start.update((ids[pk], seq) for pk, seq in resumed["p"].items() if pk in ids)
    positions = _Moves(start)
    since = float(resumed["t"]) - CLOCK_SLACK if resumed else None
    in_cursor = _Joins(positions)
    whole: str | None = None  # the last whole cursor written (see DELTA_MAX)

    def packed(names: set[str]) -> dict[int, int]:
        return {pks[k]: positions[k] for k in names if k in positions and k in pks}

    def cursor() -> str:
        nonlocal whole
        moved = positions.moved | in_cursor.joined
        if whole is None or len(moved) >= DELTA_MAX:
            positions.moved.clear()
            in_cursor.joined.clear()
            whole = encode_cursor(made_at, packed(in_cursor))
            if len(whole) > state.settings.max_event_id:  # kept here, named by a token
                whole = state.cursors.put(project_id, whole)
            return whole
        return f"{whole}.{encode_delta(made_at, packed(moved & in_cursor))}"

    behind = []
    for r in runs:
        if r.id not in positions:
            if since is None or r.attempt_started_at < since:
                positions[r.id] = int(r.acked_seq)  # nothing of it is new to the client
            else:
                positions[r.id] = int(r.attempt_seq)  # a run (or attempt) that is new
        if effective_state(r, crash_after) == "running":
            in_cursor.add(r.id)
        if not with_rows:
            positions[r.id] = int(r.acked_seq)
        elif positions[r.id] < r.acked_seq:
            behind.append(r)
    if token and resumed is None:
        # Not a cursor this process can resume from (a big project's cursor kept by
        # another process or before a restart, or not one of ours): the stream starts
        # from now, and says so first, so the client reloads what it shows.
        await out.write(sse_event("reset", {"reason": "unknown_cursor"}, cursor()))
    # A resumed stream: what it missed, from the database.
    await _catch_up_runs(request, out, behind, positions, in_cursor, cursor)
    # The stream has taken its starting positions: anything ingested from now on will be
    # sent. (A comment, so EventSource clients ignore it; tests wait for it.)
    await out.write(b": ready\n\n")
    while sub.ended is None:
        events = await sub.take()
        # A whole interval's events arrive together: every run they show running or
        # sending rows belongs in the cursors written for any of them.
        for event in events:
            pks[event.run_id] = event.run_pk
            if isinstance(event, RowsEvent):
                if event.seqs:
                    in_cursor.add(event.run_id)
            elif event.state == "running":
                in_cursor.add(event.run_id)
        for event in events:
            if sub.ended is not None:
                break
            made_at = max(made_at, event.poll_time)  # cursors never move back in time
            if isinstance(event, RowsEvent):
                pos = positions.setdefault(event.run_id, event.attempt_seq)  # absent: new
                if event.upto <= pos:
                    continue
                if pos < event.after:
                    pos = await _catch_up_project(
                        request,
                        out,
                        (event.run_id, event.run_pk),
                        event.after,
                        positions,
                        in_cursor,
                        cursor,
                    )
                    if pos < event.after:
                        break  # ended while catching up: the end event says where
                data = event.data_after(pos)
                positions[event.run_id] = event.upto
                if data is not None:
                    await out.write(sse_message("rows", data, cursor()))
            else:
                if not with_rows:
                    positions[event.run_id] = event.acked_seq
                else:
                    positions.setdefault(event.run_id, event.attempt_seq)
                await out.write(sse_message("run", event.data(base), cursor()))
        if sub.keepalive_due and sub.ended is None:
            await out.write(b": keepalive\n\n")
    await out.end(cursor())


#: A resumed project stream reads what its runs missed this many runs at a time (one read
#: each cost a thousand behind runs a thousand reads, the stream's server a second or more
#: of work while its batches waited), and at most CATCH_UP_ROWS rows a read.
CATCH_UP_RUNS = 200
CATCH_UP_ROWS = 20_000


async def _catch_up_runs(
    request: web.Request,
    out: StreamOut,
    behind: list[Any],
    positions: dict[str, int],
    in_cursor: set[str],
    cursor: Callable[[], str],
) -> None:
    """A resumed project stream's catch-up: each run of ``behind`` (rows of the stream's
    first read) from its position to its ``acked_seq``, a few reads for many runs
    (:func:`read_rows_of_runs`); a run those reads did not cover whole goes on one read at
    a time (:func:`_catch_up_project`)."""
    db = app_state(request).db
    for i in range(0, len(behind), CATCH_UP_RUNS):
        part = behind[i : i + CATCH_UP_RUNS]
        if out.sub.ended is not None:
            return
        wants = [(int(r.pk), positions[r.id], int(r.acked_seq)) for r in part]
        async with db.read() as conn:
            got, whole = await read_rows_of_runs(conn, wants, limit=CATCH_UP_ROWS)
        for r in part:
            pk, target = int(r.pk), int(r.acked_seq)
            in_cursor.add(r.id)
            rows = got.get(pk, [])
            for j in range(0, len(rows), ROWS_PER_EVENT):
                if out.sub.ended is not None:
                    return
                page = rows[j : j + ROWS_PER_EVENT]
                last = j + ROWS_PER_EVENT >= len(rows)
                # (the last page of a run read whole takes it to its end: records other
                # than history rows, a config say, hold sequence numbers too)
                positions[r.id] = target if last and pk in whole else int(page[-1]["_seq"])
                await out.write(sse_message("rows", rows_payload(r.id, page), cursor()))
            if pk in whole:
                positions[r.id] = target
            else:
                await _catch_up_project(
                    request, out, (r.id, pk), target, positions, in_cursor, cursor
                )


async def _catch_up_project(
    request: web.Request,
    out: StreamOut,
    run: tuple[str, int],
    target: int,
    positions: dict[str, int],
    in_cursor: set[str],
    cursor: Callable[[], str],
) -> int:
    """A project stream's :func:`_catch_up` of one run (``run``: its id and pk), keeping
    ``positions`` (and so the cursors it writes) current; the run's new position."""
    db = app_state(request).db
    run_id, run_pk = run
    in_cursor.add(run_id)
    while positions[run_id] < target and out.sub.ended is None:
        async with db.read() as conn:
            rows, _ = await read_rows(
                conn, run_pk, after_seq=positions[run_id], max_seq=target, limit=ROWS_PER_EVENT
            )
        positions[run_id] = target if len(rows) < ROWS_PER_EVENT else int(rows[-1]["_seq"])
        if rows:
            await out.write(sse_message("rows", rows_payload(run_id, rows), cursor()))
    return positions[run_id]
