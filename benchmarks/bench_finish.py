"""Online: how long ``finish()`` takes after 100k steps logged against a local server.

The training loop logs 100k steps of 5 scalars as fast as it can, then calls finish(),
which returns once the server has acknowledged every record (or the bound passes). The
figure is finish()'s own duration, i.e. what the user waits at the end of training.
Baseline, same run: a bare client POSTing the same records straight to the same server
(gzip'ed batches of the SDK's size, one after the other, no run file, no second thread),
which is what the server itself needs to take them in.

Target: finish() after 100k steps <= 2 s.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import running_server

N = int(os.environ.get("BENCH_FINISH_STEPS", "100000"))
BATCH = 12_000  # about what fits in the SDK's 1 MiB batches for these records


def values(i: int) -> dict[str, float]:
    return {
        "loss": 1.0 / (i + 1),
        "acc": (i % 100) / 100,
        "lr": 3e-4,
        "grad_norm": 1.7,
        "epoch": 3.0,
    }


async def baseline(url: str, key: str) -> float:
    """Seconds to POST N records in sequential gzip'ed batches with a bare client."""
    headers = {"Authorization": f"Bearer {key}"}
    run_id = f"base{os.getpid()}"
    bodies = []
    now = time.time()
    for first in range(0, N, BATCH):
        records = [
            {"seq": i + 1, "type": "history", "step": i, "time": now, "values": values(i)}
            for i in range(first, min(N, first + BATCH))
        ]
        doc = {"first_seq": first + 1, "last_seq": first + len(records), "records": records}
        comp = zlib.compressobj(1, zlib.DEFLATED, 31)
        bodies.append(comp.compress(orjson.dumps(doc)) + comp.flush())
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.put(
            f"{url}/api/v1/runs/{run_id}", json={"project": "bench", "attempt": "a"}
        ) as resp:
            assert resp.status in (200, 201), await resp.text()
        t0 = time.perf_counter()
        for body in bodies:
            async with session.post(
                f"{url}/api/v1/runs/{run_id}/records",
                data=body,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            ) as resp:
                assert resp.status == 200, await resp.text()
        return time.perf_counter() - t0


def gradexp_finish(url: str, key: str, tmp: str) -> tuple[float, float, int]:
    """(logging seconds, finish() seconds, records acknowledged)."""
    import gradexp

    run = gradexp.init(
        project="bench", dir=tmp, base_url=url, api_key=key, settings={"quiet": True}
    )
    log = gradexp.log
    t0 = time.perf_counter()
    for i in range(N):
        log(values(i))
    t1 = time.perf_counter()
    gradexp.finish(timeout=120)
    t2 = time.perf_counter()
    acked = run._channel.acked_seq
    return t1 - t0, t2 - t1, acked


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="bench-finish-")
    os.environ.setdefault("GRADEXP_CONFIG_DIR", tmp)
    with running_server() as (url, key, _db, _pid):
        base = asyncio.run(baseline(url, key))
        logging_s, finish_s, acked = gradexp_finish(url, key, tmp)
    print(f"online: {N} steps of 5 scalars into a local server (SQLite)")
    print(f"{'':52}{'seconds':>10}")
    print(f"{'baseline: bare client POSTs the same records':52}{base:10.2f}")
    print(f"{'gradexp: the logging loop (log() x N)':52}{logging_s:10.2f}")
    print(f"{'gradexp: finish() after the loop':52}{finish_s:10.2f}")
    print(f"{'ratio finish() / baseline':52}{finish_s / base:10.2f}")
    print(f"{'target for finish()':52}{'<= 2.00':>10}")
    print(f"records acknowledged: {acked} (expected {N + 1}: the steps and the finish record)")
    return 0 if acked == N + 1 else 1


if __name__ == "__main__":
    sys.exit(main())
