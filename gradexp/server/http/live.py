"""Live updates: Server-Sent Events per run and per project.

The database is the source of truth for every stream: a stream remembers a cursor (the
last sequence number it sent, per run) and reads ``seq > cursor AND seq <= acked_seq``. Any
process can therefore serve any run, whichever process ingested it. Polling the database
every ``poll_interval`` covers rows ingested by other processes; the in-memory
:class:`~gradexp.server.domain.notifier.Notifier` only wakes the streams of *this* process
early when it ingested something itself.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from gradexp.protocol.wire import API_PREFIX
from gradexp.server.domain.history import read_rows
from gradexp.server.domain.runs import (
    effective_state,
    find_run,
    project_runs,
    run_by_pk,
    run_objects,
)
from gradexp.server.http.errors import HttpError
from gradexp.server.http.params import owned_project_id
from gradexp.server.http.sessions import USER
from gradexp.server.http.state import app_state, public_url

log = logging.getLogger("gradexp.server.live")

ROWS_PER_EVENT = 1000
CLOCK_SLACK = 5.0  # seconds of clock difference tolerated between server processes

routes = web.RouteTableDef()


@routes.get(API_PREFIX + "/runs/{run_id}/events")
async def run_events(request: web.Request) -> web.StreamResponse:
    """New rows and state changes of one run; resumable with ``Last-Event-ID``."""
    state = app_state(request)
    raw = request.headers.get("Last-Event-ID") or request.query.get("after_seq") or "0"
    try:
        after = int(raw)
    except ValueError:
        raise HttpError(
            400, "bad_request", "Last-Event-ID / after_seq must be a sequence number"
        ) from None
    if after < 0:
        raise HttpError(400, "bad_request", "Last-Event-ID / after_seq must be >= 0")
    async with state.db.read() as conn:
        run = await find_run(conn, request[USER], request.match_info["run_id"])
    return await stream_run(request, run, after)


@routes.get(API_PREFIX + "/projects/{owner}/{project}/events")
async def project_events(request: web.Request) -> web.StreamResponse:
    """Run changes and new rows of every run in a project; resumable with ``Last-Event-ID``.

    ``?rows=0`` sends run events only (a runs table has no use for history rows)."""
    async with app_state(request).db.read() as conn:
        pid = await owned_project_id(request, conn)
    token = request.headers.get("Last-Event-ID") or request.query.get("cursor")
    rows = request.query.get("rows", "1")
    if rows not in ("0", "1"):
        raise HttpError(400, "bad_request", "rows must be 0 (run events only) or 1 (the default)")
    return await stream_project(request, pid, token, with_rows=rows == "1")


def sse_event(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message (data is JSON on a single line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return head.encode() + b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


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


def encode_cursor(cursor: dict[str, Any]) -> str:
    """A project stream cursor as an opaque URL-safe token."""
    return base64.urlsafe_b64encode(orjson.dumps(cursor)).decode().rstrip("=")


def decode_cursor(token: str) -> dict[str, Any] | None:
    """The cursor behind a token, or None if it is not one of ours."""
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if (
        type(doc) is not dict
        or type(doc.get("t")) not in (int, float)
        or type(doc.get("r")) is not dict
        or not all(type(v) is int for v in doc["r"].values())
    ):
        return None
    return doc


PROGRESS_EVENT_INTERVAL = 2.0  # seconds between "run" events for a run that only progressed


def client_gone(request: web.Request) -> bool:
    """Whether the client of a stream has disconnected (its transport is closing)."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def follow(request: web.Request, kind: str, body: Any) -> web.StreamResponse:
    """Run a stream's loop, counting it as open, and end it quietly when the client leaves.

    A client going away is the normal end of every stream (a tab closed, a page left), so
    it is logged at debug level only. The loops also check ``client_gone`` on every turn:
    aiohttp does not cancel a handler whose client left, and without that check a
    stream with nothing to send would poll the database until its next keepalive write
    failed (up to ``keepalive_interval`` later).
    """
    notifier = app_state(request).notifier
    resp = web.StreamResponse()
    notifier.open_streams += 1  # only ever touched on the event loop: no lock needed
    try:
        resp = await open_stream(request)
        await body(resp)
    except ConnectionError:  # ConnectionResetError, BrokenPipeError, aiohttp's reset error
        pass
    finally:
        notifier.open_streams -= 1
        log.debug("%s stream closed (%d open)", kind, notifier.open_streams)
    return resp


async def stream_run(request: web.Request, run: Any, after_seq: int) -> web.StreamResponse:
    """Follow one run: ``rows`` events by cursor, ``run`` events when it changes."""
    return await follow(request, "run", lambda resp: _stream_run(request, resp, run, after_seq))


async def _stream_run(
    request: web.Request, resp: web.StreamResponse, run: Any, after_seq: int
) -> None:
    state = app_state(request)
    settings = state.settings
    cursor = after_seq
    last_sig: tuple[Any, ...] | None = None
    last_write = time.monotonic()
    url = public_url(request)
    while not state.notifier.closed and not client_gone(request):
        async with state.db.read() as conn:
            row = await run_by_pk(conn, run.pk)
            rows: list[dict[str, Any]] = []
            if row.acked_seq > cursor:
                rows, _ = await read_rows(
                    conn, run.pk, after_seq=cursor, max_seq=row.acked_seq, limit=ROWS_PER_EVENT
                )
            sig = _signature(row, settings.crash_after)
            run_obj = None
            if sig != last_sig:
                (run_obj,) = await run_objects(conn, [row], url, settings.crash_after)
                last_sig = sig
        if rows:
            cursor = rows[-1]["_seq"]
            await resp.write(sse_event("rows", {"run_id": run.id, "rows": rows}, str(cursor)))
            last_write = time.monotonic()
        elif row.acked_seq > cursor:
            cursor = int(row.acked_seq)  # sequences without history rows (config, files...)
        if run_obj is not None:
            # Sent after the rows it covers, so a client sees "finished" after the last row.
            await resp.write(sse_event("run", run_obj, str(cursor)))
            last_write = time.monotonic()
        if len(rows) == ROWS_PER_EVENT:
            continue  # more is waiting: catch up before sleeping
        if time.monotonic() - last_write >= settings.keepalive_interval:
            await resp.write(b": keepalive\n\n")
            last_write = time.monotonic()
        await state.notifier.wait(settings.poll_interval, run_pk=run.pk)


def _signature(row: Any, crash_after: float) -> tuple[Any, ...]:
    """What, when it changes, deserves a ``run`` event."""
    return (
        effective_state(row, crash_after),
        row.exit_code,
        row.name,
        row.attempt,
        row.tags,
        row.notes,
    )


async def stream_project(
    request: web.Request, project_id: int, token: str | None, *, with_rows: bool = True
) -> web.StreamResponse:
    """Follow every run of a project (see ``_stream_project``)."""
    return await follow(
        request,
        "project",
        lambda resp: _stream_project(request, resp, project_id, token, with_rows),
    )


async def _stream_project(
    request: web.Request,
    resp: web.StreamResponse,
    project_id: int,
    token: str | None,
    with_rows: bool,
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
    settings = state.settings
    url = public_url(request)
    resumed = decode_cursor(token) if token else None
    positions: dict[str, int] = dict(resumed["r"]) if resumed else {}
    since = float(resumed["t"]) - CLOCK_SLACK if resumed else None
    signatures: dict[str, tuple[Any, ...]] = {}
    progress_sent: dict[str, tuple[float, int]] = {}
    in_cursor: set[str] = set(positions)
    first = True
    last_poll = time.time()
    last_write = time.monotonic()
    while not state.notifier.closed and not client_gone(request):
        poll_time = time.time()
        changed: list[Any] = []
        row_batches: list[tuple[Any, list[dict[str, Any]]]] = []
        more = False
        async with state.db.read() as conn:
            # After the first look, only runs that can have news: running ones (they may
            # progress, or go quiet and read as crashed) and any touched lately.
            touched = None if first else last_poll - CLOCK_SLACK
            runs = await project_runs(conn, project_id, touched_since=touched)
            last_poll = poll_time
            for r in runs:
                if r.id not in positions:
                    if first and (since is None or r.attempt_started_at < since):
                        positions[r.id] = int(r.acked_seq)  # nothing of it is new to the client
                    else:
                        positions[r.id] = int(r.attempt_seq)  # a run (or attempt) that is new
                sig = _signature(r, settings.crash_after)
                old = signatures.get(r.id)
                signatures[r.id] = sig
                now_mono = time.monotonic()
                last_emit, last_step = progress_sent.get(r.id, (0.0, int(r.last_step)))
                if (
                    (old is None and not first)
                    or (old is not None and old != sig)
                    or (
                        r.last_step != last_step and now_mono - last_emit >= PROGRESS_EVENT_INTERVAL
                    )
                ):
                    changed.append(r)
                    progress_sent[r.id] = (now_mono, int(r.last_step))
                elif r.id not in progress_sent:
                    progress_sent[r.id] = (0.0, int(r.last_step))
                if sig[0] == "running":
                    in_cursor.add(r.id)
                if not with_rows:
                    positions[r.id] = int(r.acked_seq)
                elif r.acked_seq > positions[r.id]:
                    rows, _ = await read_rows(
                        conn,
                        r.pk,
                        after_seq=positions[r.id],
                        max_seq=r.acked_seq,
                        limit=ROWS_PER_EVENT,
                    )
                    if rows:
                        row_batches.append((r, rows))
                        more = more or len(rows) == ROWS_PER_EVENT
                    else:
                        positions[r.id] = int(r.acked_seq)
            objs = await run_objects(conn, changed, url, settings.crash_after) if changed else []
        was_first, first = first, False

        def cursor(t: float = poll_time) -> str:
            return encode_cursor(
                {"t": t, "r": {k: positions[k] for k in sorted(in_cursor) if k in positions}}
            )

        events: list[bytes] = []
        for r, rows in row_batches:
            positions[r.id] = rows[-1]["_seq"]
            in_cursor.add(r.id)
            events.append(sse_event("rows", {"run_id": r.id, "rows": rows}, cursor()))
        events.extend(sse_event("run", obj, cursor()) for obj in objs)
        if was_first:
            # The stream has taken its starting positions: anything ingested from now on will
            # be sent. (A comment, so EventSource clients ignore it; tests wait for it.)
            events.append(b": ready\n\n")
        if events:
            await resp.write(b"".join(events))
            last_write = time.monotonic()
        if more:
            continue
        if time.monotonic() - last_write >= settings.keepalive_interval:
            await resp.write(b": keepalive\n\n")
            last_write = time.monotonic()
        await state.notifier.wait(settings.poll_interval, project_id=project_id)
