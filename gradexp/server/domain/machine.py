"""What the machine did, on ingest: validating and storing the records ``system``,
``console`` and ``environment`` (docs/protocol.md).

Both functions run where the rest of a batch does: :func:`check_machine_record` while the
batch is decoded (before any transaction), :func:`apply_machine_records` inside the
batch's write transaction, with the run's row locked (``ingest.py``), after the records
already committed were dropped. So exactly-once holds for these records as for history.

Bounds: a record is bounded by the protocol's limits (``MAX_CONSOLE_LINES`` lines of at
most ``MAX_CONSOLE_LINE`` characters, ``MAX_SYSTEM_KEYS`` values, ``MAX_ENVIRONMENT_BYTES``
of environment). A run keeps at most :data:`MAX_LOG_BYTES` of console text per rank:
past it, new lines are dropped and counted (``console_totals.dropped_lines``), which the
logs endpoints report, and lines already stored may still be replaced.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from gradexp.protocol.wire import (
    MAX_CONSOLE_LINE,
    MAX_CONSOLE_LINES,
    MAX_ENVIRONMENT_BYTES,
    MAX_KEY_LENGTH,
    MAX_SYSTEM_KEYS,
)
from gradexp.server.domain.errors import Invalid
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import upsert_statement

__all__ = ["MACHINE_KINDS", "MAX_LOG_BYTES", "apply_machine_records", "check_machine_record"]

MACHINE_KINDS = frozenset(("system", "console", "environment"))
#: Console text kept per run and rank (bytes of UTF-8); past it new lines are dropped.
MAX_LOG_BYTES = 64 * 1024 * 1024
MAX_RANK = 32_767  # a SmallInteger
STREAMS = {"stdout": 0, "stderr": 1}
_MAX_ID = 2**62


def _bad(message: str) -> Invalid:
    return Invalid(message, code="bad_batch")


def _finite(x: Any) -> bool:
    t = type(x)
    return (t is float and x - x == 0.0) or t is int


def check_machine_record(rec: dict[str, Any], where: str) -> None:
    """Validate a ``system``, ``console`` or ``environment`` record (``Invalid`` if not)."""
    rank = rec.get("rank", 0)
    if type(rank) is not int or not 0 <= rank <= MAX_RANK:
        raise _bad(f"{where}.rank must be an integer from 0 to {MAX_RANK}")
    kind = rec["type"]
    if kind == "system":
        if not _finite(rec.get("time")):
            raise _bad(f"{where}.time must be a finite number (Unix seconds)")
        values = rec.get("values")
        if type(values) is not dict or len(values) > MAX_SYSTEM_KEYS:
            raise _bad(f"{where}.values must be an object of at most {MAX_SYSTEM_KEYS} numbers")
        for key, value in values.items():
            if not key or len(key) > MAX_KEY_LENGTH or any(ord(c) < 32 for c in key):
                raise _bad(f"{where}.values: key {key[:40]!r} is not a valid name")
            if not _finite(value) or type(value) is bool:
                raise _bad(f"{where}.values[{key!r}] must be a finite number")
    elif kind == "console":
        lines = rec.get("lines")
        if type(lines) is not list or not 0 < len(lines) <= MAX_CONSOLE_LINES:
            raise _bad(f"{where}.lines must be a list of 1 to {MAX_CONSOLE_LINES} lines")
        for i, line in enumerate(lines):
            if type(line) is not dict:
                raise _bad(f"{where}.lines[{i}] must be an object")
            line_id = line.get("id")
            if type(line_id) is not int or not 0 <= line_id < _MAX_ID:
                raise _bad(f"{where}.lines[{i}].id must be an integer >= 0")
            if not _finite(line.get("time")):
                raise _bad(f"{where}.lines[{i}].time must be a finite number")
            if line.get("stream") not in STREAMS:
                raise _bad(f'{where}.lines[{i}].stream must be "stdout" or "stderr"')
            text = line.get("text")
            if type(text) is not str or len(text) > MAX_CONSOLE_LINE:
                raise _bad(
                    f"{where}.lines[{i}].text must be a string of at most "
                    f"{MAX_CONSOLE_LINE} characters"
                )
    elif kind == "environment":
        env = rec.get("environment")
        if type(env) is not dict:
            raise _bad(f"{where}.environment must be an object")
        if len(orjson.dumps(env)) > MAX_ENVIRONMENT_BYTES:
            raise _bad(f"{where}.environment is over {MAX_ENVIRONMENT_BYTES} bytes")


def apply_machine_records(
    conn: Connection, kind: str, run_pk: int, records: list[dict[str, Any]]
) -> None:
    """Store a batch's new machine records (inside the batch's write transaction)."""
    samples: list[dict[str, Any]] = []
    lines: dict[tuple[int, int], tuple[int, float, int, str]] = {}  # (rank, id) -> latest
    environments: dict[int, dict[str, Any]] = {}
    for rec in records:
        rank = rec.get("rank", 0)
        rtype = rec["type"]
        if rtype == "system":
            samples.append(
                {
                    "run_pk": run_pk,
                    "rank": rank,
                    "seq": rec["seq"],
                    "time": float(rec["time"]),
                    "sample_values": orjson.dumps(rec["values"]).decode(),
                }
            )
        elif rtype == "console":
            seq = rec["seq"]
            for line in rec["lines"]:
                lines[(rank, line["id"])] = (
                    seq,
                    float(line["time"]),
                    STREAMS[line["stream"]],
                    line["text"],
                )
        else:
            environments[rank] = rec["environment"]
    if samples:
        # Core statements (not driver SQL): "rank" is a reserved word in MySQL 8, and
        # SQLAlchemy quotes it where needed. A sample every few seconds is no hot path.
        conn.execute(insert(s.system_samples), samples)
    if lines:
        _store_lines(conn, kind, run_pk, lines)
    if environments:
        now = time.time()
        conn.execute(
            _upsert(kind, "run_environments"),
            [
                {
                    "run_pk": run_pk,
                    "rank": rank,
                    "environment": orjson.dumps(env).decode(),
                    "updated_at": now,
                }
                for rank, env in environments.items()
            ],
        )


def _store_lines(
    conn: Connection,
    kind: str,
    run_pk: int,
    lines: dict[tuple[int, int], tuple[int, float, int, str]],
) -> None:
    """Upsert console lines by id, within each rank's byte cap, and count them."""
    c, t = s.console_lines, s.console_totals
    ranks = {rank for rank, _ in lines}
    totals = {
        int(rank): [int(n), int(b), int(dl), int(db)]
        for rank, n, b, dl, db in conn.execute(
            select(t.c.rank, t.c.lines, t.c.bytes, t.c.dropped_lines, t.c.dropped_bytes).where(
                t.c.run_pk == run_pk, t.c.rank.in_(ranks)
            )
        )
    }
    existing: set[tuple[int, int]] = set()
    keys = list(lines)
    for i in range(0, len(keys), 500):
        part = keys[i : i + 500]
        for rank in {r for r, _ in part}:
            ids = [line_id for r, line_id in part if r == rank]
            existing.update(
                (rank, int(line_id))
                for (line_id,) in conn.execute(
                    select(c.c.line_id).where(
                        c.c.run_pk == run_pk, c.c.rank == rank, c.c.line_id.in_(ids)
                    )
                )
            )
    rows = []
    for (rank, line_id), (seq, t_, stream, text) in lines.items():
        total = totals.setdefault(rank, [0, 0, 0, 0])
        size = len(text.encode()) + 1
        if (rank, line_id) not in existing:
            if total[1] + size > MAX_LOG_BYTES:
                total[2] += 1
                total[3] += size
                continue
            total[0] += 1
            total[1] += size
        rows.append(
            {
                "run_pk": run_pk,
                "rank": rank,
                "line_id": line_id,
                "seq": seq,
                "time": t_,
                "stream": stream,
                "text": text,
            }
        )
    if rows:
        conn.execute(_upsert(kind, "console_lines"), rows)
    conn.execute(
        _upsert(kind, "console_totals"),
        [
            {
                "run_pk": run_pk,
                "rank": rank,
                "lines": n,
                "bytes": b,
                "dropped_lines": dl,
                "dropped_bytes": db,
            }
            for rank, (n, b, dl, db) in totals.items()
        ],
    )


_UPSERTS: dict[tuple[str, str], Any] = {}
_KEYS = {
    "console_lines": (["run_pk", "rank", "line_id"], ["seq", "time", "stream", "text"]),
    "console_totals": (["run_pk", "rank"], ["lines", "bytes", "dropped_lines", "dropped_bytes"]),
    "run_environments": (["run_pk", "rank"], ["environment", "updated_at"]),
}


def _upsert(kind: str, table: str) -> Any:
    """The upsert of ``table`` for this database kind (built once per pair)."""
    stmt = _UPSERTS.get((kind, table))
    if stmt is None:
        keys, columns = _KEYS[table]
        stmt = upsert_statement(
            kind,
            getattr(s, table),
            keys,
            lambda new, old: [(col, new[col]) for col in columns],
        )
        _UPSERTS[(kind, table)] = stmt
    return stmt
