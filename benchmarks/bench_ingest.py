"""Ingest throughput: concurrent client runs POSTing gzip'ed batches into a real server.

Each client run sends its batches one at a time and waits for each ack (ack = committed),
every batch history rows of 5 scalars. The bodies are built and gzip'ed before the clock
starts, so the clients cost little and the server gets the CPU. Two batch sizes:

- ``sdk``: what the SDK sends from a run logging fast: 1 MiB of records before gzip
  (about 6,500 of these steps), its default ``batch_bytes``;
- ``1k``: 1,000 steps, what a run logging ~1,000 steps/s sends (its 1 s batch interval).

Latency has a floor set by the load itself (Little's law): with R runs each holding one
batch of B steps in flight, a server taking X steps/s answers in R * B / X on average.
At 100k steps/s that is 40 ms for 4 runs of 1k-step batches and 260 ms for 4 runs of
1 MiB batches, so the p99 target (250 ms) is meaningful for the first; the benchmark
prints the floor beside each measured p99.

Measured into SQLite (3 rounds, medians) and PostgreSQL (one round), each beside a
same-run baseline: a bare SQL insert of the same rows (``executemany`` into the same
history table, one transaction per batch, no HTTP, no validation, no rollups).
Each measurement starts a fresh server and, before the clock starts, replays one batch
into a run of its own until the server's decode workers are up (a long-running server
has them running). Also printed: the server's CPU time per step, its ingest decode workers included (what a
busy shared machine distorts least), and how it splits between its event-loop thread
(HTTP, small batches' decoding) and the rest: the SQLite writer thread and the worker
processes that decode big batches (``GRADEXP_INGEST_WORKERS``; set it to 0 to compare).

Target: >= 100k steps/s into SQLite, p99 batch latency <= 250 ms.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import fresh_postgres, running_server, thread_cpu_seconds, tree_cpu_seconds

RUNS = int(os.environ.get("BENCH_RUNS", "4"))
STEPS = int(os.environ.get("BENCH_STEPS", "240000"))  # per measurement, all runs together
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SDK_BATCH_BYTES = 1024 * 1024  # gradexp.Settings.batch_bytes
KEYS = ("loss", "acc", "lr", "grad_norm", "tokens_per_s")


def make_records(first_step: int, n: int) -> list[dict]:
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
        for step in range(first_step, first_step + n)
    ]


def sdk_batch_steps() -> int:
    """How many of these records fit in the SDK's 1 MiB batches."""
    sample = make_records(100_000, 1000)
    per_record = sum(len(orjson.dumps(r)) + 1 for r in sample) / len(sample)
    return int(SDK_BATCH_BYTES // per_record)


def make_bodies(batch_steps: int) -> list[bytes]:
    """Every batch of one run, gzip'ed like the SDK does (level 1)."""
    bodies = []
    for b in range(STEPS // RUNS // batch_steps):
        recs = make_records(b * batch_steps, batch_steps)
        doc = {"first_seq": recs[0]["seq"], "last_seq": recs[-1]["seq"], "records": recs}
        bodies.append(gzip.compress(orjson.dumps(doc), compresslevel=1))
    return bodies


async def http_ingest(
    url: str, key: str, bodies: list[bytes], batch_steps: int
) -> tuple[float, list[float]]:
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
                    assert resp.status == 200 and doc["acked_seq"] == (i + 1) * batch_steps, doc
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(one_run(r) for r in range(RUNS)))
        return time.perf_counter() - start, latencies


async def bare_insert(db_url: str, batch_steps: int, batches: int) -> float:
    """Same rows, same history table, executemany per batch, no HTTP: the floor."""
    from gradexp.server.storage.db import Database, placeholders
    from gradexp.server.storage.migrate import migrate

    db = Database(db_url)
    await migrate(db)
    rows = [
        [
            (10_000 + r, rec["seq"], rec["step"], rec["time"], orjson.dumps(rec["values"]).decode())
            for rec in make_records(b * batch_steps, batch_steps)
        ]
        for r in range(RUNS)
        for b in range(batches)
    ]
    sql = f"INSERT INTO history (run_pk, seq, step, time, row_values) VALUES ({placeholders(db.kind, 5)})"

    def insert(conn, part):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql(sql, part)

    start = time.perf_counter()
    for part in rows:
        await db.write(insert, part)
    elapsed = time.perf_counter() - start
    await db.dispose()
    return elapsed


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


@dataclass
class Result:
    rate: float
    p50: float
    p99: float
    cpu: float  # server CPU seconds per step
    loop_cpu: float  # ... of it on the event loop's thread
    base_rate: float


async def warm_up(url: str, key: str, body: bytes, seconds: float = 30.0) -> None:
    """Replay one batch into a run of its own until a decode worker has decoded one: a
    fresh server starts its workers with the first big batch, and a long-running server
    has them running. (Small batches are decoded in the server process anyway.)"""
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.put(
            f"{url}/api/v1/runs/warmup", json={"project": "bench", "attempt": "a"}
        ) as resp:
            assert resp.status in (200, 201), await resp.text()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            async with session.post(
                f"{url}/api/v1/runs/warmup/records",
                data=body,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            ) as resp:
                assert resp.status == 200, await resp.text()
            async with session.get(f"{url}/healthz") as resp:
                if (await resp.json()).get("worker_batches", 0) > 0:
                    return
            await asyncio.sleep(0.1)


def measure(db_url: str | None, bodies: list[bytes], batch_steps: int) -> Result:
    with running_server(db_url) as (url, key, db, pid):
        if os.environ.get("GRADEXP_INGEST_WORKERS", "").strip() != "0":
            asyncio.run(warm_up(url, key, bodies[0]))
        steps = RUNS * len(bodies) * batch_steps
        cpu0, loop0 = tree_cpu_seconds(pid), thread_cpu_seconds(pid, pid)
        elapsed, lat = asyncio.run(http_ingest(url, key, bodies, batch_steps))
        cpu, loop_cpu = tree_cpu_seconds(pid) - cpu0, thread_cpu_seconds(pid, pid) - loop0
        base = asyncio.run(bare_insert(db, batch_steps, len(bodies)))
    return Result(
        steps / elapsed,
        statistics.median(lat),
        pct(lat, 99),
        cpu / steps,
        loop_cpu / steps,
        steps / base,
    )


def report(name: str, batch_steps: int, results: list[Result]) -> None:
    def med(attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in results)

    rate, base = med("rate"), med("base_rate")
    floor = RUNS * batch_steps / rate
    print(
        f"{name:<22} {rate:>9,.0f} steps/s   p50 {med('p50') * 1e3:5.0f} ms   p99 {med('p99') * 1e3:5.0f} ms"
        f" (floor {floor * 1e3:3.0f})   | bare SQL insert {base:>9,.0f} rows/s   ratio {rate / base:.2f}"
    )
    cpu, loop_cpu = med("cpu"), med("loop_cpu")
    if cpu:
        print(
            f"{'':<22} server CPU {cpu * 1e6:5.1f} us/step (event loop {loop_cpu * 1e6:4.1f},"
            f" writer thread and decode workers {(cpu - loop_cpu) * 1e6:4.1f}); one core's worth: ~{1 / cpu:,.0f} steps/s"
        )
    if len(results) > 1:
        print(f"{'':<22} rounds: " + ", ".join(f"{r.rate:,.0f}" for r in results) + " steps/s")


def main() -> None:
    sdk_steps = sdk_batch_steps()
    configs = [(f"sdk ({sdk_steps:,}-step) batches", sdk_steps), ("1k-step batches", 1000)]
    print(
        f"{RUNS} concurrent runs, {STEPS:,} steps of {len(KEYS)} scalars per measurement,"
        f" one batch in flight per run; load average {os.getloadavg()[0]:.1f}"
    )
    print("target: >= 100,000 steps/s into SQLite, p99 batch latency <= 250 ms")
    for name, batch_steps in configs:
        bodies = make_bodies(batch_steps)
        results = [measure(None, bodies, batch_steps) for _ in range(ROUNDS)]
        report(f"SQLite, {name}", batch_steps, results)
    with fresh_postgres() as pg:
        if pg is None:
            print("PostgreSQL  not reachable: skipped")
            return
        name, batch_steps = configs[0]
        report(
            f"PostgreSQL, {name}", batch_steps, [measure(pg, make_bodies(batch_steps), batch_steps)]
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
