"""Offline: sustained steps/s into the run file (log() of 5 scalars, then finish()).

The clock runs from the first log() until finish() returns, so it includes the stream
thread numbering, encoding, framing and writing every record (and the final fsync).
Baseline, same run: the least a single-threaded logger can do for the same records in
pure Python: build the record dict, orjson it, frame it (length + CRC32 + type), append
to a buffer and write it to a file; no queue, no second thread, no NaN handling.

Target: >= 200k steps/s sustained.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
import time
import zlib

import orjson

N = int(os.environ.get("BENCH_OFFLINE_STEPS", "500000"))
ROUNDS = 3


def baseline(path: str, n: int) -> float:
    frame = struct.Struct("<IIB").pack
    crc_type = zlib.crc32(b"\x01")
    buf = bytearray()
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for i in range(n):
            values = {"loss": 1.0 / (i + 1), "acc": 0.5, "lr": 3e-4, "grad_norm": 1.7, "epoch": 3}
            payload = orjson.dumps(
                {"seq": i + 1, "type": "history", "step": i, "time": time.time(), "values": values}
            )
            buf += frame(len(payload), zlib.crc32(payload, crc_type), 1)
            buf += payload
            if len(buf) > 1 << 20:
                f.write(buf)
                buf.clear()
        f.write(buf)
        f.flush()
        os.fsync(f.fileno())
    return n / (time.perf_counter() - t0)


def gradexp_rate(tmp: str, n: int) -> tuple[float, int]:
    import gradexp

    run = gradexp.init(project="bench", mode="offline", dir=tmp, settings={"quiet": True})
    log = gradexp.log
    t0 = time.perf_counter()
    for i in range(n):
        log({"loss": 1.0 / (i + 1), "acc": 0.5, "lr": 3e-4, "grad_norm": 1.7, "epoch": 3})
    gradexp.finish()
    rate = n / (time.perf_counter() - t0)
    written = sum(1 for r in gradexp.runfile.RunFile(run.dir or "") if r.type == "history")
    return rate, written


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="bench-offline-")
    os.environ.setdefault("GRADEXP_CONFIG_DIR", tmp)
    base, gx = [], []
    ok = True
    for r in range(ROUNDS):  # interleaved, so both see the same machine load
        base.append(baseline(os.path.join(tmp, f"baseline-{r}.bin"), N))
        rate, written = gradexp_rate(tmp, N)
        gx.append(rate)
        ok &= written == N
    b, g = sorted(base)[ROUNDS // 2], sorted(gx)[ROUNDS // 2]
    print(f"offline: {N} steps of 5 scalars per round, median of {ROUNDS} rounds")
    print(f"{'':44}{'steps/s':>12}")
    print(f"{'baseline: one thread, dumps+frame+write':44}{b:12,.0f}")
    print(f"{'gradexp: log() ... finish()':44}{g:12,.0f}")
    print(f"{'ratio gradexp / baseline':44}{g / b:12.2f}")
    print(f"{'target':44}{'>= 200,000':>12}")
    print(f"every record written: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
