"""``gradexp.watch(model, log="all", log_freq=100)``: what it adds to a CPU training step.

A CPU MLP of 3 layers of 1024 (batch 64, Adam), trained in ONE process; every step is
timed and logs its loss. Two measurements, both against unwatched steps of the same run:

1. The target's own figure. Alternating blocks of 100 steps, unwatched and watched
   (``watch()`` at the block's start, so its first step is the sampled one, ``unwatch()``
   at its end), in ABBA order over ``PAIRS`` pairs: the mean step time of a watched block
   against the unwatched block next to it, median over the pairs. Honest, but on a shared
   machine the noisiest: a busy neighbour slows a 2-thread torch step by 2-10x for seconds
   at a time (an intra-op parallel region waits for its slowest thread), and one slow
   second anywhere in a block moves that pair by more than the effect.
2. The same overhead measured where it happens, so that load elsewhere cancels out: the
   cost of one sampled step. Periods of ``PERIOD`` steps with ``watch(log_freq=PERIOD)``
   (one sampled step each) alternate, ``PERIODS`` at a time, with unwatched periods. In
   every period, the extra time of its first ``WINDOW`` steps (the sampled step, and the
   steps during which the stream thread bins the 6M copied values beside the training
   thread) over ``WINDOW`` times the median of its other steps. The median of that over
   watched periods, minus the same over unwatched ones, is the cost of a sampled step;
   ``log_freq=100`` spreads it over 100 steps. (A step that is not sampled costs one
   optimizer-hook call, under a microsecond.)

Why one process, not one process per variant: blocks seconds apart see the same machine;
separate processes minutes apart do not.

The allocator would otherwise matter more than watch: with ``zero_grad(set_to_none=True)``
the loop frees and re-allocates 12 MB of gradients every step, and glibc gives that memory
back to the OS each time (heap trimming), so every step pays page faults for it, unless
some long-lived buffer happens to stop the trimming. So trimming is off (``mallopt``, glibc
only) for the whole process.

Target: watched <= 3% slower at ``log_freq=100``. ``BENCH_WATCH_PAIRS`` (default
6), ``BENCH_WATCH_ROUNDS`` (rounds of ``PERIODS`` watched + ``PERIODS`` unwatched periods,
default 6) and ``BENCH_WATCH_THREADS`` (default: torch's own choice) tune it.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

LOG_FREQ = 100
PAIRS = int(os.environ.get("BENCH_WATCH_PAIRS", "6"))
PERIOD = 20  # steps per period in measurement 2 (one sampled step each when watched)
WINDOW = 8  # steps from a period's start that hold the sampled step's cost
PERIODS = 5  # periods in a row of each kind
ROUNDS = int(os.environ.get("BENCH_WATCH_ROUNDS", "6"))
THREADS = int(os.environ.get("BENCH_WATCH_THREADS", "0"))


def _no_heap_trimming() -> None:
    """glibc: keep freed memory mapped (see the module docstring); elsewhere, nothing."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: never give the heap top back
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: gradient-sized blocks on the heap
    except (OSError, AttributeError):
        pass


def main() -> int:
    _no_heap_trimming()
    tmp = tempfile.mkdtemp(prefix="bench-watch-")
    os.environ["GRADEXP_CONFIG_DIR"] = tmp
    import torch
    from torch import nn

    import gradexp
    from gradexp.runfile import RunFile

    if THREADS:
        torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = torch.randn(64, 1024), torch.randn(64, 1024)

    def steps(n: int) -> list[float]:
        """Train ``n`` steps; the time of each (ms)."""
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            gradexp.log({"loss": loss.item()})
            times.append((time.perf_counter() - t0) * 1e3)
        return times

    def block(watched: bool) -> list[float]:
        """One period of LOG_FREQ steps, its first one sampled if watched."""
        if watched:
            gradexp.watch(model, log="all", log_freq=LOG_FREQ)
        times = steps(LOG_FREQ)
        if watched:
            gradexp.unwatch(model)
        return times

    def period_costs(watched: bool) -> list[float]:
        """PERIODS periods in a row: each one's extra time in its first WINDOW steps."""
        if watched:
            gradexp.watch(model, log="all", log_freq=PERIOD)
        costs = []
        for _ in range(PERIODS):
            times = steps(PERIOD)
            costs.append(sum(times[:WINDOW]) - WINDOW * statistics.median(times[WINDOW:]))
        if watched:
            gradexp.unwatch(model)
        return costs

    load_before = os.getloadavg()[0]
    run = gradexp.init(project="bench", mode="offline", dir=tmp, settings={"quiet": True})
    block(False)  # warm-up: caches, the copy buffers' first pages, the stream's scratch
    block(True)
    gradexp.flush()
    blocks: dict[bool, list[list[float]]] = {False: [], True: []}
    for pair in range(PAIRS):
        for watched in (False, True) if pair % 2 == 0 else (True, False):
            blocks[watched].append(block(watched))
    costs: dict[bool, list[float]] = {False: [], True: []}
    for r in range(ROUNDS):
        for watched in (False, True) if r % 2 == 0 else (True, False):
            costs[watched] += period_costs(watched)
    gradexp.finish()
    load_after = os.getloadavg()[0]
    sampled = sum(
        1
        for r in RunFile(run.dir or "")
        if r.type == "history" and "gradients/0.weight" in r.data["values"]
    )
    expected = PAIRS + 1 + ROUNDS * PERIODS
    sampled_ok = sampled == expected

    med = statistics.median
    means = {w: [statistics.fmean(b) for b in blocks[w]] for w in blocks}
    pair_ratios = [wm / pm - 1 for wm, pm in zip(means[True], means[False], strict=True)]
    step = med(means[False])
    typical = med([med(b) for b in blocks[False]])  # a step without noise bursts
    per_sample = med(costs[True]) - med(costs[False])

    print(
        f"CPU MLP 3x1024, batch 64, Adam; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; load average {load_before:.1f} -> "
        f"{load_after:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"1. {PAIRS} pairs of {LOG_FREQ}-step blocks (medians over blocks)")
    print(f"{'   baseline: unwatched, mean step':58}{step:9.2f} ms")
    print(
        f"{'   watch(log=all, log_freq=100), mean step':58}{med(means[True]):9.2f} ms"
        f"   pairs: {' '.join(f'{r * 100:+.0f}%' for r in pair_ratios)}"
    )
    print(f"{'   overhead, median over pairs':58}{med(pair_ratios) * 100:8.1f}%")
    print(
        f"2. one sampled step's cost: {ROUNDS * PERIODS} watched and {ROUNDS * PERIODS} "
        f"unwatched {PERIOD}-step periods"
    )
    label = f"   extra ms in the first {WINDOW} steps, watched"
    print(f"{label:58}{med(costs[True]):9.1f} ms   (unwatched: {med(costs[False]):.1f} ms)")
    print(f"{'   a sampled step costs':58}{per_sample:9.1f} ms")
    label = f"   overhead at log_freq=100 (on a {typical:.1f} ms median step)"
    print(f"{label:58}{per_sample / (LOG_FREQ * typical) * 100:8.1f}%")
    print(f"{'target':58}{'<= 3.0%':>9}")
    print(f"sampled steps recorded as expected ({expected}): {sampled_ok}")
    return 0 if sampled_ok else 1


if __name__ == "__main__":
    sys.exit(main())
