"""Helpers the server benchmarks share: start a real ``gradexp server``, make a key, and
fresh PostgreSQL databases. (Not a benchmark itself: ``run_all.py`` only runs ``bench_*``.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

PG_ADMIN_URL = os.environ.get("GRADEXP_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin(args: list[str]) -> str:
    """Run ``gradexp server ARGS``; return stdout."""
    out = subprocess.run(
        [sys.executable, "-m", "gradexp.server", *args], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return out.stdout


@contextlib.contextmanager
def running_server(db_url: str | None = None) -> Iterator[tuple[str, str, str, int]]:
    """A server on a fresh data dir: yields (url, api_key, db_url, pid)."""
    with tempfile.TemporaryDirectory(prefix="gx-bench-") as tmp:
        db = db_url or f"sqlite:///{tmp}/gradexp.db"
        storage = ["--data", tmp, "--db", db]
        admin(["user", "add", "bench", *storage])
        key = admin(["key", "create", "bench", *storage]).strip()
        port = free_port()
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "gradexp.server", "--port", str(port), *storage],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(url + "/healthz", timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((Path(tmp) / "server.log").read_text()) from None
                    time.sleep(0.1)
            yield url, key, db, proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            log.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its live child processes (the server's ingest decode
    workers): what the service as a whole has used (Linux; 0.0 elsewhere)."""
    total = cpu_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """CPU time one thread of a process has used so far (Linux; 0.0 elsewhere). A
    process's main thread has ``tid == pid``."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str | None]:
    """A new PostgreSQL database URL (None when PostgreSQL is not reachable)."""
    name = f"gx_bench_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    except OSError:
        yield None
        return
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def get_ms(url: str, key: str, path: str, n: int = 21) -> float:
    """Median ms of ``n`` GETs of ``path`` with the API key."""
    import statistics

    times = []
    for _ in range(n):
        req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {key}"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)
