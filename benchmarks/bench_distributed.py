"""A two-rank ``torchrun`` job's logging overhead, beside the same job unlogged.

The job (gloo on the CPU, ``--nproc_per_node=2``): STEPS steps, each a small matmul and an
``all_reduce`` of one tensor (the collective keeps the ranks in step, as in a real data-
parallel job), then on the logged side ``gradexp.log()`` of five scalars in every rank.
Each rank times its training loop with ``perf_counter``; the figures are the slower rank's
loop time (the job waits for it) and the whole job's wall time, for:

1. baseline: the job without gradexp;
2. logged online to a real ``gradexp server`` on loopback (every rank a writer of one
   run; system metrics and console capture at their defaults);
3. logged offline (the run files only).

The baseline runs first and again last: the spread between its two runs is the noise of
a shared machine, against which the overhead should be read.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _server import running_server  # noqa: E402

STEPS = int(os.environ.get("BENCH_DDP_STEPS", "2000"))

JOB = textwrap.dedent(
    """
    import os, sys, time
    import torch
    import torch.distributed as dist

    logged = os.environ.get("BENCH_LOGGED") == "1"
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    if logged:
        import gradexp
        gradexp.init(project="bench-ddp", settings={"quiet": True})
    w = torch.randn(64, 64)
    x = torch.randn(32, 64)
    t0 = time.perf_counter()
    for step in range(%(steps)d):
        loss = (x @ w).square().mean()
        t = loss.detach().reshape(1)
        dist.all_reduce(t)
        if logged:
            gradexp.log({"loss": float(loss), "reduced": float(t), "lr": 0.1,
                         "epoch": step // 100, "rank": rank})
    loop = time.perf_counter() - t0
    if logged:
        gradexp.finish()
    print(f"LOOP {rank} {loop:.6f}", flush=True)
    dist.destroy_process_group()
    """
) % {"steps": STEPS}


def run_job(script: Path, env: dict[str, str]) -> tuple[float, float]:
    """(the slower rank's loop seconds, the job's wall seconds)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(script)],
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent), **env},
        capture_output=True,
        text=True,
        timeout=900,
        cwd=script.parent,
    )
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(out.stdout + out.stderr)
    loops = [float(m) for m in re.findall(r"^LOOP \d+ ([0-9.]+)$", out.stdout, re.M)]
    assert len(loops) == 2, out.stdout
    return max(loops), wall


def main() -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("bench_distributed: torch is not installed; skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="gradexp-bench-ddp-") as tmp:
        script = Path(tmp) / "job.py"
        script.write_text(JOB)
        base_env = {"GRADEXP_DIR": tmp}
        rows: list[tuple[str, float, float]] = []
        loop, wall = run_job(script, base_env)
        rows.append(("baseline: unlogged", loop, wall))
        with running_server() as (url, key, _db, _pid):
            online = {**base_env, "BENCH_LOGGED": "1", "GRADEXP_BASE_URL": url,
                      "GRADEXP_API_KEY": key, "GRADEXP_MODE": "online"}  # fmt: skip
            loop, wall = run_job(script, online)
            rows.append(("logged online, 2 writers", loop, wall))
        offline = {**base_env, "BENCH_LOGGED": "1", "GRADEXP_MODE": "offline"}
        loop, wall = run_job(script, offline)
        rows.append(("logged offline", loop, wall))
        loop, wall = run_job(script, base_env)
        rows.append(("baseline again: unlogged", loop, wall))
    base = (rows[0][1] + rows[-1][1]) / 2
    print(f"bench_distributed: torchrun --nproc_per_node=2 (gloo, CPU), {STEPS} steps per rank")
    print(f"{'':28} {'loop s':>8} {'us/step':>8} {'vs base':>8} {'job wall s':>11}")
    for name, loop, wall in rows:
        per = loop / STEPS * 1e6
        print(f"{name:28} {loop:8.3f} {per:8.1f} {(loop - base) / STEPS * 1e6:+8.1f} {wall:11.2f}")
    print("(vs base: microseconds per step over the mean of the two baselines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
