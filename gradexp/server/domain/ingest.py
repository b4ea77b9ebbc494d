"""Applying a validated batch: one transaction, deduplicated by sequence number.

The order of work inside the transaction (see ``apply_batch``):

1. lock the run row (``SELECT ... FOR UPDATE`` on PostgreSQL/MySQL; on SQLite the single
   writer already excludes everyone else), read ``acked_seq`` and the committed ranges
   above it;
2. drop the records already committed (a retry, a replay by ``gradexp sync``);
3. write the rest: history rows, typed values, rollups, key index, config, summary,
   telemetry, file index, a pending finish;
4. record the batch's range and move ``acked_seq`` across every contiguous range;
5. if a finish record is now covered by ``acked_seq``, the run is finished.

The reply (the new ``acked_seq``) is sent only after the commit, so an ack always means
"durably stored".
"""

from __future__ import annotations

import functools
import gc
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import bindparam, case, func, insert, or_, select
from sqlalchemy.engine import Connection, Dialect

from gradexp.server.domain.artifacts import store_artifacts
from gradexp.server.domain.batch import Batch
from gradexp.server.domain.columns import columnize
from gradexp.server.domain.errors import Conflict, NotFound
from gradexp.server.domain.limits import MAX_TELEMETRY_NAMES, saturating_add
from gradexp.server.domain.machine import MACHINE_KINDS, apply_machine_records
from gradexp.server.domain.run_lock import (
    ProjectOwners,
    lock_owned_run,
    run_update_sql,
    select_run,
    update_run_row,
)
from gradexp.server.domain.run_records import merge_metrics, run_field_columns, store_alerts
from gradexp.server.domain.summaries import update_summaries
from gradexp.server.domain.writers import settle
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import (
    StatementChain,
    greatest,
    insert_rows,
    least,
    placeholders,
    upsert_statement,
)

_dumps = orjson.dumps


# Ingest allocates tens of thousands of short-lived containers per batch (the parsed
# records), and under CPython's default thresholds (700, 10, 10) they survive into the
# older generations while the batch is in flight, so full collections kept walking the
# whole heap: measured at 5-7 us of a 20 us step. A batch's objects are freed by reference
# counting, not by the cycle collector, so collecting less often costs no memory beyond
# the rare cyclic garbage that waits longer.
GC_THRESHOLDS = (50_000, 50, 50)


def tune_gc() -> None:
    """Collect cycles less often, and never walk the objects that exist at startup.

    Called once by the server after startup (``app.serve``): ``gc.freeze()`` moves
    everything allocated so far (modules, SQLAlchemy's metadata, the app) out of the
    collector's reach, and the higher thresholds let each batch's objects die young.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@dataclass
class IngestResult:
    """What a committed batch changed (the reply, and what to do after the commit)."""

    acked_seq: int
    applied: int
    run_pk: int
    project_id: int
    finished: bool = False
    key_ids: dict[str, int] = field(default_factory=dict)  # to cache once committed
    alerts: list[dict[str, Any]] = field(default_factory=list)  # to deliver once committed


class KeyIdCache:
    """Per-process map ``run id -> ({key: key_id}, project id)``, filled only after a commit.

    Key ids never change once committed, and a run never changes project, so caching them
    is safe across processes; a key missing here is looked up (or assigned) under the run
    lock. An LRU over runs, bounded in runs and in key ids over all runs: sized for a
    thousand runs at once each logging a few hundred keys (a run that misses costs its
    batch a lookup in the database and the longer path on PostgreSQL, ``ingest_pg.py``).
    """

    def __init__(self, max_runs: int = 10_000, max_ids: int = 500_000) -> None:
        # Used only on the event loop's thread: the writer gets copies.
        self._runs: OrderedDict[str, tuple[dict[str, int], int]] = OrderedDict()
        self._max_runs = max_runs
        self._max_ids = max_ids
        self._ids = 0  # key ids held, over all runs

    def get(self, run_id: str) -> dict[str, int]:
        """The cached ids of a run's keys (do not mutate)."""
        entry = self._runs.get(run_id)
        if entry is None:
            return {}
        self._runs.move_to_end(run_id)
        return entry[0]

    def project(self, run_id: str) -> int | None:
        """The project of a run this process committed a batch of, if still cached."""
        entry = self._runs.get(run_id)
        return None if entry is None else entry[1]

    def add(self, run_id: str, new: dict[str, int], project_id: int) -> None:
        """Cache committed key ids (and the run's project)."""
        entry = self._runs.get(run_id)
        if entry is None:
            entry = self._runs[run_id] = ({}, project_id)
        ids = entry[0]
        before = len(ids)
        ids.update(new)
        self._ids += len(ids) - before
        while len(self._runs) > 1 and (
            len(self._runs) > self._max_runs or self._ids > self._max_ids
        ):
            _old, (old_ids, _project) = self._runs.popitem(last=False)
            self._ids -= len(old_ids)


def _merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _merge_telemetry(current: dict[str, Any], rec: dict[str, Any]) -> None:
    # Counters saturate at +-2^53, and names past MAX_TELEMETRY_NAMES are ignored: a run's
    # telemetry stays small and storable however long and however hostile its client.
    for name, value in rec.items():
        if name in ("seq", "type"):
            continue
        if name not in current and len(current) >= MAX_TELEMETRY_NAMES:
            continue
        if isinstance(value, dict):
            bucket = current.get(name)
            if not isinstance(bucket, dict):
                bucket = current[name] = {}
            for k, v in value.items():
                if k in bucket or len(bucket) < MAX_TELEMETRY_NAMES:
                    bucket[k] = saturating_add(bucket.get(k), v)
        else:
            current[name] = saturating_add(current.get(name), value)


def _resolve_key_ids(
    conn: Connection, run_pk: int, names: dict[str, None], key_ids: dict[str, int]
) -> None:
    """Fill ``key_ids`` for ``names``: committed ids from the key index, new ones as max+1.

    Safe without more locking because the caller holds the run's lock (row lock, or the
    SQLite writer), so no one else assigns ids for this run meanwhile.
    """
    missing = [n for n in names if n not in key_ids]
    if not missing:
        return
    k = s.run_keys
    for i in range(0, len(missing), 500):
        result = conn.execute(
            select(k.c.key_name, k.c.key_id).where(
                k.c.run_pk == run_pk, k.c.key_name.in_(missing[i : i + 500])
            )
        )
        for name, key_id in result:
            key_ids[name] = int(key_id)
    new = [n for n in missing if n not in key_ids]
    if not new:
        return
    top = conn.execute(select(func.max(k.c.key_id)).where(k.c.run_pk == run_pk)).scalar()
    next_id = (int(top) if top is not None else 0) + 1
    for offset, name in enumerate(new):
        key_ids[name] = next_id + offset


def ingest_batch(
    conn: Connection,
    kind: str,
    user_id: int,
    run_id: str,
    batch: Batch,
    key_ids: dict[str, int],
    owners: ProjectOwners,
    api_key_id: int | None = None,
    rank: int = 0,
) -> IngestResult:
    """Lock the caller's run ``run_id`` (NotFound if it is missing or out of their reach)
    and apply ``batch``; ``owners``: the process's cache of project owners;
    ``api_key_id``: the API key the request came with, checked here to be unrevoked
    (Unauthorized if not); ``rank``: the writer of a distributed run that sent it
    (``writers.py``), 0 for the run's own.

    Doing the lookup here, in the write transaction, saves the request a separate read.
    """
    run = lock_owned_run(conn, user_id, run_id, owners, api_key_id, rank)
    return _apply(conn, kind, run, batch, key_ids)


def record_heartbeat(
    conn: Connection,
    user_id: int,
    run_id: str,
    owners: ProjectOwners,
    api_key_id: int | None = None,
    rank: int = 0,
) -> int:
    """Mark the caller's run ``run_id`` (or its writer ``rank``) alive, in one write
    transaction, as ``ingest_batch`` looks it up; returns its ``acked_seq``."""
    run = lock_owned_run(conn, user_id, run_id, owners, api_key_id, rank)
    update_run_row(conn, int(run.pk), {"heartbeat_at": time.time()})
    return int(run.acked_seq)


def apply_batch(
    conn: Connection, kind: str, run_pk: int, batch: Batch, key_ids: dict[str, int]
) -> IngestResult:
    """Apply a validated batch to run ``run_pk`` (no access check), inside the caller's
    write transaction."""
    run = select_run(conn, "pk", run_pk)
    if run is None:
        raise NotFound(f"run {run_pk} not found", code="run_not_found")
    return _apply(conn, kind, run, batch, key_ids)


def _apply(
    conn: Connection, kind: str, run: Any, batch: Batch, key_ids: dict[str, int]
) -> IngestResult:
    """The work of a batch, with the run's row locked.

    ``kind`` is the database kind; ``key_ids`` the caller's cached key ids for this run (a
    private copy: it is completed here and returned in the result, for the caller to
    cache once the transaction has committed).
    """
    now = time.time()
    run_pk = int(run.pk)
    acked = int(run.acked_seq)
    ranges = [(int(lo), int(hi)) for lo, hi in orjson.loads(run.pending_ranges)]

    # A distributed run's other writer stores into its own row; what the machine did, the
    # live streams and the export are the run's (``writers.py``).
    job_pk = int(run.parent_pk) if run.parent_pk is not None else run_pk
    if batch.last_seq <= acked:  # a replay of committed records: nothing to write
        update_run_row(conn, run_pk, {"heartbeat_at": now})
        return IngestResult(
            acked_seq=acked, applied=0, run_pk=job_pk, project_id=run.project_id, key_ids=key_ids
        )
    # The sequences this batch adds: all of them, unless some are committed already (a
    # retry, a replay by `gradexp sync`, or a batch overlapping one that came earlier).
    if batch.first_seq > acked and not any(
        lo <= batch.last_seq and batch.first_seq <= hi for lo, hi in ranges
    ):
        applied = batch.last_seq - batch.first_seq + 1
        new_ranges = [*ranges, (batch.first_seq, batch.last_seq)]
        cols, others = batch.columns, batch.others
    else:
        records = [
            r
            for r in batch.all_records()
            if r["seq"] > acked and not any(lo <= r["seq"] <= hi for lo, hi in ranges)
        ]
        applied = len(records)
        new_ranges = list(ranges)
        if records:
            # The unseen records form runs of consecutive numbers between known ranges.
            lo = prev = records[0]["seq"]
            for rec in records[1:]:
                q = rec["seq"]
                if q != prev + 1:
                    new_ranges.append((lo, prev))
                    lo = q
                prev = q
            new_ranges.append((lo, prev))
        cols = columnize([r for r in records if r["type"] == "history"])
        others = [r for r in records if r["type"] != "history"]

    config_update: dict[str, Any] | None = None
    summary_update: dict[str, Any] | None = None
    telemetry: list[dict[str, Any]] = []
    file_recs: list[dict[str, Any]] = []
    finish: dict[str, Any] | None = None
    machine_recs: list[dict[str, Any]] = []  # system samples, console lines, environments
    run_fields: dict[str, Any] = {}
    metric_recs: list[dict[str, Any]] = []
    alert_recs: list[dict[str, Any]] = []
    artifact_recs: list[dict[str, Any]] = []
    for rec in others:
        rtype = rec["type"]
        if rtype == "config":
            if rec["update"]:
                config_update = {**(config_update or {}), **rec["update"]}
            if rec.get("run"):
                run_fields.update(rec["run"])
        elif rtype == "metric":
            metric_recs.append(rec)
        elif rtype == "alert":
            alert_recs.append(rec)
        elif rtype == "artifact":
            artifact_recs.append(rec)
        elif rtype == "summary":
            summary_update = {**(summary_update or {}), **rec["update"]}
        elif rtype == "telemetry":
            telemetry.append(rec)
        elif rtype == "file":
            file_recs.append(rec)
        elif rtype == "finish":
            finish = rec
        elif rtype in MACHINE_KINDS:
            machine_recs.append(rec)

    # Files must reference blobs already stored (the SDK PUTs them first). Checked before
    # writing anything, so a refused batch leaves no trace.
    if file_recs:
        shas = {f["sha256"] for f in file_recs}
        present = {
            sha
            for (sha,) in conn.execute(
                select(s.blobs.c.sha256).where(
                    s.blobs.c.run_pk == run_pk, s.blobs.c.sha256.in_(shas)
                )
            )
        }
        missing = sorted(shas - present)
        if missing:
            raise Conflict(
                f"a file record references blob {missing[0]}, which was not uploaded: PUT it first",
                code="blob_missing",
                sha256=missing,
            )

    if artifact_recs:  # refuses (409 blob_missing) before anything is written
        store_artifacts(conn, kind, run_pk, int(run.project_id), artifact_recs)
    _resolve_key_ids(conn, run_pk, cols.key_order, key_ids)
    # On PostgreSQL a batch of plain history (the usual one) writes its rows, rollups, key
    # index and run row in one statement: one round trip instead of four. Batches with
    # more in them (typed values, files, definitions the summaries follow...) run each
    # statement in turn, as the other databases do.
    chain = (
        StatementChain()
        if kind == "postgresql"
        and not (cols.typed or file_recs or machine_recs or metric_recs or alert_recs)
        and run.metrics is None
        else None
    )
    if len(cols):
        _insert(conn, kind, chain, _history_sql(kind), cols.history_rows(run_pk))
    if cols.typed:
        conn.execute(
            insert(s.typed_values),
            [
                {
                    "run_pk": run_pk,
                    "key_id": key_ids[key],
                    "seq": seq,
                    "step": step,
                    "time": t,
                    "value": text,
                }
                for key, seq, step, t, text in cols.typed
            ],
        )
    if cols.numeric:
        _insert(
            conn,
            kind,
            chain,
            upsert_sql(conn.dialect, kind, "rollups"),
            [(run_pk, *row) for row in cols.rollup_rows(key_ids)],
        )
    key_rows = cols.key_rows(key_ids)
    if key_rows:
        _insert(
            conn,
            kind,
            chain,
            upsert_sql(conn.dialect, kind, "run_keys"),
            [(run_pk, *row) for row in key_rows],
        )
    # define_metric: the definitions, and the summaries they choose (the sort key of the
    # runs table); runs without definitions skip it. Then the alerts.
    metrics_text = merge_metrics(run.metrics, metric_recs) if metric_recs else run.metrics
    if metrics_text is not None and (metric_recs or key_rows):
        update_summaries(conn, run_pk, metrics_text, bool(metric_recs), [r[1] for r in key_rows])
    if alert_recs:
        store_alerts(conn, run_pk, alert_recs)
    if file_recs:
        by_path = {f["path"]: f for f in file_recs}  # the last record for a path wins
        conn.execute(
            _files_upsert(kind),
            [
                {
                    "run_pk": run_pk,
                    "path": f["path"],
                    "sha256": f["sha256"],
                    "size": f["size"],
                    "content_type": f["content_type"],
                    "created_at": now,
                }
                for f in by_path.values()
            ],
        )

    if machine_recs:
        if run.parent_pk is not None:
            for rec in machine_recs:
                rec["rank"] = int(run.rank)  # a writer speaks for its own rank only
        apply_machine_records(conn, kind, job_pk, machine_recs)

    # Sequence bookkeeping: the committed ranges above the ack, then the new ack.
    merged = _merge_ranges(new_ranges)
    new_acked = acked
    while merged and merged[0][0] <= new_acked + 1:
        new_acked = max(new_acked, merged.pop(0)[1])

    run_update: dict[str, Any] = {
        "acked_seq": new_acked,
        "last_step": max(int(run.last_step), cols.max_step),
        "heartbeat_at": now,
        "updated_at": now,
    }
    if merged != ranges:
        run_update["pending_ranges"] = _dumps(merged).decode()
    if config_update is not None:
        run_update["config"] = _dumps({**orjson.loads(run.config), **config_update}).decode()
    if summary_update is not None:
        run_update["summary"] = _dumps({**orjson.loads(run.summary), **summary_update}).decode()
    if run_fields:
        run_update.update(run_field_columns(run_fields))
    if metric_recs:
        run_update["metrics"] = metrics_text
    if telemetry:
        merged_tel = orjson.loads(run.telemetry)
        for rec in telemetry:
            _merge_telemetry(merged_tel, rec)
        run_update["telemetry"] = _dumps(merged_tel).decode()
    finish_seq, exit_code, finish_time = run.finish_seq, run.finish_exit_code, run.finish_time
    if finish is not None:
        finish_seq, exit_code, finish_time = finish["seq"], finish["exit_code"], finish["time"]
        run_update.update(
            finish_seq=finish_seq, finish_exit_code=exit_code, finish_time=finish_time
        )
    finished = False
    several = run.parent_pk is not None or (run.world_size or 1) > 1
    if finish_seq is not None and new_acked >= finish_seq and run.state == "running":
        # Every record up to the finish is committed: this writer is done. A run of one
        # writer is over; a run of several asks its writers (``settle``, below).
        if not several or run.parent_pk is not None:
            run_update.update(
                state="finished" if exit_code == 0 else "failed",
                exit_code=exit_code,
                finished_at=finish_time,
            )
        finished = not several
    if chain is not None and chain.fits(len(run_update) + 1):
        sql = run_update_sql(conn.dialect, tuple(run_update))
        chain.add(sql, (*run_update.values(), run_pk))
        chain.execute(conn)
    else:
        if chain is not None:
            chain.execute(conn)
        update_run_row(conn, run_pk, run_update)
    if several and finish_seq is not None and acked < finish_seq <= new_acked:
        finished = settle(conn, kind, job_pk)  # this batch completed the writer's finish
    return IngestResult(
        acked_seq=new_acked,
        applied=applied,
        run_pk=job_pk,
        project_id=run.project_id,
        finished=finished,
        key_ids=key_ids,
        alerts=alert_recs,
    )


def _insert(
    conn: Connection, kind: str, chain: StatementChain | None, sql: str, rows: list[Any]
) -> None:
    """``insert_rows``, or into ``chain`` when there is one and the rows fit in it."""
    if chain is not None and rows and chain.fits(len(rows) * len(rows[0])):
        chain.add_rows(kind, sql, rows)
    else:
        insert_rows(conn, kind, sql, rows)


@functools.lru_cache(maxsize=4)
def _history_sql(kind: str) -> str:
    return (
        "INSERT INTO history (run_pk, seq, step, time, row_values) "
        f"VALUES ({placeholders(kind, 5)})"
    )


def _files_upsert(kind: str) -> Any:
    stmt = _UPSERT_STMT.get(("files", kind))
    if stmt is None:
        stmt = upsert_statement(
            kind,
            s.files,
            ["run_pk", "path"],
            lambda new, old: [
                ("sha256", new.sha256),
                ("size", new.size),
                ("content_type", new.content_type),
                ("created_at", new.created_at),
            ],
        )
        _UPSERT_STMT[("files", kind)] = stmt
    return stmt


# Upserts for the hot path, compiled once per dialect to driver SQL with positional
# parameters: executemany with tuples skips SQLAlchemy's per-row parameter processing.
# Memos of code, not data: keyed by (table, database kind), so six entries at most.
_UPSERT_SQL: dict[tuple[str, str], str] = {}
_UPSERT_STMT: dict[tuple[str, str], Any] = {}
ROLLUP_COLUMNS = (
    "run_pk", "key_id", "level", "bucket", "vmin", "vmax", "vsum", "vcount", "flags",
    "last", "last_code", "last_seq", "last_step", "last_time",
)  # fmt: skip
KEY_COLUMNS = (
    "run_pk", "key_id", "key_name", "kind", "count", "first_step", "last_step", "last_seq",
    "last_value", "vmin", "vmax", "vsum", "vcount", "first_value", "first_seq",
)  # fmt: skip


def _rollup_updates(kind: str) -> Any:
    def updates(new: Any, old: Any) -> list[tuple[str, Any]]:
        newer = new.last_seq > old.last_seq
        return [
            ("vmin", least(kind, old.vmin, new.vmin)),
            ("vmax", greatest(kind, old.vmax, new.vmax)),
            ("vsum", old.vsum + new.vsum),
            ("vcount", old.vcount + new.vcount),
            ("flags", old.flags.op("|")(new.flags)),
            ("last", case((newer, new["last"]), else_=old["last"])),
            ("last_code", case((newer, new.last_code), else_=old.last_code)),
            ("last_step", case((newer, new.last_step), else_=old.last_step)),
            ("last_time", case((newer, new.last_time), else_=old.last_time)),
            ("last_seq", greatest(kind, old.last_seq, new.last_seq)),  # last: MySQL order
        ]

    return updates


def _key_updates(kind: str) -> Any:
    def updates(new: Any, old: Any) -> list[tuple[str, Any]]:
        newer = new.last_seq > old.last_seq
        # rows stored before the first values were kept have none: any first is older
        older = or_(old.first_seq.is_(None), new.first_seq < old.first_seq)
        return [
            ("count", old["count"] + new["count"]),
            ("first_step", least(kind, old.first_step, new.first_step)),
            ("last_step", greatest(kind, old.last_step, new.last_step)),
            ("kind", case((newer, new.kind), else_=old.kind)),
            ("last_value", case((newer, new.last_value), else_=old.last_value)),
            ("vmin", least(kind, old.vmin, new.vmin)),
            ("vmax", greatest(kind, old.vmax, new.vmax)),
            # (rows stored before these were kept may hold NULL: no literal, so the
            # compiled statement keeps exactly one parameter per column)
            ("vsum", case((old.vsum.is_(None), new.vsum), else_=old.vsum + new.vsum)),
            ("vcount", case((old.vcount.is_(None), new.vcount), else_=old.vcount + new.vcount)),
            ("first_value", case((older, new.first_value), else_=old.first_value)),
            ("first_seq", least(kind, old.first_seq, new.first_seq)),  # after first_value
            ("last_seq", greatest(kind, old.last_seq, new.last_seq)),  # last: MySQL order
        ]

    return updates


def upsert_sql(dialect: Dialect, kind: str, table: str) -> str:
    """The one-row upsert of ``table`` (``rollups`` or ``run_keys``) as driver SQL for
    database ``kind``, its parameters in the order of ``ROLLUP_COLUMNS`` / ``KEY_COLUMNS``."""
    sql = _UPSERT_SQL.get((table, kind))
    if sql is not None:
        return sql
    columns: tuple[str, ...]
    if table == "rollups":
        columns, keys, updates = (
            ROLLUP_COLUMNS,
            ["run_pk", "key_id", "level", "bucket"],
            _rollup_updates(kind),
        )
        target = s.rollups
    else:
        columns, keys, updates = KEY_COLUMNS, ["run_pk", "key_id"], _key_updates(kind)
        target = s.run_keys
    stmt = upsert_statement(kind, target, keys, updates).values({c: bindparam(c) for c in columns})
    compiled = stmt.compile(dialect=dialect)
    order = tuple(compiled.positiontup or ())
    if order != columns:
        raise RuntimeError(f"unexpected parameter order for the {table} upsert: {order}")
    sql = str(compiled)
    _UPSERT_SQL[(table, kind)] = sql
    return sql
