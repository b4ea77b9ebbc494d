"""Which runs somebody watches live right now, as every server process can ask.

A run is *watched* while a live stream follows its rows: a run stream (the run page), or a
project stream with rows (the compare view) while the run is running. A project stream
without rows (the runs table) shows run objects only and watches no run's rows.

Each process's hub knows its own streams; for the others it writes what it follows to the
``live_watches`` table: one row per run with ``watched_until`` a few seconds ahead,
renewed every :data:`WATCH_RENEW` seconds while the stream stays open (and at once for a
run it starts to follow). Nothing is written while a process has no streams, and nobody
deletes a row when a stream closes: the row simply runs out, so a run reads as unwatched at
most :data:`WATCH_TTL` seconds after its last stream closed. An upsert keeps the later
deadline, so two processes watching one run never shorten each other's.

Ingest uses this to tell the writers of watched runs to send more often.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, greatest, upsert_statement

WATCH_TTL = 15.0  # a watch row counts this long after it was last renewed
WATCH_RENEW = 5.0  # a process renews its runs' rows this often while it has streams


async def mark_watched(db: Database, run_pks: Iterable[int], ttl: float = WATCH_TTL) -> None:
    """Record that this process follows ``run_pks`` for the next ``ttl`` seconds (and forget
    rows that ran out)."""
    pks = sorted(set(run_pks))  # sorted: two processes lock the rows in the same order
    if not pks:
        return
    t = s.live_watches

    def write(conn: Connection) -> None:
        now = time.time()
        stmt = upsert_statement(
            db.kind,
            t,
            ["run_pk"],
            lambda new, old: [
                ("watched_until", greatest(db.kind, old.watched_until, new.watched_until))
            ],
        )
        conn.execute(stmt, [{"run_pk": pk, "watched_until": now + ttl} for pk in pks])
        conn.execute(delete(t).where(t.c.watched_until < now - ttl))

    await db.write(write)


async def watched_runs(db: Database) -> set[int]:
    """The primary keys of every run a live stream of any server process follows now."""
    t = s.live_watches
    async with db.read() as conn:
        result = await conn.execute(select(t.c.run_pk).where(t.c.watched_until > time.time()))
        return {int(pk) for pk in result.scalars()}


async def is_watched(db: Database, run_pk: int) -> bool:
    """Whether a live stream of any server process follows this run now."""
    t = s.live_watches
    async with db.read() as conn:
        until = (await conn.execute(select(t.c.watched_until).where(t.c.run_pk == run_pk))).scalar()
    return until is not None and until > time.time()


def is_watched_in(conn: Connection, run_pk: int) -> bool:
    """:func:`is_watched` inside a write transaction (ingest's)."""
    t = s.live_watches
    until = conn.execute(select(t.c.watched_until).where(t.c.run_pk == run_pk)).scalar()
    return until is not None and until > time.time()
