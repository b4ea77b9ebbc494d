"""Live streams: what 200 open SSE streams cost the server, and another user's latency.

Against a real server (SQLite), each phase beside the same run's baseline of no streams:

- **idle**: 200 run streams of one running run that logs nothing (browsers left open on a
  run page), and 200 streams spread over 50 runs and 5 projects (150 run streams, 50 project
  streams with rows), nothing logged; the baseline is measured before and after them;
- **active**: the same run logs a batch of 10 rows a second, with 0 and with 200 streams
  on it (every stream must receive every row).

For each phase: the server's CPU over ``--seconds`` (from /proc/PID/stat, the process and
its decode workers), as a percentage of one core, then the median and p99 latency of
another user's ``GET /api/v1/projects`` (sequential, keep-alive) with the streams still
open. Streams are opened by one user: the bench raises ``GRADEXP_SERVER_MAX_STREAMS_PER_USER``
(the per-user cap) to let it.

Target (the live-streams issue): 200 idle open streams cost < 10% of a core, and do not
move another user's latency.

Run against another checkout to compare: ``cd OTHER && PYTHONPATH=$PWD python
/path/to/benchmarks/bench_live_streams.py`` (its server must speak the same API).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import admin, running_server, tree_cpu_seconds

STREAMS = 200
LATENCY_REQUESTS = 400


class Streams:
    """Many SSE connections held open by one client session, counting what they receive."""

    def __init__(self, session: aiohttp.ClientSession, url: str, key: str) -> None:
        self.session = session
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        self.tasks: list[asyncio.Task[None]] = []
        self.rows: list[int] = []
        self.opened = 0

    async def open(self, paths: list[str]) -> None:
        ready: list[asyncio.Future[None]] = []
        for path in paths:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            ready.append(fut)
            self.rows.append(0)
            self.tasks.append(asyncio.create_task(self._follow(path, len(self.rows) - 1, fut)))
        await asyncio.gather(*ready)

    async def _follow(self, path: str, i: int, ready: asyncio.Future[None]) -> None:
        try:
            async with self.session.get(self.url + path, headers=self.headers) as resp:
                if resp.status != 200:
                    ready.set_exception(RuntimeError(f"{path}: {resp.status} {await resp.text()}"))
                    return
                self.opened += 1
                ready.set_result(None)
                event = ""
                async for line in resp.content:
                    if line.startswith(b"event: "):
                        event = line[7:].strip().decode()
                    elif line.startswith(b"data: ") and event == "rows":
                        self.rows[i] += len(json.loads(line[6:])["rows"])
        except (aiohttp.ClientError, asyncio.CancelledError):
            if not ready.done():
                ready.set_exception(RuntimeError(f"{path}: connection failed"))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()


async def put_run(
    session: aiohttp.ClientSession, url: str, key: str, run: str, project: str
) -> None:
    body = {"project": project, "attempt": "a1"}
    async with session.put(
        f"{url}/api/v1/runs/{run}", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        assert resp.status in (200, 201), await resp.text()


async def post_rows(
    session: aiohttp.ClientSession, url: str, key: str, run: str, first: int, n: int
) -> None:
    records = [
        {
            "seq": first + i,
            "type": "history",
            "step": first + i - 1,
            "time": time.time(),
            "values": {"loss": 1.0 / (first + i), "acc": 0.5},
        }
        for i in range(n)
    ]
    body = gzip.compress(
        json.dumps({"first_seq": first, "last_seq": first + n - 1, "records": records}).encode()
    )
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Encoding": "gzip",
        "Content-Type": "application/json",
    }
    async with session.post(f"{url}/api/v1/runs/{run}/records", data=body, headers=headers) as r:
        assert r.status == 200, await r.text()


async def latencies(session: aiohttp.ClientSession, url: str, key: str) -> tuple[float, float]:
    """Another user's GET /api/v1/projects: (median ms, p99 ms)."""
    out = []
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(LATENCY_REQUESTS):
        started = time.perf_counter()
        async with session.get(url + "/api/v1/projects", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            await resp.read()
        out.append(time.perf_counter() - started)
    out.sort()
    return statistics.median(out) * 1e3, out[int(len(out) * 0.99) - 1] * 1e3


class Writer:
    """A run logging one batch of 10 rows a second (the active phases)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, key: str, run: str) -> None:
        self.args = (session, url, key, run)
        self.seq = 1_000_000  # far past anything the setup logged
        self.task: asyncio.Task[None] | None = None
        self.sent = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self._go())

    async def _go(self) -> None:
        while True:
            await post_rows(*self.args, self.seq, 10)
            self.seq += 10
            self.sent += 10
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def phase(
    name: str,
    pid: int,
    seconds: float,
    session: aiohttp.ClientSession,
    url: str,
    other_key: str,
) -> dict[str, float | str]:
    await asyncio.sleep(1.0)  # let the streams settle (first reads, first keepalives)
    cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (tree_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
    p50, p99 = await latencies(session, url, other_key)
    print(f"  {name:<44}{cpu:>8.1f}%{p50:>10.2f}{p99:>10.2f}", flush=True)
    return {"name": name, "cpu": cpu, "p50": p50, "p99": p99}


async def measure(url: str, key: str, other_key: str, pid: int, seconds: float) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tag = uuid.uuid4().hex[:6]
        hot = f"hot{tag}"
        await put_run(session, url, key, hot, "live")
        await post_rows(session, url, key, hot, 1, 100)
        spread = [f"r{tag}{i:02d}" for i in range(50)]
        for i, run in enumerate(spread):
            await put_run(session, url, key, run, f"spread{i % 5}")
            await post_rows(session, url, key, run, 1, 10)
        await put_run(session, url, other_key, f"o{tag}", "others")
        await latencies(session, url, other_key)  # warm up

        print(
            f"{'phase (same server, one after another)':<46}{'CPU':>9}{'p50 ms':>10}{'p99 ms':>10}"
        )
        print("  (CPU: server process tree, % of one core; latency: another user's GET /projects)")
        results = [
            await phase("idle, no streams (baseline)", pid, seconds, session, url, other_key)
        ]
        streams = Streams(session, url, key)
        await streams.open([f"/api/v1/runs/{hot}/events?after_seq=100"] * STREAMS)
        results.append(
            await phase(
                f"idle, {STREAMS} streams of one run", pid, seconds, session, url, other_key
            )
        )
        await streams.close()
        spread_streams = Streams(session, url, key)
        paths = [f"/api/v1/runs/{spread[i % 50]}/events?after_seq=10" for i in range(150)]
        paths += [f"/api/v1/projects/bench/spread{i % 5}/events" for i in range(50)]
        await spread_streams.open(paths)
        results.append(
            await phase(
                f"idle, {STREAMS} streams over 50 runs, 5 projects",
                pid,
                seconds,
                session,
                url,
                other_key,
            )
        )
        await spread_streams.close()
        results.append(
            await phase("idle, no streams again (baseline)", pid, seconds, session, url, other_key)
        )

        writer = Writer(session, url, key, hot)
        await post_rows(session, url, key, hot, 101, writer.seq - 101)  # fill the gap once
        writer.start()
        results.append(
            await phase("active (10 rows/s), no streams", pid, seconds, session, url, other_key)
        )
        active = Streams(session, url, key)
        await active.open([f"/api/v1/runs/{hot}/events?after_seq={writer.seq - 1}"] * STREAMS)
        start_sent = writer.sent
        results.append(
            await phase(
                f"active (10 rows/s), {STREAMS} streams", pid, seconds, session, url, other_key
            )
        )
        expected = writer.sent - start_sent
        await writer.stop()
        await asyncio.sleep(1.5)  # the last batch reaches every stream
        got = sorted(active.rows)
        await active.close()
        print(
            f"  rows each of the {STREAMS} streams received: min {got[0]}, max {got[-1]} "
            f"(at least {expected} were logged while they were open)"
        )

    idle, act0, act = results[1], results[4], results[5]
    # The baseline before and after the idle phases: the machine's drift shows between them.
    base_cpu = (float(results[0]["cpu"]) + float(results[3]["cpu"])) / 2
    base_p50 = (float(results[0]["p50"]) + float(results[3]["p50"])) / 2
    print(
        f"idle: {STREAMS} streams of one run cost {float(idle['cpu']) - base_cpu:.1f}% "
        f"of a core over the baseline; another user's p50 {float(idle['p50']):.2f} ms vs "
        f"{base_p50:.2f} ms ({float(idle['p50']) / base_p50:.2f}x)"
    )
    print(
        f"active: {STREAMS} streams cost {float(act['cpu']) - float(act0['cpu']):.1f}% of a core "
        f"over the same ingest without streams"
    )
    print(f"target: {STREAMS} idle streams < 10% of a core; latency unchanged")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU window per phase")
    args = parser.parse_args()
    os.environ["GRADEXP_SERVER_MAX_STREAMS_PER_USER"] = str(STREAMS * 2)
    with running_server() as (url, key, db_url, pid):
        data = db_url.removeprefix("sqlite:///").rsplit("/", 1)[0]
        storage = ["--data", data, "--db", db_url]
        admin(["user", "add", "other", *storage])
        other_key = admin(["key", "create", "other", *storage]).strip()
        version = subprocess.run(
            [
                sys.executable,
                "-c",
                "import gradexp.server, os; print(os.path.dirname(gradexp.server.__file__))",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        print(f"server code: {version}")
        asyncio.run(measure(url, key, other_key, pid, args.seconds))


if __name__ == "__main__":
    main()
