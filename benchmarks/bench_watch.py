"""``gradexp.watch(model, log="all", log_freq=100)``: what it adds to a CPU training step.

A CPU MLP of 3 layers of 1024 (batch 64, Adam), the same loop with and without watch, in
the same process, in alternating blocks of ``2 * log_freq`` steps (so every watched block
holds two sampled steps, and both see the same machine load). Each step logs its loss
either way. The figure is the mean step time of a block (a mean, not a median, so the
sampled steps count in full), median over rounds. The stream thread's work (binning 6M
values every 100 steps) runs on the same cores, so it is in the figure too.

Target (issue 5): watched <= 3% slower.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

LOG_FREQ = 100
BLOCK = 2 * LOG_FREQ
ROUNDS = int(os.environ.get("BENCH_WATCH_ROUNDS", "3"))


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="bench-watch-")
    os.environ.setdefault("GRADEXP_CONFIG_DIR", tmp)
    import torch
    from torch import nn

    import gradexp
    from gradexp.runfile import RunFile

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = torch.randn(64, 1024), torch.randn(64, 1024)

    def block() -> float:
        t0 = time.perf_counter()
        for _ in range(BLOCK):
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            gradexp.log({"loss": loss.item()})
        return (time.perf_counter() - t0) / BLOCK * 1e3

    run = gradexp.init(project="bench", mode="offline", dir=tmp, settings={"quiet": True})
    block()  # warm up
    plain, watched = [], []
    for _ in range(ROUNDS):
        plain.append(block())
        gradexp.flush()
        gradexp.watch(model, log="all", log_freq=LOG_FREQ)
        watched.append(block())
        gradexp.unwatch(model)
        gradexp.flush()
    gradexp.finish()
    sampled = sum(
        1
        for r in RunFile(run.dir or "")
        if r.type == "history" and "gradients/0.weight" in r.data["values"]
    )

    p, w = statistics.median(plain), statistics.median(watched)
    print(
        f"CPU MLP 3x1024, batch 64, Adam; {ROUNDS} rounds of {BLOCK} steps each way, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'':40}{'mean step ms':>14}")
    print(f"{'baseline: unwatched':40}{p:14.2f}")
    print(f"{'watch(log=all, log_freq=100)':40}{w:14.2f}")
    print(f"{'overhead':40}{(w / p - 1) * 100:13.1f}%")
    print(f"{'target':40}{'<= 3.0%':>14}")
    print(f"sampled steps recorded: {sampled} (expected {2 * ROUNDS})")
    return 0 if sampled == 2 * ROUNDS else 1


if __name__ == "__main__":
    sys.exit(main())
