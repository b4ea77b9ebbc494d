"""Offline: sustained steps/s into the run file (log() of 5 scalars, then finish()).

The clock runs from the first log() until finish() returns, so it includes the stream
thread numbering, encoding, framing and writing every record (and the final fsync).
Baseline, same run: the least a single-threaded logger can do for the same records in
pure Python: build the record dict, orjson it, frame it (length + CRC32 + type), append
to a buffer and write it to a file; no queue, no second thread, no NaN handling.

The same run also logs with explicit steps (``log(values, step=i)``, what every trainer
integration does): that path should be as fast as the automatic one.

Target: >= 200k steps/s sustained, explicit steps as fast as automatic ones.
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


def gradexp_rate(tmp: str, n: int, explicit: bool = False) -> tuple[float, int, float]:
    """(steps/s from the first log() to finish()'s return, history records written,
    seconds finish() took: the stream's drain left over when logging ended)."""
    import gradexp

    run = gradexp.init(project="bench", mode="offline", dir=tmp, settings={"quiet": True})
    log = gradexp.log
    t0 = time.perf_counter()
    if explicit:
        for i in range(n):
            log(
                {"loss": 1.0 / (i + 1), "acc": 0.5, "lr": 3e-4, "grad_norm": 1.7, "epoch": 3},
                step=i,
            )
    else:
        for i in range(n):
            log({"loss": 1.0 / (i + 1), "acc": 0.5, "lr": 3e-4, "grad_norm": 1.7, "epoch": 3})
    t1 = time.perf_counter()
    gradexp.finish()
    t2 = time.perf_counter()
    rate = n / (t2 - t0)
    written = sum(1 for r in gradexp.runfile.RunFile(run.dir or "") if r.type == "history")
    return rate, written, t2 - t1


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="bench-offline-")
    os.environ.setdefault("GRADEXP_CONFIG_DIR", tmp)
    base, gx, gx_step, fin, fin_step = [], [], [], [], []
    ok = True
    for r in range(ROUNDS):  # interleaved, so all see the same machine load
        base.append(baseline(os.path.join(tmp, f"baseline-{r}.bin"), N))
        rate, written, finish = gradexp_rate(tmp, N)
        gx.append(rate)
        fin.append(finish)
        ok &= written == N
        rate, written, finish = gradexp_rate(tmp, N, explicit=True)
        gx_step.append(rate)
        fin_step.append(finish)
        ok &= written == N

    def median(xs: list[float]) -> float:
        return sorted(xs)[ROUNDS // 2]

    b, g, gs = median(base), median(gx), median(gx_step)
    print(f"offline: {N} steps of 5 scalars per round, median of {ROUNDS} rounds")
    print(f"{'':44}{'steps/s':>12}{'finish() s':>12}")
    print(f"{'baseline: one thread, dumps+frame+write':44}{b:12,.0f}")
    print(f"{'gradexp: log() ... finish()':44}{g:12,.0f}{median(fin):12.2f}")
    print(f"{'gradexp: log(..., step=i) ... finish()':44}{gs:12,.0f}{median(fin_step):12.2f}")
    print(f"{'ratio gradexp / baseline':44}{g / b:12.2f}")
    print(f"{'ratio explicit steps / automatic':44}{gs / g:12.2f}")
    print(f"{'target':44}{'>= 200,000':>12}")
    print(f"every record written: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
