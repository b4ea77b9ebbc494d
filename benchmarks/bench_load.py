"""Many runs at once: two ``gradexp server`` processes on one PostgreSQL database and one S3
bucket (moto), and a load generator speaking the wire protocol (``tests/load.py``).

Each run sends a batch of 10 history rows of 2 scalars a second (or, when the server paces
it, what it produced since its last batch, at the interval the server asked for), gzip'ed,
to either server at random; one project live stream is open on the second server. For each
level (``BENCH_LOAD_LEVELS``, default ``100,200,400,700,1000``; ``BENCH_LOAD_SECONDS`` each,
default 20; the runs start spread over the first ``BENCH_LOAD_RAMP`` seconds, default 5) the
table shows: batch latency p50/p99 of the accepted batches (measured by the generator, which
shares the machine), the p99 of those sent once every run had started, batches accepted against those due at one a second
per run, batches refused (429, sent again), runs asked for a longer interval (and the
longest), rows stored exactly once (checked in the database), rows seen exactly once by
the live stream, the two servers' CPU (their process trees, as % of one core: the first
server, then the second, which serves the live stream; and per accepted batch, the
stream's share included), PostgreSQL's CPU, the generator's own CPU and loop lag, and the
machine's load average (a shared machine's other work shows there).

Baseline, same run: the ``aiohttp constant`` row of ``bench_small_batches.py`` gives the
floor of HTTP in Python on this machine; here, the generator's own CPU is printed beside
the servers', and its event loop's lag (p99 of how late it woke from 20 ms sleeps: part of
every latency it measures). Target: 1,000 runs with p99 <= 250 ms and every row exactly once, or paced
with nothing lost and p99 of accepted batches <= 250 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _server import admin, free_port, fresh_postgres, tree_cpu_seconds

from tests.load import generate

LEVELS = [int(x) for x in os.environ.get("BENCH_LOAD_LEVELS", "100,200,400,700,1000").split(",")]
SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "20"))
RAMP = float(os.environ.get("BENCH_LOAD_RAMP", "5"))  # runs start spread over this long
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # answering at all is enough
    except OSError:
        return False
    return True


def _wait(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while not _answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.2)


@contextlib.contextmanager
def moto_bucket() -> Iterator[tuple[str, dict[str, str]]]:
    """A moto S3 server with a fresh bucket: (store URL, environment for the servers)."""
    import boto3

    moto = Path(sys.executable).with_name("moto_server")
    cmd = [str(moto)] if moto.exists() else [sys.executable, "-m", "moto.server"]
    port = free_port()
    proc = subprocess.Popen(
        [*cmd, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(endpoint + "/moto-api/", proc, "moto_server")
        bucket = f"gx-load-{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        yield f"s3://{bucket}/gradexp", {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def two_servers(
    db: str, store: str, env: dict[str, str]
) -> Iterator[tuple[list[str], str, list[int]]]:
    """Two server processes on one database and bucket: (urls, api key, pids)."""
    tmp = tempfile.mkdtemp(prefix="gx-load-")
    full_env = {**os.environ, **env}
    storage = ["--data", tmp, "--db", db, "--store", store]
    os.environ.update(env)  # the admin commands reach the bucket too
    admin(["user", "add", "bench", *storage])
    key = admin(["key", "create", "bench", *storage]).strip()
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for i in range(2):
            port = free_port()
            log = open(Path(tmp) / f"server{i}.log", "wb")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gradexp.server", "--port", str(port), *storage],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=full_env,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
            _wait(urls[-1] + "/healthz", procs[-1], f"server {i}")
        yield urls, key, [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL process on this machine, by pid (Linux)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition(") ")
        if name.endswith("(postgres"):
            fields = rest.split()
            out[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf(
                "SC_CLK_TCK"
            )
    return out


def main() -> None:
    print(
        f"load: two servers on PostgreSQL + S3 (moto), each run a 10-row batch a second to "
        f"either, one project live stream; {SECONDS:.0f} s per level, the runs starting over "
        f"the first {RAMP:.0f} s (steady p99: of the batches sent after that)"
    )
    header = (
        f"{'runs':>6} {'p50 ms':>8} {'p99 ms':>8} {'steady p99':>11} {'accepted/due':>14} "
        f"{'429s':>6} "
        f"{'paced runs (max s)':>19} {'exact':>6} {'live':>6} {'servers CPU':>12} "
        f"{'ms/batch':>9} {'postgres':>9} {'generator':>10} {'gen lag p99':>12} {'load avg':>9}"
    )
    with fresh_postgres() as pg:
        if pg is None:
            print("PostgreSQL not reachable: skipped")
            return
        with moto_bucket() as (store, env), two_servers(pg, store, env) as (urls, key, pids):
            print(header)
            for level in LEVELS:
                cpu0 = [tree_cpu_seconds(p) for p in pids]
                pg0 = postgres_cpu()
                own0 = time.process_time()
                t0 = time.monotonic()
                result = asyncio.run(
                    generate(
                        urls,
                        key,
                        "bench",
                        f"load{level}",
                        level,
                        SECONDS,
                        live_url=urls[1],
                        db_url=pg,
                        ramp=RAMP,
                    )
                )
                wall = time.monotonic() - t0
                each = [tree_cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
                used = sum(each)
                pg1 = postgres_cpu()
                pg_used = sum(t - pg0[p] for p, t in pg1.items() if p in pg0)
                cpu = "+".join(f"{c / wall * 100:.0f}" for c in each)
                own = (time.process_time() - own0) / wall * 100
                print(
                    f"{level:>6} {result.percentile(0.5) * 1000:>8.0f} "
                    f"{result.percentile(0.99) * 1000:>8.0f} "
                    f"{result.percentile(0.99, steady=True) * 1000:>11.0f} "
                    f"{f'{result.accepted}/{result.due}':>14} {result.refused:>6} "
                    f"{f'{result.paced_runs} ({result.max_interval:.1f})':>19} "
                    f"{'yes' if result.exact else 'NO':>6} {'yes' if result.live_exact else 'NO':>6} "
                    f"{cpu + '%':>12} {used / max(1, result.accepted) * 1000:>9.2f} "
                    f"{pg_used / wall * 100:>8.0f}% {own:>9.0f}% "
                    f"{result.generator_lag(0.99) * 1000:>9.0f} ms {os.getloadavg()[0]:>9.1f}",
                    flush=True,
                )
                for problem in result.problems[:3]:
                    print(f"       {problem}")
                if result.live_ends:
                    print(
                        f"       the live stream ended {len(result.live_ends)} time(s) "
                        f"({', '.join(sorted(set(result.live_ends)))}) and was resumed from "
                        "its last event id, as a browser does"
                    )
                if result.errors:
                    print(f"       {result.errors} connection errors (each batch sent again)")


if __name__ == "__main__":
    main()
