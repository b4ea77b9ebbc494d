"""History read: a 1M-step run, one key downsampled to 1,000 points over HTTP.

The run (5 scalars per step) is written through the server's own ingest code (in-process,
to save minutes of HTTP); then a real server answers
``GET /api/v1/runs/{id}/history?keys=loss&samples=1000``. Median of several reads, beside
a same-run baseline: the bare SQL scan a server without rollups would need (every row of
the run, the key pulled out of the JSON by the database: ``json_extract`` on SQLite,
``->>`` on PostgreSQL), with no HTTP.

Target: <= 200 ms for 1M steps downsampled to 1,000 points.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import fresh_postgres, running_server

STEPS = int(os.environ.get("BENCH_STEPS", "1000000"))
READS = int(os.environ.get("BENCH_READS", "7"))
BATCH = 5000


async def fill(db_url: str) -> None:
    """Write the run ``bench`` of STEPS steps through the ingest path."""
    from gradexp.server.domain.accounts.users import User, get_account
    from gradexp.server.domain.batch import decode_batch
    from gradexp.server.domain.ingest import apply_batch
    from gradexp.server.domain.runs import create_or_resume
    from gradexp.server.storage.db import Database

    db = Database(db_url)
    try:
        user = User(id=(await get_account(db, "bench")).id, name="bench")
        _, row = await create_or_resume(
            db,
            user,
            "bench",
            {"project": "bench", "name": "bench", "config": {}, "tags": [], "notes": None, "group": None,
             "attempt": "a", "host": {}, "started_at": None, "resume": False, "job_type": None},
        )  # fmt: skip
        ids: dict[str, int] = {}
        for first in range(0, STEPS, BATCH):
            recs = [
                {"seq": s + 1, "type": "history", "step": s, "time": 1.7e9 + s * 0.01,
                 "values": {"loss": 1.0 / (s + 1), "acc": (s % 100) / 100, "lr": 1e-3,
                            "grad_norm": 0.5 + (s % 7) / 10, "tokens_per_s": 12000.0 + s % 13}}
                for s in range(first, min(STEPS, first + BATCH))
            ]  # fmt: skip
            body = orjson.dumps(
                {"first_seq": recs[0]["seq"], "last_seq": recs[-1]["seq"], "records": recs}
            )
            result = await db.write(apply_batch, db.kind, row.pk, decode_batch(body), dict(ids))
            ids.update(result.key_ids)
    finally:
        await db.dispose()


async def bare_scan(db_url: str) -> float:
    """Seconds for the SQL scan of every row's ``loss`` (no HTTP)."""
    from gradexp.server.storage.db import Database

    db = Database(db_url)
    extract = (
        "json_extract(row_values, '$.loss')"
        if db.kind == "sqlite"
        else "(row_values::json->>'loss')::float8"
    )
    sql = f"SELECT step, {extract} FROM history WHERE run_pk = (SELECT pk FROM runs WHERE id = 'bench') ORDER BY seq"
    try:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            async with db.read() as conn:
                result = await conn.exec_driver_sql(sql)
                n = len(result.all())
            times.append(time.perf_counter() - start)
            assert n == STEPS, n
        return statistics.median(times)
    finally:
        await db.dispose()


def http_reads(url: str, key: str, query: str) -> tuple[float, int]:
    times, points = [], 0
    for _ in range(READS):
        req = urllib.request.Request(
            f"{url}/api/v1/runs/bench/history?{query}", headers={"Authorization": f"Bearer {key}"}
        )
        start = time.perf_counter()
        with urllib.request.urlopen(req) as resp:
            doc = orjson.loads(resp.read())
        times.append(time.perf_counter() - start)
        points = len(doc["series"]["loss"]["step"])
    return statistics.median(times), points


def measure(name: str, db_url_or_none: str | None) -> None:
    with running_server(db_url_or_none) as (url, key, db_url, _pid):
        started = time.perf_counter()
        asyncio.run(fill(db_url))
        filled = time.perf_counter() - started
        read, points = http_reads(url, key, "keys=loss&samples=1000")
        zoom, zpoints = http_reads(
            url, key, f"keys=loss&samples=1000&min_step={STEPS // 2}&max_step={STEPS // 2 + 9999}"
        )
        base = asyncio.run(bare_scan(db_url))
    print(
        f"{name:<11} downsampled read {read * 1000:7.1f} ms ({points} points)   "
        f"| bare SQL scan {base * 1000:8.1f} ms   ratio {read / base:.3f}"
        f"   [10k-step zoom: {zoom * 1000:.1f} ms, {zpoints} points; filled in {filled:.0f} s]"
    )


def main() -> None:
    print(
        f"a run of {STEPS:,} steps x 5 scalars; median of {READS} HTTP reads of one key, samples=1000"
    )
    print("target: <= 200 ms")
    measure("SQLite", None)
    with fresh_postgres() as pg:
        if pg is None:
            print("PostgreSQL  not reachable: skipped")
            return
        measure("PostgreSQL", pg)


if __name__ == "__main__":
    main()
