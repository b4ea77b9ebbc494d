"""log() of a 5-scalar dict: the caller's cost per call, median and p99.

Each call is timed on its own with ``perf_counter_ns`` (the timer's own cost is in both
columns), over many calls, while the stream thread drains and writes in the background
as it would during training. Baseline, same run: a bare ``deque.append`` of a copy of the
same dict, which is the least any queue-based logger can do.

A second run measures the same calls after define_metric definitions (a step_metric for
every key, min/max summaries): they are records of their own, and log() does not look
at them, so its cost should not move.

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
from typing import Any

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


def measure(
    gradexp: Any, tmp: str, values: dict[str, float], define_metrics: bool
) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Interleaved rounds of the baseline and gradexp.log() into a fresh offline run;
    returns ((median, p99) of the baseline, (median, p99) of gradexp, records written)."""
    queue: deque[dict[str, float]] = deque()

    def baseline(i: int) -> None:
        queue.append(values.copy())

    run = gradexp.init(project="bench", mode="offline", dir=tmp, settings={"quiet": True})
    if define_metrics:  # what a script using define_metric sets up before its loop
        gradexp.define_metric("epoch", hidden=True)
        gradexp.define_metric("*", step_metric="epoch")
        gradexp.define_metric("loss", summary="min")
        gradexp.define_metric("acc", summary="max", goal="maximize")
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
    med = {k: sorted(v)[1] for k, v in results.items()}
    p99 = {k: sorted(v)[1] for k, v in p99s.items()}
    return (med["baseline"], p99["baseline"]), (med["gradexp"], p99["gradexp"]), written


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="bench-log-")
    os.environ.setdefault("GRADEXP_CONFIG_DIR", tmp)
    import gradexp

    values = {"loss": 0.25, "acc": 0.91, "lr": 3e-4, "grad_norm": 1.7, "epoch": 3}
    (med_b, p99_b), (med_g, p99_g), written = measure(gradexp, tmp, values, False)
    (med_bd, p99_bd), (med_d, p99_d), written_d = measure(gradexp, tmp, values, True)
    print(
        f"log() of a 5-scalar dict, {N} calls x {ROUNDS} rounds (median of rounds), python {sys.version.split()[0]}"
    )
    print(f"{'':36}{'median µs':>12}{'p99 µs':>12}")
    print(f"{'baseline deque.append(copy)':36}{med_b:12.2f}{p99_b:12.2f}")
    print(f"{'gradexp.log()':36}{med_g:12.2f}{p99_g:12.2f}")
    print(f"{'ratio gradexp / baseline':36}{med_g / med_b:12.1f}{p99_g / p99_b:12.1f}")
    print(f"{'baseline, second run':36}{med_bd:12.2f}{p99_bd:12.2f}")
    print(f"{'gradexp.log() with define_metric':36}{med_d:12.2f}{p99_d:12.2f}")
    print(f"{'ratio with define_metric / baseline':36}{med_d / med_bd:12.1f}{p99_d / p99_bd:12.1f}")
    print(f"{'target':36}{'<= 2.00':>12}{'<= 20.00':>12}")
    print(f"{'wandb 0.31 offline (once)':36}{'~116':>12}")
    expected = 1 + N * ROUNDS
    print(f"records written to the run files: {written}, {written_d} (of {expected} logged each)")
    return 0 if written == written_d == expected else 1


if __name__ == "__main__":
    sys.exit(main())
