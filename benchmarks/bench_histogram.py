"""The stream-side histogram of 1M float32 values, against ``np.histogram(bins=64)``.

Both are timed in the same run on the same array, interleaved, many times; medians are
reported. gradexp's figure is the whole stream-side work for one logged array: 64 bins
(exactly numpy's counts for the edges it reports) *and* the ten statistics (min, max,
mean, std, L2 norm, count, NaN, +Inf, -Inf, zeros). numpy's is the bins alone.

Target: >= 2x faster than ``np.histogram(bins=64)``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np

N = int(os.environ.get("BENCH_HIST_N", "1000000"))
REPEATS = int(os.environ.get("BENCH_HIST_REPEATS", "60"))


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> int:
    from gradexp.sdk.values.binning import histogram_value

    rng = np.random.default_rng(0)
    cases = {
        "normal(0, 1)": rng.standard_normal(N).astype(np.float32),
        "gradient-like (heavy tails, 1% zeros)": (
            rng.standard_t(3, N) * 1e-3 * (rng.random(N) > 0.01)
        ).astype(np.float32),
        "with NaN and Inf": np.where(
            rng.random(N) < 1e-4, np.float32(np.nan), rng.standard_normal(N).astype(np.float32)
        ),
    }
    print(
        f"stream-side histogram of {N:,} float32, 64 bins (median of {REPEATS}), numpy {np.__version__}"
    )
    print(f"{'case':40}{'np.histogram ms':>17}{'gradexp ms':>12}{'speedup':>9}")
    ok = True
    for name, values in cases.items():
        finite = values[np.isfinite(values)]  # np.histogram refuses NaN; gradexp counts them
        got = histogram_value(values, 64)
        expected, _ = np.histogram(finite, bins=np.array(got["bins"]))
        ok &= got["counts"] == expected.tolist()
        base_runs, gx_runs = [], []
        for _ in range(3):  # interleaved rounds: both see the same machine load
            base_runs.append(median_ms(partial(np.histogram, finite, bins=64), REPEATS // 3))
            gx_runs.append(median_ms(partial(histogram_value, values, 64), REPEATS // 3))
        base, gx = statistics.median(base_runs), statistics.median(gx_runs)
        print(f"{name:40}{base:17.2f}{gx:12.2f}{base / gx:8.1f}x")
    print(f"{'target':40}{'':17}{'':12}{'>= 2.0x':>9}")
    print(f"counts equal np.histogram on gradexp's edges: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
