"""Server CPU per small batch: what one run logging a little, once a second, costs.

The load a team's server sees is many runs each sending a small batch every second. Here
each batch is 10 history rows of 2 scalars, gzip'ed, with an API key, POSTed by
``BENCH_RUNS`` concurrent client runs (each waits for its ack before the next batch). The
figure is the server process tree's CPU time (its decode workers included) per batch,
beside two same-run baselines:

- ``aiohttp constant``: a bare aiohttp server (a process of its own) that reads the same
  request and answers it with a constant: the floor of HTTP in Python on this machine;
- ``bare insert``: the same 10 rows inserted with the database's own driver, one
  transaction per batch, no HTTP, no validation, no rollups (this process's CPU).

Measured on SQLite and on PostgreSQL (when reachable). With ``BENCH_PROFILE=1`` (and
py-spy installed) py-spy samples the server during the timed part (its own CPU inflates the
figure a little; read the profile) and the top functions, self and inclusive, are printed.

Target: <= 1 ms of server CPU per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import free_port, fresh_postgres, running_server, tree_cpu_seconds

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "3000"))  # per measurement, all runs together
DBS = os.environ.get("BENCH_DB", "both")  # sqlite, postgresql or both
ROWS = 10
WARMUP = 5  # batches per run before the clock starts (key ids cached, connections open)


def batch_body(run_index: int, batch_index: int) -> bytes:
    """Batch number ``batch_index`` of a run: 10 rows of 2 scalars, gzip'ed."""
    first = batch_index * ROWS + 1
    t0 = 1.7e9 + batch_index
    records = [
        {
            "seq": seq,
            "type": "history",
            "step": seq - 1,
            "time": t0 + (seq - first) * 0.1,
            "values": {"loss": 1.0 / seq, "acc": (seq % 100) / 100.0 + run_index * 1e-6},
        }
        for seq in range(first, first + ROWS)
    ]
    return gzip.compress(
        orjson.dumps({"first_seq": first, "last_seq": first + ROWS - 1, "records": records}),
        compresslevel=6,
    )


def _make_bodies(run_ids: list[str]) -> dict[str, list[bytes]]:
    per_run = BATCHES // len(run_ids)
    return {r: [batch_body(i, b) for b in range(WARMUP + per_run)] for i, r in enumerate(run_ids)}


def _measure(url: str, key: str, pid: int, create: bool = True) -> tuple[float, float]:
    """(server CPU ms per batch, batches per second) for one load of small batches."""
    run_ids = [f"small{i:04d}{os.getpid() % 10000:04d}" for i in range(RUNS)]
    bodies = _make_bodies(run_ids)
    n = sum(len(b) - WARMUP for b in bodies.values())
    box: dict[str, float] = {}

    async def main() -> None:
        # Warm up, then take the CPU reading right before the timed part.
        headers = {"Authorization": f"Bearer {key}", "Content-Encoding": "gzip"}
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), headers=headers
        ) as session:
            if create:
                for run_id in run_ids:
                    async with session.put(
                        f"{url}/api/v1/runs/{run_id}",
                        json={"project": "small", "name": run_id, "attempt": "a1"},
                        headers={"Content-Encoding": "identity"},
                    ) as resp:
                        assert resp.status in (200, 201), await resp.text()

            async def run(run_id: str, part: list[bytes]) -> None:
                for body in part:
                    async with session.post(
                        f"{url}/api/v1/runs/{run_id}/records", data=body
                    ) as resp:
                        await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"{resp.status}: {await resp.text()}")

            await asyncio.gather(*(run(r, bodies[r][:WARMUP]) for r in run_ids))
            spy = _spy_start(pid) if create else None
            cpu0 = tree_cpu_seconds(pid)
            t0 = time.perf_counter()
            await asyncio.gather(*(run(r, bodies[r][WARMUP:]) for r in run_ids))
            box["wall"] = time.perf_counter() - t0
            box["cpu"] = tree_cpu_seconds(pid) - cpu0
            _spy_report(spy, pid)

    asyncio.run(main())
    return box["cpu"] / n * 1000, n / box["wall"]


def _measure_heartbeats(url: str, key: str, pid: int) -> float:
    """Server CPU ms per heartbeat (what a silent run sends every 30 s), runs of
    ``_measure`` (already created)."""
    run_ids = [f"small{i:04d}{os.getpid() % 10000:04d}" for i in range(RUNS)]
    per_run = max(1, BATCHES // len(run_ids) // 2)

    async def main() -> float:
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), headers=headers
        ) as session:

            async def run(run_id: str, n: int) -> None:
                for _ in range(n):
                    async with session.post(f"{url}/api/v1/runs/{run_id}/heartbeat") as resp:
                        await resp.read()
                        assert resp.status == 200

            await asyncio.gather(*(run(r, 2) for r in run_ids))
            cpu0 = tree_cpu_seconds(pid)
            await asyncio.gather(*(run(r, per_run) for r in run_ids))
            return (tree_cpu_seconds(pid) - cpu0) / (per_run * len(run_ids)) * 1000

    return asyncio.run(main())


_CONSTANT_SERVER = """
import sys
from aiohttp import web
async def handle(request):
    await request.read()
    return web.json_response({"acked_seq": 10})
app = web.Application()
app.router.add_route("*", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


@contextlib.contextmanager
def constant_server() -> Iterator[tuple[str, int]]:
    """A bare aiohttp server answering every request with a constant: (url, pid)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _CONSTANT_SERVER, str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def _rows(run_pk: int, b: int) -> list[tuple]:
    first = b * ROWS + 1
    return [
        (run_pk, seq, seq - 1, 1.7e9 + seq, orjson.dumps({"1": 1.0 / seq, "2": 0.5}))
        for seq in range(first, first + ROWS)
    ]


def bare_insert_sqlite(n: int) -> float:
    """CPU ms per batch of inserting the rows with sqlite3, one transaction each."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/bare.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE history (run_pk INTEGER, seq INTEGER, step INTEGER, time REAL, "
            "row_values BLOB, PRIMARY KEY (run_pk, seq))"
        )
        batches = [_rows(b % RUNS, b) for b in range(n)]
        cpu0 = time.process_time()
        for rows in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        cpu = time.process_time() - cpu0
        conn.close()
    return cpu / n * 1000


def bare_insert_postgres(db_url: str, n: int) -> float:
    """CPU ms per batch (this process) of inserting the rows with asyncpg."""
    import asyncpg

    async def main() -> float:
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute(
                "CREATE TABLE bare_history (run_pk INTEGER, seq INTEGER, step INTEGER, "
                "time DOUBLE PRECISION, row_values BYTEA, PRIMARY KEY (run_pk, seq))"
            )
            batches = [_rows(b % RUNS, b) for b in range(n)]
            cpu0 = time.process_time()
            for rows in batches:
                async with conn.transaction():
                    await conn.executemany(
                        "INSERT INTO bare_history VALUES ($1, $2, $3, $4, $5)", rows
                    )
            return (time.process_time() - cpu0) / n * 1000
        finally:
            await conn.close()

    return asyncio.run(main())


def main() -> None:
    # Every batch is measured: the servers' pacing (429 while batches queue up on a busy
    # machine) is turned off, as it refuses before doing any work.
    os.environ.setdefault("GRADEXP_SERVER_INGEST_TARGET", "60")
    os.environ.setdefault("GRADEXP_SERVER_MAX_INGEST_IN_FLIGHT", "100000")
    print(
        f"small batches: {RUNS} runs, {BATCHES} batches of {ROWS} rows x 2 scalars "
        "(gzip, API key); server process tree CPU per batch"
    )
    with constant_server() as (url, pid):
        base_ms, base_rate = _measure(url, "gx_none", pid, create=False)
    print(f"  {'aiohttp constant':<28} {base_ms:6.3f} ms CPU/batch  {base_rate:7.0f} batches/s")
    print(f"  {'bare insert (sqlite3)':<28} {bare_insert_sqlite(BATCHES):6.3f} ms CPU/batch")
    if DBS in ("both", "sqlite"):
        with running_server() as (url, key, _db, pid):
            ms, rate = _measure(url, key, pid)
            beat = _measure_heartbeats(url, key, pid)
        print(f"  {'gradexp server, SQLite':<28} {ms:6.3f} ms CPU/batch  {rate:7.0f} batches/s")
        print(f"  {'  a heartbeat, SQLite':<28} {beat:6.3f} ms CPU")
    if DBS not in ("both", "postgresql"):
        return
    with fresh_postgres() as pg:
        if pg is None:
            print("  PostgreSQL not reachable: skipped")
            return
        print(
            f"  {'bare insert (asyncpg)':<28} {bare_insert_postgres(pg, BATCHES):6.3f} ms CPU/batch"
        )
    with fresh_postgres() as pg, running_server(pg) as (url, key, _db, pid):
        ms, rate = _measure(url, key, pid)
        beat = _measure_heartbeats(url, key, pid)
    print(f"  {'gradexp server, PostgreSQL':<28} {ms:6.3f} ms CPU/batch  {rate:7.0f} batches/s")
    print(f"  {'  a heartbeat, PostgreSQL':<28} {beat:6.3f} ms CPU")


def _spy_start(pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the server's threads (BENCH_PROFILE=1), if py-spy is installed."""
    if os.environ.get("BENCH_PROFILE") != "1":
        return None
    out = Path(tempfile.gettempdir()) / f"gx-small-{pid}.txt"
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "500", "--gil",
         "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _frame_name(frame: str) -> str:
    """``func (…/site-packages/pkg/mod.py:12)`` -> ``func pkg/mod.py`` (lines merged)."""
    func, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/load/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{func} {path}"


def _spy_report(spy: subprocess.Popen[bytes] | None, pid: int) -> None:
    """Stop py-spy and print the functions holding the most samples, self and inclusive."""
    if spy is None:
        return
    spy.send_signal(2)
    spy.wait(30)
    out = Path(tempfile.gettempdir()) / f"gx-small-{pid}.txt"
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";")]
        samples += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    for title, table in (("self", own), ("inclusive", total)):
        print(f"    py-spy, {title} (% of {samples} samples):")
        ranked = sorted(table.items(), key=lambda kv: -kv[1])
        if title == "inclusive":  # the server's own functions, not the loop's frames
            ranked = [kv for kv in ranked if "gradexp/" in kv[0]]
        for frame, n in ranked[:30]:
            print(f"      {100 * n / samples:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
