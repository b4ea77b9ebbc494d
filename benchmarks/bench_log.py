"""log() of a 5-scalar dict: the caller's cost per call, median and p99.

Each call is timed on its own with ``perf_counter_ns`` (the timer's own cost is in both
columns), over many calls, while the stream thread drains and writes in the background
as it would during training. Baseline, same run: a bare ``deque.append`` of a copy of the
same dict, which is the least any queue-based logger can do.

Also, in the same rounds: ``log()`` in a run that records what the machine did (system
metrics sampled every second, stdout and stderr teed, the environment), against a run
that records only what is logged: the caller's cost must not change. And ``log()`` after
``define_metric`` definitions (a step_metric for every key, min/max summaries): they are
records of their own and log() does not look at them, so its cost should not move either.

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

    log = gradexp.log
    plain = {"quiet": True, "system_metrics_interval": 0, "console": "off",
             "environment": False, "git": False, "requirements": False}  # fmt: skip
    machine = {"quiet": True, "system_metrics_interval": 1.0, "console": "auto"}

    def gx(i: int) -> None:
        log(values)

    def define_metrics() -> None:  # what a script using define_metric sets up first
        gradexp.define_metric("epoch", hidden=True)
        gradexp.define_metric("*", step_metric="epoch")
        gradexp.define_metric("loss", summary="min")
        gradexp.define_metric("acc", summary="max", goal="maximize")

    names = ("baseline", "gradexp", "machine", "metrics")
    results: dict[str, list[float]] = {n: [] for n in names}
    p99s: dict[str, list[float]] = {n: [] for n in names}
    written = expected = 0
    for _ in range(ROUNDS):  # interleaved, so all see the same machine load
        for name in names:
            run = None
            if name != "baseline":
                run = gradexp.init(
                    project="bench",
                    mode="offline",
                    dir=tmp,
                    settings=machine if name == "machine" else plain,
                )
                if name == "metrics":
                    define_metrics()
                gx(0)  # warm the key cache
                time.sleep(2.0 if name == "machine" else 0.5)  # the machine run's sampler is up
            gc.collect()
            samples = per_call_ns(baseline if run is None else gx, N)
            results[name].append(pct(samples, 0.5))
            p99s[name].append(pct(samples, 0.99))
            queue.clear()
            if run is not None:
                gradexp.flush()
                gradexp.finish()
                written += sum(
                    1 for r in gradexp.runfile.RunFile(run.dir or "") if r.type == "history"
                )
                expected += 1 + N

    med_b, med_g = sorted(results["baseline"])[1], sorted(results["gradexp"])[1]
    p99_b, p99_g = sorted(p99s["baseline"])[1], sorted(p99s["gradexp"])[1]
    med_m, p99_m = sorted(results["machine"])[1], sorted(p99s["machine"])[1]
    med_d, p99_d = sorted(results["metrics"])[1], sorted(p99s["metrics"])[1]
    print(
        f"log() of a 5-scalar dict, {N} calls x {ROUNDS} rounds (median of rounds), python {sys.version.split()[0]}"
    )
    print(f"{'':28}{'median µs':>12}{'p99 µs':>12}")
    print(f"{'baseline deque.append(copy)':28}{med_b:12.2f}{p99_b:12.2f}")
    print(f"{'gradexp.log()':28}{med_g:12.2f}{p99_g:12.2f}")
    print(f"{'ratio gradexp / baseline':28}{med_g / med_b:12.1f}{p99_g / p99_b:12.1f}")
    print(f"{'log(), machine recorded':28}{med_m:12.2f}{p99_m:12.2f}")
    print(f"{'ratio machine / gradexp':28}{med_m / med_g:12.2f}{p99_m / p99_g:12.2f}")
    print(f"{'log(), with define_metric':28}{med_d:12.2f}{p99_d:12.2f}")
    print(f"{'ratio define_metric / gradexp':28}{med_d / med_g:12.2f}{p99_d / p99_g:12.2f}")
    print(f"{'target':28}{'<= 2.00':>12}{'<= 20.00':>12}")
    print(f"{'wandb 0.31 offline (once)':28}{'~116':>12}")
    print(f"records written to the run files: {written} (of {expected} logged)")
    return 0 if written == expected else 1


if __name__ == "__main__":
    sys.exit(main())
