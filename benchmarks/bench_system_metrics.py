"""The system sampler's cost: CPU time per sample, and its share of one core at the
default interval (10 s).

Two measurements, each beside a baseline measured in the same run:

1. one sample (``SystemSampler.sample``: the process tree's CPU, memory, threads, I/O and
   file descriptors, the machine's CPU, memory, disk and network, GPUs where NVML is),
   timed with the calling thread's CPU clock; baseline: the least a sampler can read, one
   ``psutil.Process().memory_info()`` and ``cpu_times()``;
2. a whole idle run sampling every 0.1 s against the same run with sampling off, for the
   same wall time: the difference in the process's CPU time is what sampling costs end to
   end (executor hop, framing, the run file), per sample.

Target: <= 0.5% of one core at the default interval (10 s), i.e. <= 50 ms of CPU per sample.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

SAMPLES = int(os.environ.get("BENCH_SYSTEM_SAMPLES", "200"))
IDLE_S = float(os.environ.get("BENCH_SYSTEM_IDLE_S", "6"))
INTERVAL = 10.0  # the default system_metrics_interval


def per_call_cpu_ms(fn: object, n: int) -> float:
    """Median thread CPU milliseconds of ``fn()``."""
    out = []
    for _ in range(n):
        t0 = time.thread_time()
        fn()  # type: ignore[operator]
        out.append((time.thread_time() - t0) * 1000)
    return statistics.median(out)


def idle_run_cpu_s(interval: float, tmp: str) -> tuple[float, int]:
    """CPU seconds of this process over an idle run of IDLE_S seconds, and its samples."""
    import gradexp

    settings = {"quiet": True, "system_metrics_interval": interval, "console": "off",
                "environment": False, "git": False, "requirements": False}  # fmt: skip
    run = gradexp.init(project="bench", mode="offline", dir=tmp, settings=settings)
    time.sleep(1.5)  # past the sampler's start (imports, the first sample)
    t0 = time.process_time()
    time.sleep(IDLE_S)
    used = time.process_time() - t0
    gradexp.finish()
    n = sum(1 for r in gradexp.runfile.RunFile(run.dir or "") if r.type == "system")
    return used, n


def main() -> int:
    import psutil

    from gradexp.stream.system import SystemSampler

    tmp = tempfile.mkdtemp(prefix="bench-system-")
    os.environ.setdefault("GRADEXP_CONFIG_DIR", tmp)
    sampler = SystemSampler(tmp)
    proc = psutil.Process()

    def baseline() -> None:
        proc.memory_info()
        proc.cpu_times()

    sampler.sample()
    base_ms = per_call_cpu_ms(baseline, SAMPLES)
    sample_ms = per_call_cpu_ms(sampler.sample, SAMPLES)
    keys = len(sampler.sample())

    off, _ = idle_run_cpu_s(0, tmp)
    on, n = idle_run_cpu_s(0.1, tmp)
    per_sample_ms = max(0.0, on - off) / max(1, n - 1) * 1000  # n samples in ~IDLE_S + 1.5 s
    share = max(sample_ms, per_sample_ms) / 1000 / INTERVAL * 100

    print(
        f"system sampler, python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {len(psutil.pids())} processes"
    )
    print(f"{'':44}{'CPU ms':>10}")
    print(f"{'baseline: memory_info() + cpu_times()':44}{base_ms:10.3f}")
    print(f"{'one sample (' + str(keys) + ' values)':44}{sample_ms:10.3f}")
    print(f"{'idle run, sampling off: CPU over ' + str(IDLE_S) + ' s':44}{off * 1000:10.1f}")
    print(f"{'idle run, every 0.1 s: CPU over ' + str(IDLE_S) + ' s':44}{on * 1000:10.1f}")
    print(f"{'end to end, per sample (' + str(n) + ' samples)':44}{per_sample_ms:10.3f}")
    print(f"share of one core at the default 10 s interval: {share:.4f}% (target <= 0.5%)")
    return 0 if share <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
