"""log() of a 5-scalar dict: the caller's cost per call, median and p99.

Each call is timed on its own with ``perf_counter_ns`` (the timer's own cost is in both
columns), over many calls, while the stream thread drains and writes in the background
as it would during training. Baseline, same run: a bare ``deque.append`` of a copy of the
same dict, which is the least any queue-based logger can do.

Target: median <= 2 µs, p99 <= 20 µs. For scale, wandb 0.31
offline was measured at ~116 µs median on this machine (wandb is not installed here).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable

N = int(os.environ.get("BENCH_LOG_CALLS", "200000"))
ROUNDS = 3


def per_call_ns(fn: Callable[[int], None], n: int) -> list[int]:
    timer = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = timer()
        fn(i)
        out[i] = timer() - t0
    return out


def pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="bench-log-")
    os.environ.setdefault("GRADEXP_CONFIG_DIR", tmp)
    import gradexp

    values = {"loss": 0.25, "acc": 0.91, "lr": 3e-4, "grad_norm": 1.7, "epoch": 3}

    queue: deque[dict[str, float]] = deque()

    def baseline(i: int) -> None:
        queue.append(values.copy())

    run = gradexp.init(project="bench", mode="offline", dir=tmp, settings={"quiet": True})
    log = gradexp.log

    def gx(i: int) -> None:
        log(values)

    gx(0)  # warm the key cache
    results: dict[str, list[float]] = {"baseline": [], "gradexp": []}
    p99s: dict[str, list[float]] = {"baseline": [], "gradexp": []}
    gc.collect()
    for _ in range(ROUNDS):  # interleaved, so both see the same machine load
        for name, fn in (("baseline", baseline), ("gradexp", gx)):
            samples = per_call_ns(fn, N)
            results[name].append(pct(samples, 0.5))
            p99s[name].append(pct(samples, 0.99))
            queue.clear()
    gradexp.flush()
    gradexp.finish()
    written = sum(1 for r in gradexp.runfile.RunFile(run.dir or "") if r.type == "history")

    med_b, med_g = sorted(results["baseline"])[1], sorted(results["gradexp"])[1]
    p99_b, p99_g = sorted(p99s["baseline"])[1], sorted(p99s["gradexp"])[1]
    print(
        f"log() of a 5-scalar dict, {N} calls x {ROUNDS} rounds (median of rounds), python {sys.version.split()[0]}"
    )
    print(f"{'':28}{'median µs':>12}{'p99 µs':>12}")
    print(f"{'baseline deque.append(copy)':28}{med_b:12.2f}{p99_b:12.2f}")
    print(f"{'gradexp.log()':28}{med_g:12.2f}{p99_g:12.2f}")
    print(f"{'ratio gradexp / baseline':28}{med_g / med_b:12.1f}{p99_g / p99_b:12.1f}")
    print(f"{'target':28}{'<= 2.00':>12}{'<= 20.00':>12}")
    print(f"{'wandb 0.31 offline (once)':28}{'~116':>12}")
    print(f"records written to the run file: {written} (of {1 + N * ROUNDS} logged)")
    return 0 if written == 1 + N * ROUNDS else 1


if __name__ == "__main__":
    sys.exit(main())
