"""What one hostile client's request costs the server, and everyone else meanwhile.

Three requests a client could always send, each against a fresh server (SQLite, a local
folder, ingest decoded in the server process: ``GRADEXP_INGEST_WORKERS=0``, so its memory
is all the cost):

- **wide history**: a run of one record with ``BENCH_HOSTILE_KEYS`` (20,000) numeric keys;
  ``GET /history`` with no keys (every key), with 1,000 named keys, and
  ``GET /history.parquet``;
- **JSON bomb**: a 0.2 MB gzip body inflating to 200 MiB of valid JSON (``[{},{},...]``);
- **big tensor**: a 2.3 MB ``.npy.gz`` of 500 MiB of float32: a slice view and the download.

For each: the request's time and status; another user's ``GET /api/v1/projects`` latency
while it runs (median and worst, as a ratio to the idle median of the same run, measured
just before); and the server's peak memory above what it held before (Linux ``VmHWM``,
reset through ``clear_refs``). Run it on two trees to compare: ``PYTHONPATH=OLD_TREE
python benchmarks/bench_hostile.py`` and the same with the new tree.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import running_server

KEYS = int(os.environ.get("BENCH_HOSTILE_KEYS", "20000"))
MiB = 1024 * 1024
IDLE_PROBES = 30


def request(
    url: str, key: str, method: str = "GET", body: bytes | None = None, headers: Any = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"Authorization": f"Bearer {key}", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            head = b""
            while chunk := resp.read(MiB):  # a download is read through, never held whole
                if len(head) < 65536:
                    head += chunk[:65536]
            return resp.status, head
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> int:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    return _status(pid, "VmRSS")


class Probe:
    """Another user's ``GET /projects``, in a loop on a thread; latencies in seconds."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url + "/api/v1/projects", key
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            request(self.url, self.key)
            self.times.append(time.perf_counter() - start)
            time.sleep(0.02)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def idle_median(url: str, key: str) -> float:
    times = []
    for _ in range(IDLE_PROBES):
        start = time.perf_counter()
        request(url + "/api/v1/projects", key)
        times.append(time.perf_counter() - start)
        time.sleep(0.01)
    return statistics.median(times)


def measure(label: str, url: str, other: str, pid: int, call: Any) -> None:
    idle = idle_median(url, other)
    before = reset_peak(pid)
    with Probe(url, other) as probe:
        start = time.perf_counter()
        status, _ = call()
        took = time.perf_counter() - start
    peak = (_status(pid, "VmHWM") - before) / 1024
    lat = probe.times or [0.0]
    print(
        f"  {label:<34} {status:>3} in {took:7.2f} s | other user: idle {idle * 1000:5.1f} ms, "
        f"during median {statistics.median(lat) / idle:6.1f}x worst {max(lat) / idle:7.1f}x "
        f"| peak RSS +{peak:7.0f} MiB"
    )


async def _other_user(db_url: str) -> str:
    from gradexp.server.domain.accounts.keys import create_key
    from gradexp.server.domain.accounts.users import create_user
    from gradexp.server.storage.db import Database

    db = Database(db_url)
    try:
        await create_user(db, "other")
        return await create_key(db, "other", "bench")
    finally:
        await db.dispose()


def gz_json(doc: Any) -> bytes:
    return zlib.compress(orjson.dumps(doc), wbits=31)


def put_run(url: str, key: str, run_id: str) -> None:
    body = orjson.dumps({"project": "hostile", "attempt": "a"})
    status, data = request(
        f"{url}/api/v1/runs/{run_id}", key, "PUT", body, {"Content-Type": "application/json"}
    )
    assert status in (200, 201), data


def post(url: str, key: str, run_id: str, doc: Any) -> tuple[int, bytes]:
    return request(
        f"{url}/api/v1/runs/{run_id}/records",
        key,
        "POST",
        gz_json(doc),
        {"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )


def wide_history(url: str, key: str, other: str, pid: int) -> None:
    put_run(url, key, "wide")
    values = {f"m{k}": k * 0.5 for k in range(KEYS)}
    recs = [{"seq": 1, "type": "history", "step": 0, "time": 1.7e9, "values": values}]
    status, data = post(url, key, "wide", {"first_seq": 1, "last_seq": 1, "records": recs})
    assert status == 200, data
    base = f"{url}/api/v1/runs/wide"
    named = ",".join(f"m{k}" for k in range(1000))  # short names: a URL holds 8 KiB
    print(f"wide history: one record of {KEYS:,} keys ({len(orjson.dumps(values)) / MiB:.1f} MiB)")
    measure("GET /history (every key)", url, other, pid, lambda: request(f"{base}/history", key))
    measure(
        "GET /history?keys=<1,000 keys>",
        url,
        other,
        pid,
        lambda: request(f"{base}/history?keys={named}&samples=100", key),
    )
    measure(
        "GET /history.parquet", url, other, pid, lambda: request(f"{base}/history.parquet", key)
    )


def json_bomb(url: str, key: str, other: str, pid: int) -> None:
    put_run(url, key, "bomb")
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(b'{"first_seq": 1, "last_seq": 1, "records": [')]
    block = b"{}," * (MiB // 3)
    parts += [comp.compress(block) for _ in range(200)]
    parts += [comp.compress(b"{}]}"), comp.flush()]
    bomb = b"".join(parts)
    print(f"JSON bomb: {len(bomb) / 1e6:.2f} MB of gzip inflating to 200 MiB of JSON")
    measure(
        "POST /records (the bomb)",
        url,
        other,
        pid,
        lambda: request(
            f"{url}/api/v1/runs/bomb/records",
            key,
            "POST",
            bomb,
            {"Content-Encoding": "gzip", "Content-Type": "application/json"},
        ),
    )


def big_tensor(url: str, key: str, other: str, pid: int) -> None:
    put_run(url, key, "tensor")
    shape = (500, MiB // 4)  # 500 MiB of float32
    head = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    head += " " * ((64 - (10 + len(head) + 1) % 64) % 64) + "\n"
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts = [comp.compress(b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode())]
    row = (bytes(range(256)) * (MiB // 256))[: MiB // 2] + bytes(MiB // 2)
    parts += [comp.compress(row) for _ in range(500)]
    parts.append(comp.flush())
    data = b"".join(parts)
    sha = hashlib.sha256(data).hexdigest()
    status, body = request(f"{url}/api/v1/runs/tensor/blobs/{sha}", key, "PUT", data)
    assert status in (200, 201), body
    rec = {"seq": 1, "type": "file", "path": "t.npy.gz", "sha256": sha, "size": len(data)}
    assert post(url, key, "tensor", {"first_seq": 1, "last_seq": 1, "records": [rec]})[0] == 200
    print(f"big tensor: {len(data) / 1e6:.1f} MB of .npy.gz holding 500 MiB of float32")
    base = f"{url}/api/v1/runs/tensor"
    measure(
        "GET /tensor (a slice view)",
        url,
        other,
        pid,
        lambda: request(f"{base}/tensor?path=t.npy.gz&index=:,:", key),
    )
    measure(
        "GET /tensor.npy (download)",
        url,
        other,
        pid,
        lambda: request(f"{base}/tensor.npy?path=t.npy.gz", key),
    )


def main() -> None:
    if sys.platform != "linux":
        print("skipped: reads /proc for memory (Linux only)")
        return
    os.environ["GRADEXP_INGEST_WORKERS"] = "0"
    import gradexp

    print(f"server code: {Path(gradexp.__file__).resolve().parent.parent}")
    for scenario in (wide_history, json_bomb, big_tensor):
        with running_server() as (url, key, db_url, pid):
            other = asyncio.run(_other_user(db_url))
            scenario(url, key, other, pid)


if __name__ == "__main__":
    main()
