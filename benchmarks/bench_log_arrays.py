"""log() of 4 float32 arrays of 1M elements (as histograms) plus 5 scalars: the caller's cost.

Each call is timed on its own; between calls ``gradexp.flush()`` lets the stream thread
bin the arrays and write the record (not timed), as the time between training steps would.
Baseline, same run, interleaved: copying the 4 arrays, which is what log() must at least
do (the caller may overwrite its arrays as soon as log() returns): ``a.copy()`` into new
memory, and ``np.copyto`` into buffers allocated once (the floor: log() recycles its copy
buffers through a pool, so it writes to warm pages too). For scale, also timed:
computing ``np.histogram`` of the 4 arrays on the caller's thread, which is what loggers
that bin on the training thread pay.

Two more baselines say what this machine allows at all: reading the 16 MB once
(``np.maximum.reduce``, no writes: no snapshot can cost less on one thread), and the same
``np.copyto`` split over two threads (a helper copies half of each array while the caller
copies the other half; numpy releases the GIL while it copies): whether a parallel copy
would pay here.

Target: median <= 1 ms. For scale, wandb, trackio and tensorboardX were measured at
15-25 ms per such call.
"""

from __future__ import annotations

import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import numpy as np

N = int(os.environ.get("BENCH_LOG_ARRAYS_CALLS", "40"))
SIZE = 1_000_000


def timed_ms(fn: Callable[[], object], between: Callable[[], object] | None = None) -> float:
    t0 = time.perf_counter()
    fn()
    elapsed = (time.perf_counter() - t0) * 1e3
    if between is not None:
        between()
    return elapsed


def _copy_all(pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for dst, src in pairs:
        np.copyto(dst, src)


class _HalfCopier:
    """A helper thread that copies the second half of each array (the two-thread baseline)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[np.ndarray, np.ndarray, threading.Event]] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            dst, src, done = self._jobs.get()
            np.copyto(dst, src)
            done.set()

    def copy(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
        events = []
        for dst, src in pairs:
            done = threading.Event()
            half = src.size // 2
            self._jobs.put((dst[half:], src[half:], done))
            events.append(done)
        for dst, src in pairs:
            half = src.size // 2
            np.copyto(dst[:half], src[:half])
        for done in events:
            done.wait()


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="bench-log-arrays-")
    os.environ.setdefault("GRADEXP_CONFIG_DIR", tmp)
    import gradexp
    from gradexp.runfile import RunFile

    rng = np.random.default_rng(0)
    arrays = {f"layer{i}/grad": rng.standard_normal(SIZE).astype(np.float32) for i in range(4)}
    scalars = {"loss": 0.25, "acc": 0.91, "lr": 3e-4, "grad_norm": 1.7, "epoch": 3}
    values = {**arrays, **scalars}

    run = gradexp.init(project="bench", mode="offline", dir=tmp, settings={"quiet": True})
    gradexp.log(values)  # warm up: key cache, imports
    gradexp.flush()

    warm = [np.empty_like(a) for a in arrays.values()]
    pairs = list(zip(warm, arrays.values(), strict=True))
    halves = _HalfCopier()
    samples: dict[str, list[float]] = {
        "copy": [],
        "copyto": [],
        "copyto2": [],
        "read": [],
        "log": [],
        "hist": [],
    }
    for i in range(N):
        samples["copy"].append(timed_ms(lambda: [a.copy() for a in arrays.values()]))
        samples["copyto"].append(timed_ms(lambda: _copy_all(pairs)))
        samples["copyto2"].append(timed_ms(lambda: halves.copy(pairs)))
        samples["read"].append(timed_ms(lambda: [np.maximum.reduce(a) for a in arrays.values()]))
        samples["log"].append(timed_ms(lambda: gradexp.log(values), gradexp.flush))
        if i % 4 == 0:  # slow: sample it less
            samples["hist"].append(
                timed_ms(lambda: [np.histogram(a, bins=64) for a in arrays.values()])
            )
    gradexp.finish()
    rows = [r for r in RunFile(run.dir or "") if r.type == "history"]
    ok = len(rows) == N + 1 and all(rows[-1].values[k]["count"] == SIZE for k in arrays)

    copy, copyto, copyto2, read, log, hist = (
        statistics.median(samples[k]) for k in ("copy", "copyto", "copyto2", "read", "log", "hist")
    )
    p90 = sorted(samples["log"])[int(0.9 * len(samples["log"]))]
    print(
        f"log() of 4 x {SIZE:,} float32 + 5 scalars, {N} calls (medians), python {sys.version.split()[0]}"
    )
    print(f"{'':46}{'median ms':>10}")
    print(f"{'baseline: copy the 4 arrays (a.copy())':46}{copy:10.2f}")
    print(f"{'baseline: copy into warm buffers (np.copyto)':46}{copyto:10.2f}")
    print(f"{'  the same split over 2 threads':46}{copyto2:10.2f}")
    print(f"{'  floor: read the 16 MB once (np.maximum)':46}{read:10.2f}")
    print(f"{'gradexp.log() (caller thread)':46}{log:10.2f}   (p90 {p90:.2f})")
    print(f"{'ratio log / a.copy()':46}{log / copy:10.2f}")
    print(f"{'ratio log / np.copyto':46}{log / copyto:10.2f}")
    print(f"{'np.histogram x4 on the caller (for scale)':46}{hist:10.2f}")
    print(f"{'target':46}{'<= 1.00':>10}")
    print(f"records written with full histograms: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
