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

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp._protocol import HISTOGRAM_STATS, STAT_SEPARATOR, numeric_value
from gradexp.server import rollup
from gradexp.server import schema as s
from gradexp.server.batch import Batch
from gradexp.server.db import Database
from gradexp.server.errors import ApiError

_dumps = orjson.dumps


@dataclass
class IngestResult:
    """What a committed batch changed (the reply, and what to do after the commit)."""

    acked_seq: int
    applied: int
    finished: bool = False
    key_ids: dict[str, int] = field(default_factory=dict)  # to cache once committed


class KeyIdCache:
    """Per-process map ``run_pk -> {key: key_id}``, filled only after a commit.

    Key ids never change once committed, so caching them is safe across processes; a key
    missing here is looked up (or assigned) under the run lock. Bounded LRU over runs.
    """

    def __init__(self, max_runs: int = 256) -> None:
        self._runs: OrderedDict[int, dict[str, int]] = OrderedDict()
        self._max = max_runs

    def get(self, run_pk: int) -> dict[str, int]:
        ids = self._runs.get(run_pk)
        if ids is None:
            return {}
        self._runs.move_to_end(run_pk)
        return ids

    def add(self, run_pk: int, new: dict[str, int]) -> None:
        ids = self._runs.get(run_pk)
        if ids is None:
            ids = self._runs[run_pk] = {}
            if len(self._runs) > self._max:
                self._runs.popitem(last=False)
        ids.update(new)


def _kind(value: Any) -> str | None:
    t = type(value)
    if t is float or t is int:
        return "number"
    if t is bool:
        return "bool"
    if t is str:
        return "string"
    if t is dict:
        kind = value.get("_type")
        return "number" if kind == "float" else kind
    return None


class _KeyStats:
    """A key's contribution to the key index from one batch."""

    __slots__ = ("count", "first_step", "kind", "last_seq", "last_step", "last_value")

    def __init__(self, kind: str, step: int, seq: int, value: Any) -> None:
        self.kind = kind
        self.count = 1
        self.first_step = step
        self.last_step = step
        self.last_seq = seq
        self.last_value = value

    def add(self, kind: str, step: int, seq: int, value: Any) -> None:
        self.count += 1
        if step < self.first_step:
            self.first_step = step
        if step > self.last_step:
            self.last_step = step
        self.kind = kind
        self.last_seq = seq
        self.last_value = value


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
    for name, value in rec.items():
        if name in ("seq", "type"):
            continue
        if isinstance(value, dict):
            bucket = current.get(name)
            if not isinstance(bucket, dict):
                bucket = current[name] = {}
            for k, v in value.items():
                bucket[k] = bucket.get(k, 0) + v
        else:
            old = current.get(name)
            current[name] = (old if isinstance(old, (int, float)) else 0) + value


async def apply_batch(
    conn: AsyncConnection,
    db: Database,
    run_pk: int,
    batch: Batch,
    key_cache: KeyIdCache,
) -> IngestResult:
    """Apply a validated batch to a run inside the caller's transaction."""
    now = time.time()
    stmt = select(
        s.runs.c.acked_seq,
        s.runs.c.state,
        s.runs.c.finish_seq,
        s.runs.c.finish_exit_code,
        s.runs.c.finish_time,
        s.runs.c.last_step,
    ).where(s.runs.c.pk == run_pk)
    if db.lock_rows:
        stmt = stmt.with_for_update()
    run = (await conn.execute(stmt)).one()
    acked = int(run.acked_seq)
    ranges = [
        (int(r.first_seq), int(r.last_seq))
        for r in await conn.execute(
            select(s.seq_ranges.c.first_seq, s.seq_ranges.c.last_seq).where(
                s.seq_ranges.c.run_pk == run_pk
            )
        )
    ]

    records = batch.records
    if batch.last_seq <= acked:
        await conn.execute(update(s.runs).where(s.runs.c.pk == run_pk).values(heartbeat_at=now))
        return IngestResult(acked_seq=acked, applied=0)
    if batch.first_seq <= acked or ranges:
        records = [
            r
            for r in records
            if r["seq"] > acked and not any(lo <= r["seq"] <= hi for lo, hi in ranges)
        ]

    key_ids = dict(key_cache.get(run_pk))
    new_keys: dict[str, int] = {}
    next_key_id: int | None = None

    async def key_id_for(names: dict[str, None]) -> None:
        # Resolve ids for keys this process has not cached: committed ones from the key
        # index, new ones as max+1 (safe: we hold the run lock).
        nonlocal next_key_id
        missing = [n for n in names if n not in key_ids]
        if not missing:
            return
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            for row in await conn.execute(
                select(s.run_keys.c.key_name, s.run_keys.c.key_id).where(
                    s.run_keys.c.run_pk == run_pk, s.run_keys.c.key_name.in_(chunk)
                )
            ):
                key_ids[row.key_name] = int(row.key_id)
        if next_key_id is None:
            top = (
                await conn.execute(
                    select(s.run_keys.c.key_id)
                    .where(s.run_keys.c.run_pk == run_pk)
                    .order_by(s.run_keys.c.key_id.desc())
                    .limit(1)
                )
            ).scalar()
            next_key_id = (int(top) if top is not None else 0) + 1
        for n in missing:
            if n not in key_ids:
                key_ids[n] = next_key_id
                new_keys[n] = next_key_id
                next_key_id += 1

    history_rows: list[tuple[Any, ...]] = []
    typed_rows: list[dict[str, Any]] = []
    points: list[tuple[int, int, int, float, float]] = []
    key_stats: dict[str, _KeyStats] = {}
    config_update: dict[str, Any] | None = None
    summary_update: dict[str, Any] | None = None
    telemetry: list[dict[str, Any]] = []
    file_recs: list[dict[str, Any]] = []
    finish: dict[str, Any] | None = None
    last_step = int(run.last_step)

    # First pass: collect every key name (in order of appearance: ids follow it), so ids
    # are resolved with one query.
    names: dict[str, None] = {}
    for rec in records:
        if rec["type"] == "history":
            for key, value in rec["values"].items():
                if key not in names:
                    names[key] = None
                if type(value) is dict and value.get("_type") in ("histogram", "tensor"):
                    for st in HISTOGRAM_STATS:
                        if st in value:
                            names.setdefault(f"{key}{STAT_SEPARATOR}{st}", None)
    await key_id_for(names)

    for rec in records:
        rtype = rec["type"]
        seq = rec["seq"]
        if rtype == "history":
            step = rec["step"]
            t = rec["time"]
            values = rec["values"]
            if step > last_step:
                last_step = step
            history_rows.append((run_pk, seq, step, t, _dumps(values).decode()))
            for key, value in values.items():
                vt = type(value)
                if vt is float or vt is int:
                    kind = "number"
                    points.append((key_ids[key], step, seq, t, value))
                elif value is None:
                    continue
                else:
                    kind = _kind(value) or "string"
                    num = numeric_value(value)
                    if num is not None:
                        points.append((key_ids[key], step, seq, t, num))
                    elif kind in ("histogram", "tensor", "image"):
                        typed_rows.append(
                            {
                                "run_pk": run_pk,
                                "key_id": key_ids[key],
                                "seq": seq,
                                "step": step,
                                "time": t,
                                "value": _dumps(value).decode(),
                            }
                        )
                        if kind != "image":
                            for st in HISTOGRAM_STATS:
                                if st in value:
                                    derived = f"{key}{STAT_SEPARATOR}{st}"
                                    sv = numeric_value(value[st])
                                    if sv is None:
                                        continue
                                    points.append((key_ids[derived], step, seq, t, sv))
                                    ks = key_stats.get(derived)
                                    if ks is None:
                                        key_stats[derived] = _KeyStats(
                                            "number", step, seq, value[st]
                                        )
                                    else:
                                        ks.add("number", step, seq, value[st])
                ks = key_stats.get(key)
                if ks is None:
                    key_stats[key] = _KeyStats(kind, step, seq, value)
                else:
                    ks.add(kind, step, seq, value)
        elif rtype == "config":
            config_update = {**(config_update or {}), **rec["update"]}
        elif rtype == "summary":
            summary_update = {**(summary_update or {}), **rec["update"]}
        elif rtype == "telemetry":
            telemetry.append(rec)
        elif rtype == "file":
            file_recs.append(rec)
        elif rtype == "finish":
            finish = rec

    # Files must reference blobs already stored (the SDK PUTs them first).
    if file_recs:
        shas = {f["sha256"] for f in file_recs}
        present = {
            r[0]
            for r in await conn.execute(
                select(s.blobs.c.sha256).where(
                    s.blobs.c.run_pk == run_pk, s.blobs.c.sha256.in_(shas)
                )
            )
        }
        missing = sorted(shas - present)
        if missing:
            raise ApiError(
                409,
                "blob_missing",
                f"file record references blob {missing[0]} that was not uploaded: PUT it first",
                sha256=missing,
            )

    if history_rows:
        await conn.exec_driver_sql(
            "INSERT INTO history (run_pk, seq, step, time, row_values) VALUES "
            f"({db.placeholders(5)})",
            history_rows,
        )
    if typed_rows:
        await conn.execute(insert(s.typed_values), typed_rows)
    if points:
        await _write_rollups(conn, db, run_pk, points)
    if key_stats:
        await _write_key_index(conn, db, run_pk, key_stats, key_ids, new_keys)
    if file_recs:
        by_path = {f["path"]: f for f in file_recs}  # the last record for a path wins
        stmt_files = db.upsert(
            s.files,
            ["run_pk", "path"],
            lambda new, old: [
                ("sha256", new.sha256),
                ("size", new.size),
                ("content_type", new.content_type),
                ("created_at", new.created_at),
            ],
        )
        await conn.execute(
            stmt_files,
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

    # Sequence bookkeeping: the committed ranges above the ack, then the new ack.
    seqs = [r["seq"] for r in records]
    new_ranges = list(ranges)
    if seqs:
        # The batch's unseen records form runs of consecutive numbers between known ranges.
        lo = prev = seqs[0]
        for q in seqs[1:]:
            if q != prev + 1:
                new_ranges.append((lo, prev))
                lo = q
            prev = q
        new_ranges.append((lo, prev))
    merged = _merge_ranges(new_ranges)
    new_acked = acked
    while merged and merged[0][0] <= new_acked + 1:
        new_acked = max(new_acked, merged.pop(0)[1])
    if merged != ranges:
        if ranges:
            await conn.execute(delete(s.seq_ranges).where(s.seq_ranges.c.run_pk == run_pk))
        if merged:
            await conn.execute(
                insert(s.seq_ranges),
                [{"run_pk": run_pk, "first_seq": lo, "last_seq": hi} for lo, hi in merged],
            )

    run_update: dict[str, Any] = {
        "acked_seq": new_acked,
        "last_step": last_step,
        "heartbeat_at": now,
        "updated_at": now,
    }
    if config_update is not None or summary_update is not None or telemetry:
        current = (
            await conn.execute(
                select(s.runs.c.config, s.runs.c.summary, s.runs.c.telemetry).where(
                    s.runs.c.pk == run_pk
                )
            )
        ).one()
        if config_update is not None:
            run_update["config"] = _dumps(
                {**orjson.loads(current.config), **config_update}
            ).decode()
        if summary_update is not None:
            run_update["summary"] = _dumps(
                {**orjson.loads(current.summary), **summary_update}
            ).decode()
        if telemetry:
            merged_tel = orjson.loads(current.telemetry)
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
    if finish_seq is not None and new_acked >= finish_seq and run.state == "running":
        finished = True
        run_update.update(
            state="finished" if exit_code == 0 else "failed",
            exit_code=exit_code,
            finished_at=finish_time,
        )
    await conn.execute(update(s.runs).where(s.runs.c.pk == run_pk).values(**run_update))
    return IngestResult(
        acked_seq=new_acked, applied=len(records), finished=finished, key_ids=key_ids
    )


async def _write_rollups(
    conn: AsyncConnection,
    db: Database,
    run_pk: int,
    points: list[tuple[int, int, int, float, float]],
) -> None:
    buckets = rollup.build(points)
    rows = [
        {
            "run_pk": run_pk,
            "key_id": key_id,
            "level": level,
            "bucket": bucket,
            "vmin": b[0],
            "vmax": b[1],
            "vsum": b[2],
            "vcount": b[3],
            "flags": b[4],
            "last": b[5],
            "last_code": b[6],
            "last_seq": b[7],
            "last_step": b[8],
            "last_time": b[9],
        }
        for (key_id, level, bucket), b in buckets.items()
    ]
    await conn.execute(_rollup_upsert(db), rows)


# Compiled-once upsert statements, per dialect.
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _rollup_upsert(db: Database) -> Any:
    stmt = _STATEMENTS.get(("rollups", db.kind))
    if stmt is not None:
        return stmt

    def updates(new: Any, old: Any) -> list[tuple[str, Any]]:
        from sqlalchemy import case

        newer = new.last_seq > old.last_seq
        return [
            ("vmin", db.least(old.vmin, new.vmin)),
            ("vmax", db.greatest(old.vmax, new.vmax)),
            ("vsum", old.vsum + new.vsum),
            ("vcount", old.vcount + new.vcount),
            ("flags", old.flags.op("|")(new.flags)),
            ("last", case((newer, new["last"]), else_=old["last"])),
            ("last_code", case((newer, new.last_code), else_=old.last_code)),
            ("last_step", case((newer, new.last_step), else_=old.last_step)),
            ("last_time", case((newer, new.last_time), else_=old.last_time)),
            ("last_seq", db.greatest(old.last_seq, new.last_seq)),  # last: MySQL order
        ]

    stmt = db.upsert(s.rollups, ["run_pk", "key_id", "level", "bucket"], updates)
    _STATEMENTS[("rollups", db.kind)] = stmt
    return stmt


async def _write_key_index(
    conn: AsyncConnection,
    db: Database,
    run_pk: int,
    key_stats: dict[str, _KeyStats],
    key_ids: dict[str, int],
    new_keys: dict[str, int],
) -> None:
    rows = [
        {
            "run_pk": run_pk,
            "key_id": key_ids[key],
            "key_name": key,
            "kind": ks.kind,
            "count": ks.count,
            "first_step": ks.first_step,
            "last_step": ks.last_step,
            "last_seq": ks.last_seq,
            "last_value": _dumps(ks.last_value).decode(),
        }
        for key, ks in key_stats.items()
    ]
    await conn.execute(_key_upsert(db), rows)


def _key_upsert(db: Database) -> Any:
    stmt = _STATEMENTS.get(("run_keys", db.kind))
    if stmt is not None:
        return stmt

    def updates(new: Any, old: Any) -> list[tuple[str, Any]]:
        from sqlalchemy import case

        newer = new.last_seq > old.last_seq
        return [
            ("count", old["count"] + new["count"]),
            ("first_step", db.least(old.first_step, new.first_step)),
            ("last_step", db.greatest(old.last_step, new.last_step)),
            ("kind", case((newer, new.kind), else_=old.kind)),
            ("last_value", case((newer, new.last_value), else_=old.last_value)),
            ("last_seq", db.greatest(old.last_seq, new.last_seq)),  # last: MySQL order
        ]

    stmt = db.upsert(s.run_keys, ["run_pk", "key_id"], updates)
    _STATEMENTS[("run_keys", db.kind)] = stmt
    return stmt
