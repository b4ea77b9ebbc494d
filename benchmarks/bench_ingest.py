"""Ingest throughput: concurrent client runs POSTing gzip'ed batches into a real server.

Each client run sends its batches one at a time (as the SDK does: one batch in flight per
run), every batch ``STEPS_PER_BATCH`` history rows of 5 scalars. An ack means committed.
Measured into SQLite and PostgreSQL, each beside a same-run baseline: a bare SQL insert of
the same rows (``executemany`` into the same history table shape, one transaction per
batch, no HTTP, no validation, no rollups).

Target (issue 3): >= 100k steps/s into SQLite, p99 batch latency <= 250 ms.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import cpu_seconds, fresh_postgres, running_server

RUNS = int(os.environ.get("BENCH_RUNS", "4"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "60"))
STEPS_PER_BATCH = int(os.environ.get("BENCH_BATCH_STEPS", "1000"))
KEYS = ("loss", "acc", "lr", "grad_norm", "tokens_per_s")


def make_records(first_step: int) -> list[dict]:
    t0 = 1.7e9
    return [
        {
            "seq": step + 1,
            "type": "history",
            "step": step,
            "time": t0 + step * 0.01,
            "values": {
                "loss": 1.0 / (step + 1),
                "acc": (step % 100) / 100.0,
                "lr": 1e-3,
                "grad_norm": 0.5 + (step % 7) * 0.1,
                "tokens_per_s": 12000.0 + step % 13,
            },
        }
        for step in range(first_step, first_step + STEPS_PER_BATCH)
    ]


def make_bodies() -> list[bytes]:
    bodies = []
    for b in range(BATCHES):
        recs = make_records(b * STEPS_PER_BATCH)
        doc = {"first_seq": recs[0]["seq"], "last_seq": recs[-1]["seq"], "records": recs}
        bodies.append(gzip.compress(orjson.dumps(doc), compresslevel=1))
    return bodies


async def http_ingest(url: str, key: str, bodies: list[bytes]) -> tuple[float, list[float]]:
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        for r in range(RUNS):
            async with session.put(
                f"{url}/api/v1/runs/bench{r}", json={"project": "bench", "attempt": "a"}
            ) as resp:
                assert resp.status in (200, 201), await resp.text()

        async def one_run(r: int) -> None:
            for i, body in enumerate(bodies):
                t = time.perf_counter()
                async with session.post(
                    f"{url}/api/v1/runs/bench{r}/records",
                    data=body,
                    headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                ) as resp:
                    doc = await resp.json()
                    assert resp.status == 200 and doc["acked_seq"] == (i + 1) * STEPS_PER_BATCH, doc
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(one_run(r) for r in range(RUNS)))
        return time.perf_counter() - start, latencies


async def bare_insert(db_url: str) -> float:
    """Same rows, same history table, executemany per batch, no HTTP: the floor."""
    from gradexp.server.db import Database, placeholders
    from gradexp.server.migrate import migrate

    db = Database(db_url)
    await migrate(db)
    batches = [
        [
            (10_000 + r, rec["seq"], rec["step"], rec["time"], orjson.dumps(rec["values"]).decode())
            for rec in make_records(b * STEPS_PER_BATCH)
        ]
        for r in range(RUNS)
        for b in range(BATCHES)
    ]
    sql = f"INSERT INTO history (run_pk, seq, step, time, row_values) VALUES ({placeholders(db.kind, 5)})"

    def insert(conn, rows):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql(sql, rows)

    start = time.perf_counter()
    for rows in batches:
        await db.write(insert, rows)
    elapsed = time.perf_counter() - start
    await db.dispose()
    return elapsed


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def report(name: str, url: str, key: str, db_url: str, pid: int, bodies: list[bytes]) -> None:
    steps = RUNS * BATCHES * STEPS_PER_BATCH
    cpu0 = cpu_seconds(pid)
    elapsed, lat = asyncio.run(http_ingest(url, key, bodies))
    server_cpu = cpu_seconds(pid) - cpu0
    base = asyncio.run(bare_insert(db_url))
    rate, base_rate = steps / elapsed, steps / base
    print(
        f"{name:<11} HTTP ingest {rate:>10,.0f} steps/s   p50 {statistics.median(lat) * 1000:6.1f} ms"
        f"   p99 {pct(lat, 99) * 1000:6.1f} ms   | bare SQL insert {base_rate:>10,.0f} steps/s"
        f"   ratio {rate / base_rate:.2f}"
    )
    if server_cpu:
        # CPU per step is what a busy shared machine distorts least: it says what one free
        # core could sustain.
        print(
            f"{'':<11} server CPU {server_cpu * 1e6 / steps:6.1f} us/step"
            f" (one free core: ~{steps / server_cpu:,.0f} steps/s)"
        )


def main() -> None:
    print(
        f"{RUNS} concurrent runs x {BATCHES} batches x {STEPS_PER_BATCH} steps of {len(KEYS)} scalars"
        f" = {RUNS * BATCHES * STEPS_PER_BATCH:,} steps per measurement"
    )
    print("target: >= 100,000 steps/s into SQLite, p99 batch latency <= 250 ms")
    bodies = make_bodies()
    with running_server() as (url, key, db_url, pid):
        report("SQLite", url, key, db_url, pid, bodies)
    with fresh_postgres() as pg:
        if pg is None:
            print("PostgreSQL  not reachable: skipped")
            return
        with running_server(pg) as (url, key, db_url, pid):
            report("PostgreSQL", url, key, db_url, pid, bodies)


if __name__ == "__main__":
    main()
