"""Reads of what the machine did: system series, console logs (live too), environment.

Endpoints (docs/protocol.md, "What the machine did"):

- ``GET /runs/{id}/system``: downsampled system series;
  ``GET /runs/{id}/system.parquet``: every sample;
- ``GET /runs/{id}/logs``: console lines, paginated, searchable;
  ``GET /runs/{id}/logs.txt``: the whole log, streamed;
  ``GET /runs/{id}/logs/events``: new and replaced lines as Server-Sent Events;
- ``GET /runs/{id}/environment``: what the run recorded about where it ran.

``?rank=N`` picks the writer of a run with several (default 0).
"""

from __future__ import annotations

import io
from typing import Any

from aiohttp import web

from gradexp.protocol.wire import API_PREFIX, MAX_CONSOLE_LINES
from gradexp.server.domain import machine_reads as reads
from gradexp.server.domain.runs import find_run, find_run_role, run_by_pk
from gradexp.server.domain.writers import find_writer
from gradexp.server.http.errors import HttpError, json_response
from gradexp.server.http.live import StreamOut, follow_run, sse_event
from gradexp.server.http.params import int_param, parse_int
from gradexp.server.http.sessions import USER
from gradexp.server.http.state import app_state

routes = web.RouteTableDef()

LINES_PER_EVENT = MAX_CONSOLE_LINES
_RUN = API_PREFIX + "/runs/{run_id}"


async def _run(request: web.Request) -> Any:
    async with app_state(request).db.read() as conn:
        return await find_run(conn, request[USER], request.match_info["run_id"])


def _rank(request: web.Request) -> int:
    rank = int_param(request, "rank", 0, minimum=0) or 0
    if rank > 32_767:
        raise HttpError(400, "bad_request", "rank must be at most 32767")
    return rank


@routes.get(_RUN + "/system")
async def get_system(request: web.Request) -> web.Response:
    """System series: ``{"series": {key: {"time", "value", "min", "max"}}}``."""
    run = await _run(request)
    samples = int_param(request, "samples", None, minimum=1)
    series = await reads.system_series(app_state(request).db, run.pk, _rank(request), samples)
    return json_response({"series": series, "rank": _rank(request)})


@routes.get(_RUN + "/system.parquet")
async def get_system_parquet(request: web.Request) -> web.Response:
    """Every system sample as Parquet (``time``, ``rank``, one column per key)."""
    import pyarrow.parquet as pq

    run = await _run(request)
    table = await reads.system_table(app_state(request).db, run.pk)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return web.Response(
        body=out.getvalue(),
        content_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{run.id}-system.parquet"'},
    )


@routes.get(_RUN + "/logs")
async def get_logs(request: web.Request) -> web.Response:
    """Console lines in order, paginated by ``after_id``; ``q`` searches, ``stream``
    filters, ``tail=1`` gives the last ``limit`` lines."""
    stream = request.query.get("stream") or None
    if stream not in (None, "stdout", "stderr"):
        raise HttpError(400, "bad_request", "stream must be stdout or stderr")
    tail = request.query.get("tail") in ("1", "true")
    rank = _rank(request)
    run = await _run(request)
    async with app_state(request).db.read() as conn:
        lines, next_after = await reads.console_page(
            conn,
            run.pk,
            rank,
            after_id=int_param(request, "after_id", -1, minimum=-1) or -1,
            limit=int_param(request, "limit", 1000, minimum=1) or 1000,
            q=request.query.get("q") or None,
            stream=stream,
            tail=tail,
        )
        totals = await reads.console_totals(conn, run.pk, rank)
        # The live log's cursor is a sequence of the writer's own (rank 0's: the run's).
        writer = run if rank == 0 else await find_writer(conn, request[USER], run.id, rank)
    return json_response(
        {
            "lines": lines,
            "next_after_id": next_after,
            "total_lines": totals["lines"],
            "dropped_lines": totals["dropped_lines"],
            "acked_seq": writer.acked_seq,
        }
    )


@routes.get(_RUN + "/logs.txt")
async def get_log_text(request: web.Request) -> web.StreamResponse:
    """The whole log as a text download, streamed page by page."""
    rank = _rank(request)  # checked before the response starts: a 400 must still be one
    run = await _run(request)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{run.id}-output.log"',
        }
    )
    await resp.prepare(request)
    async for chunk in reads.log_text(app_state(request).db, run.pk, rank):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


@routes.get(_RUN + "/logs/events")
async def log_events(request: web.Request) -> web.StreamResponse:
    """Live console lines: ``console`` events ``{"run_id", "lines": [...]}``, each line with
    its ``id`` (a line seen before is a replacement), ``rank`` and ``seq``. Resumable:
    ``Last-Event-ID`` (or ``?after_seq=``) is the last sequence received."""
    raw = request.headers.get("Last-Event-ID") or request.query.get("after_seq") or "0"
    after = parse_int(raw, "Last-Event-ID / after_seq")
    rank = _rank(request)
    async with app_state(request).db.read() as conn:
        run, role = await find_run_role(conn, request[USER], request.match_info["run_id"])
        writer = run if rank == 0 else await find_writer(conn, request[USER], run.id, rank)
    return await follow_run(
        request,
        writer,
        role,
        lambda out: _stream_logs(request, out, run, int(writer.pk), rank, max(0, after)),
    )


async def _stream_logs(
    request: web.Request, out: StreamOut, run: Any, writer_pk: int, rank: int, cursor: int
) -> None:
    """Send the console lines of the run's writer ``rank`` (its row: ``writer_pk``) past
    ``cursor`` (a sequence of that writer's) whenever the hub says the run moved."""
    state = app_state(request)
    sub = out.sub
    while sub.ended is None:
        async with state.db.read() as conn:
            row = await run_by_pk(conn, writer_pk)
            lines: list[dict[str, Any]] = []
            if row.acked_seq > cursor:
                lines = await reads.console_since(
                    conn, run.pk, cursor, int(row.acked_seq), LINES_PER_EVENT + 1, rank
                )
        full = len(lines) > LINES_PER_EVENT
        if full:
            # Only whole records: cut before the last record's lines (it may be partial).
            last = lines[LINES_PER_EVENT]["seq"]
            lines = [x for x in lines if x["seq"] < last]
            # (A record holds at most MAX_CONSOLE_LINES = LINES_PER_EVENT lines, so the
            # first record always fits.)
        if lines:
            cursor = lines[-1]["seq"]
            await out.write(sse_event("console", {"run_id": run.id, "lines": lines}, str(cursor)))
        elif row.acked_seq > cursor:
            cursor = int(row.acked_seq)  # records without console lines
        if full:
            continue
        if sub.keepalive_due:
            await out.write(b": keepalive\n\n")
        await sub.take()  # the run's next change (or a keepalive, or the end)
    await out.end(str(cursor))


@routes.get(_RUN + "/environment")
async def get_environment(request: web.Request) -> web.Response:
    """``{"environment": {...} | null, "rank": N}``."""
    run = await _run(request)
    rank = _rank(request)
    async with app_state(request).db.read() as conn:
        env = await reads.environment(conn, run.pk, rank)
    return json_response({"environment": env, "rank": rank})
