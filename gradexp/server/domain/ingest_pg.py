"""PostgreSQL: the usual small batch in one statement, one round trip, no explicit transaction.

Most batches a server sees are the next few history rows of a run it has seen before: the
batch starts right after the run's ack, holds only plain values under keys the run already
has, and the run has nothing pending (no gap, no finish waiting, no ``define_metric``). For
those, ``ingest_batch``'s transaction (BEGIN, the locking read, the writes, COMMIT: four
round trips through SQLAlchemy's asyncpg adaptor) is replaced by one statement:

- a guarded ``UPDATE`` of the run's row moves the ack, and matches only if the row is
  as this batch expects it: the ack at ``first_seq - 1``, no pending
  ranges, no finish waiting, no definitions, in the project the run was in, and the
  request's API key unrevoked. It takes the row lock, as the locking read does; a
  concurrent batch of the same run waits for it and then finds the ack moved;
- the history rows, rollups and key index are inserted from that ``UPDATE``'s output
  (``SELECT ... FROM u, jsonb_array_elements(...)``): when the guard does not match,
  nothing is written.

A statement is atomic by itself, so it commits whole or not at all. When the guard does
not match (a retry, a gap, a revoked key, a deleted run...), the caller runs
``ingest_batch``, which handles every case and raises the right error. The statement text
does not depend on the number of rows (they travel as one JSON document that PostgreSQL
unpacks), so each connection prepares it once.

A process that has not written to a run yet learns its project, the project's owner and
the ids of the batch's keys in one read (``prime``); a run's very first batch assigns its
keys' ids here as the full path would (1, 2, ...), the guard making sure no batch
committed first. Keys new to a run that already has some take the full path, which
assigns their ids under the run's lock. Only for the caller's own runs (the project's
owner): a team member's access is checked by the access resolver, in ``ingest_batch``.
Statements run on the process's own asyncpg connections (``storage.db.DriverPool``).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from orjson import OPT_SERIALIZE_NUMPY
from orjson import dumps as _dumps
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from gradexp.server.domain.batch import Batch
from gradexp.server.domain.ingest import (
    KEY_COLUMNS,
    ROLLUP_COLUMNS,
    IngestResult,
    upsert_sql,
)
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import Database, split_insert

__all__ = ["Primed", "is_plain", "prime", "try_heartbeat", "try_ingest"]

log = logging.getLogger("gradexp.server")

HISTORY_COLUMNS = ("run_pk", "seq", "step", "time", "row_values")


def is_plain(batch: Batch) -> bool:
    """Whether ``batch`` may take the one-statement path: history rows only (one per
    sequence of its range), plain values only."""
    cols = batch.columns
    return not batch.others and len(cols) == batch.last_seq - batch.first_seq + 1 and not cols.typed


@dataclass
class Primed:
    """What a process learns of a run it has not committed a batch of yet (``prime``)."""

    project_id: int
    owner_id: int
    key_ids: dict[str, int]  # the ids of the keys asked about that the run has


async def prime(db: Database, run_id: str, names: list[str]) -> Primed | None:
    """One read, outside any transaction: run ``run_id``'s project and its owner, and the
    ids of the keys ``names`` that the run has (committed ids never change). For a run
    with no committed record at all, the ids of ``names`` are the ones the full path
    would give them (1, 2, ... in order): ``try_ingest``'s guard (the ack at 0, nothing
    pending) then makes sure that no batch committed keys first. None if there is no
    such run (the full path says why)."""
    sql = (
        "SELECT r.project_id, p.owner_id, r.acked_seq, r.pending_ranges, k.key_name, "
        "k.key_id FROM runs r JOIN projects p ON p.id = r.project_id "
        "LEFT JOIN run_keys k ON k.run_pk = r.pk AND k.key_name = ANY($2::text[]) "
        "WHERE r.id = $1 AND r.parent_pk IS NULL"
    )
    try:
        rows = await db.fetch_autocommit(sql, [run_id, names])
    except Exception as exc:
        log.warning("could not read run %s for the one-statement ingest: %s", run_id, exc)
        return None
    if not rows:
        return None
    project_id, owner_id, acked, pending = rows[0][:4]
    found = {str(r[4]): int(r[5]) for r in rows if r[4] is not None}
    if not found and int(acked) == 0 and pending == "[]":
        found = {name: i for i, name in enumerate(names, start=1)}
    return Primed(int(project_id), int(owner_id), found)


async def try_ingest(
    db: Database,
    run_id: str,
    project_id: int,
    batch: Batch,
    key_ids: dict[str, int],
    api_key_id: int | None,
) -> IngestResult | None:
    """Apply ``batch`` to run ``run_id`` (of ``project_id``, owned by the caller) in one
    statement if the run's row is as expected (see the module); None if it was not, and
    nothing was written: the caller then runs ``ingest_batch``."""
    cols = batch.columns
    rollups = cols.rollup_rows(key_ids)
    keys = cols.key_rows(key_ids)
    now = time.time()
    params: list[Any] = [batch.last_seq, cols.max_step, now, run_id, project_id]
    params.append(batch.first_seq - 1)
    if api_key_id is not None:
        params.append(api_key_id)
    # The rows travel as one JSON document of three lists of rows, unpacked by
    # PostgreSQL: as arrays, asyncpg's encoder checked every element's type against
    # abstract base classes, ~370 checks a small batch, a fifth of its CPU here.
    history = list(zip(cols.seqs, cols.steps, cols.times, cols.jsons, strict=True))
    params.append(_dumps([history, rollups, keys], option=OPT_SERIALIZE_NUMPY).decode())
    try:
        rows = await db.fetch_autocommit(_statement(db.dialect, api_key_id is not None), params)
    except Exception as exc:  # nothing was written: the full path decides (and says why)
        log.warning("the one-statement ingest of run %s failed: %s", run_id, exc)
        return None
    if not rows:
        return None
    return IngestResult(
        acked_seq=batch.last_seq,
        applied=len(cols),
        run_pk=int(rows[0][0]),
        project_id=project_id,
        key_ids=key_ids,
    )


async def try_heartbeat(
    db: Database, run_id: str, project_id: int, api_key_id: int | None
) -> int | None:
    """Mark run ``run_id`` (of ``project_id``, owned by the caller) alive in one statement;
    its ``acked_seq``, or None if the row was not as expected (a deleted run, a revoked
    key...): the caller then runs ``record_heartbeat``."""
    key = "AND EXISTS (SELECT 1 FROM api_keys WHERE id = $4 AND revoked_at IS NULL) "
    sql = (
        "UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND project_id = $3 "
        f"AND parent_pk IS NULL {key if api_key_id is not None else ''}RETURNING acked_seq"
    )
    params: list[Any] = [time.time(), run_id, project_id]
    if api_key_id is not None:
        params.append(api_key_id)
    try:
        rows = await db.fetch_autocommit(sql, params)
    except Exception as exc:
        log.warning("the one-statement heartbeat of run %s failed: %s", run_id, exc)
        return None
    return int(rows[0][0]) if rows else None


@functools.lru_cache(maxsize=4)
def _statement(dialect: Dialect, key_check: bool) -> str:
    key = "AND EXISTS (SELECT 1 FROM api_keys WHERE id = $7 AND revoked_at IS NULL) "
    update = (
        "UPDATE runs SET acked_seq = $1, last_step = GREATEST(last_step, $2), "
        "heartbeat_at = $3, updated_at = $3 "
        "WHERE id = $4 AND project_id = $5 AND acked_seq = $6 AND pending_ranges = '[]' "
        "AND finish_seq IS NULL AND metrics IS NULL AND parent_pk IS NULL "
        f"{key if key_check else ''}RETURNING pk"
    )
    rows = "$8::jsonb" if key_check else "$7::jsonb"
    history = _insert_from_u(
        s.history,
        f"INSERT INTO history ({', '.join(HISTORY_COLUMNS)})",
        HISTORY_COLUMNS,
        "",
        f"{rows} -> 0",
    )
    head, _items, tail = split_insert(upsert_sql(dialect, "postgresql", "rollups"))
    rollups = _insert_from_u(s.rollups, head, ROLLUP_COLUMNS, tail, f"{rows} -> 1")
    head, _items, tail = split_insert(upsert_sql(dialect, "postgresql", "run_keys"))
    keys = _insert_from_u(s.run_keys, head, KEY_COLUMNS, tail, f"{rows} -> 2")
    return (
        f"WITH u AS ({update}), h AS ({history}), r AS ({rollups}), k AS ({keys}) SELECT pk FROM u"
    )


def _insert_from_u(table: Table, head: str, columns: tuple[str, ...], tail: str, rows: str) -> str:
    """``head`` (``INSERT INTO table (columns)``) fed by the run's pk from ``u`` and the
    JSON list of rows ``rows`` (each a list of the other columns' values); then ``tail``
    (ON CONFLICT...)."""
    if columns[0] != "run_pk":
        raise ValueError(f"{table.name}: the first column must be run_pk")
    values = ", ".join(
        f"(e ->> {i})::{_pg_type(table, name)}" for i, name in enumerate(columns[1:])
    )
    # WHERE true: so that PostgreSQL reads a following ON CONFLICT as the INSERT's.
    return (
        f"{head} SELECT u.pk, {values} FROM u, jsonb_array_elements({rows}) AS e WHERE true{tail}"
    )


def _pg_type(table: Table, column: str) -> str:
    return str(table.c[column].type.compile(dialect=postgresql.dialect()))
