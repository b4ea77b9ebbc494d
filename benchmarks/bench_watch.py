"""``gradexp.watch(model, log="all", log_freq=100)``: what it adds to a CPU training step.

A CPU MLP of 3 layers of 1024 (batch 64, Adam), trained in ONE process in alternating blocks
of ``LOG_FREQ`` steps: unwatched, then watched (``watch()`` at the block's start, so its
first step is the sampled one, ``unwatch()`` at its end), in ABBA order over ``PAIRS`` pairs.
Each step logs its loss. Every step is timed.

Why blocks in one process, not one process per variant: the machines this runs on are
shared, and a busy neighbour slows a 2-thread torch step by 2-10x for seconds at a time
(an intra-op parallel region waits for its slowest thread). Blocks a few seconds apart see
the same machine; separate processes minutes apart do not.

Reported, medians over the blocks (sampled steps count in full):

- the target's own figure, the mean step time of watched blocks against the unwatched
  blocks next to them (per pair, median over pairs). Honest but the noisiest: one slow
  second anywhere in a block moves it;
- the same overhead estimated where it happens: the extra time of the first ``WINDOW``
  steps of a block (the sampled step, and the steps during which the stream thread bins
  the 6M copied values beside the training thread), over the median step of the rest of
  that block, watched minus unwatched, spread over the ``LOG_FREQ``-step period; plus the
  change in the median step outside that window (what watch costs an ordinary step: one
  optimizer-hook call).

The allocator would otherwise matter more than watch: with ``zero_grad(set_to_none=True)``
the loop frees and re-allocates 12 MB of gradients every step, and glibc gives that memory
back to the OS each time (heap trimming), so every step pays page faults for it, unless
some long-lived buffer happens to stop the trimming. So trimming is off (``mallopt``, glibc
only) for the whole process.

Target (issue 5): watched <= 3% slower. ``BENCH_WATCH_PAIRS`` (default 8) and
``BENCH_WATCH_THREADS`` (default: torch's own choice) tune it.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

LOG_FREQ = 100
WINDOW = 20  # steps from a block's start that hold the sampled step's cost
PAIRS = int(os.environ.get("BENCH_WATCH_PAIRS", "8"))
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

    def block(watched: bool) -> list[float]:
        """One period of LOG_FREQ steps; the time of each step (ms)."""
        if watched:
            gradexp.watch(model, log="all", log_freq=LOG_FREQ)
        times = []
        for _ in range(LOG_FREQ):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            gradexp.log({"loss": loss.item()})
            times.append((time.perf_counter() - t0) * 1e3)
        if watched:
            gradexp.unwatch(model)
        return times

    load_before = os.getloadavg()[0]
    run = gradexp.init(project="bench", mode="offline", dir=tmp, settings={"quiet": True})
    block(False)  # warm-up: caches, the copy buffers' first pages, the stream's scratch
    block(True)
    gradexp.flush()
    blocks: dict[bool, list[list[float]]] = {False: [], True: []}
    for pair in range(PAIRS):
        for watched in (False, True) if pair % 2 == 0 else (True, False):
            blocks[watched].append(block(watched))
    gradexp.finish()
    load_after = os.getloadavg()[0]
    sampled = sum(
        1
        for r in RunFile(run.dir or "")
        if r.type == "history" and "gradients/0.weight" in r.data["values"]
    )
    sampled_ok = sampled == PAIRS + 1

    med = statistics.median
    means = {w: [statistics.fmean(b) for b in blocks[w]] for w in blocks}
    pair_ratios = [wm / pm - 1 for wm, pm in zip(means[True], means[False], strict=True)]
    rest = {w: [med(b[WINDOW:]) for b in blocks[w]] for w in blocks}
    head = {
        w: [sum(b[:WINDOW]) - WINDOW * r for b, r in zip(blocks[w], rest[w], strict=True)]
        for w in blocks
    }
    step = med(rest[False])
    period_ms = med(head[True]) - med(head[False])
    steady = med(rest[True]) / step - 1
    estimate = period_ms / (LOG_FREQ * step) + steady

    print(
        f"CPU MLP 3x1024, batch 64, Adam; {PAIRS} pairs of {LOG_FREQ}-step blocks in one "
        f"process, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'baseline: unwatched, mean step (median of blocks)':58}{med(means[False]):9.2f} ms")
    print(
        f"{'watch(log=all, log_freq=100), mean step':58}{med(means[True]):9.2f} ms"
        f"   pairs: {' '.join(f'{r * 100:+.0f}%' for r in pair_ratios)}"
    )
    print(f"{'overhead, median over pairs (noisy)':58}{med(pair_ratios) * 100:8.1f}%")
    label = f"sampled period: extra ms in the first {WINDOW} steps"
    print(
        f"{label:58}{period_ms:9.1f} ms"
        f"   (watched {med(head[True]):.1f}, unwatched {med(head[False]):.1f})"
    )
    print(f"{'ordinary steps: median step, watched vs unwatched':58}{steady * 100:8.1f}%")
    print(f"{'overhead, estimated from those two':58}{estimate * 100:8.1f}%")
    print(f"{'target':58}{'<= 3.0%':>9}")
    print(f"sampled steps recorded as expected (one per watched block, {PAIRS + 1}): {sampled_ok}")
    return 0 if sampled_ok else 1


if __name__ == "__main__":
    sys.exit(main())
