"""``GradexpLogger``: what it adds to a PyTorch Lightning training loop.

A CPU MLP (3 layers of 512, batch 64, SGD) fits with ``Trainer(log_every_n_steps=50)``,
Lightning's default, its ``training_step`` calling ``self.log("train/loss", loss)`` as
every Lightning module does. Three loggers take turns, in ONE process, block after block
(``ROUNDS`` rounds, the order rotating each round so none always runs first):

- ``none``: ``logger=False`` (Lightning collects the metrics, nobody receives them);
- ``null``: a ``Logger`` whose ``log_metrics`` does nothing: what Lightning itself costs
  when any logger is attached (it reads the metrics' values off the device to hand them on);
- ``gradexp``: ``GradexpLogger`` in offline mode (a run file on disk, no server: the
  training thread's cost is the same online; the stream thread does the rest).

Each block is one ``fit()`` of ``STEPS`` steps; only the steps are timed (a callback
stamps the end of each), not the trainer's setup, nor the run's start and finish, which
happen once per job, not per step. Three figures:

1. Mean step time per block, the median over rounds of its ratio to the ``null`` block of
   the same round (gradexp's own cost) and to ``none`` (Lightning's part included). Honest
   but noisy on a shared machine: a busy neighbour moves a block by more than the effect.
2. Where the cost is: each step that logged (every 50th) against the median of the
   ``NEAR`` plain steps on each side of it: its excess time, the median over all of them,
   for ``gradexp`` and ``null``. The difference, spread over ``LOG_EVERY`` steps, is gradexp's overhead per
   step; load elsewhere cancels out of it.
3. The time spent inside ``GradexpLogger.log_metrics`` itself (the training thread's share).

Target: ``gradexp`` <= 1% slower than ``null`` at the default logging frequency.
``BENCH_INTEGRATIONS_ROUNDS`` (default 7) and ``BENCH_INTEGRATIONS_STEPS`` (default 400)
tune it; torch runs on one thread so that a busy neighbour core moves it less.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import tempfile
import time
from typing import Any

ROUNDS = int(os.environ.get("BENCH_INTEGRATIONS_ROUNDS", "7"))
STEPS = int(os.environ.get("BENCH_INTEGRATIONS_STEPS", "400"))
LOG_EVERY = 50  # Lightning's default log_every_n_steps
WIDTH = 512
BATCH = 64
NEAR = 5  # steps on each side of a logging step that it is compared with


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="bench-integrations-")
    os.environ["GRADEXP_CONFIG_DIR"] = tmp
    os.environ["GRADEXP_DIR"] = tmp
    os.environ.setdefault("GRADEXP_QUIET", "1")
    try:
        import lightning as L
        import torch
        from lightning.pytorch.loggers.logger import Logger
    except ImportError as exc:
        print(f"skipped: {exc} (pip install -e '.[integrations]')")
        return 0

    from gradexp.integrations.lightning import GradexpLogger

    torch.set_num_threads(1)
    torch.manual_seed(0)

    class MLP(L.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(WIDTH, WIDTH),
                torch.nn.ReLU(),
                torch.nn.Linear(WIDTH, WIDTH),
                torch.nn.ReLU(),
                torch.nn.Linear(WIDTH, 1),
            )

        def training_step(self, batch: Any, index: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    class StepClock(L.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.logged: list[bool] = []
            self.logging = False  # log_metrics ran during this step
            self.inside: list[float] = []  # seconds inside GradexpLogger.log_metrics

        def on_train_batch_end(self, *args: Any) -> None:
            self.ends.append(time.perf_counter())
            self.logged.append(self.logging)
            self.logging = False

    class NullLogger(Logger):  # type: ignore[misc]
        name = "null"
        version = "0"

        def __init__(self, clock: StepClock) -> None:
            super().__init__()
            self.clock = clock

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            self.clock.logging = True

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    class TimedGradexpLogger(GradexpLogger):
        def __init__(self, clock: StepClock, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.clock = clock

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            started = time.perf_counter()
            super().log_metrics(metrics, step)
            self.clock.inside.append(time.perf_counter() - started)
            self.clock.logging = True

    x = torch.randn(STEPS * BATCH, WIDTH)
    data = torch.utils.data.TensorDataset(x, x[:, :1].clone())
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH)
    model = MLP()

    blocks: dict[str, list[StepClock]] = {"none": [], "null": [], "gradexp": []}

    def block(kind: str) -> float:
        clock = StepClock()
        logger: Any = {
            "none": lambda: False,
            "null": lambda: NullLogger(clock),
            "gradexp": lambda: TimedGradexpLogger(
                clock, project="bench-integrations", mode="offline"
            ),
        }[kind]()
        trainer = L.Trainer(
            max_steps=STEPS,
            logger=logger,
            log_every_n_steps=LOG_EVERY,
            callbacks=[clock],
            accelerator="cpu",
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=tmp,
        )
        trainer.fit(model, loader)
        blocks[kind].append(clock)
        return (clock.ends[-1] - clock.ends[0]) / (len(clock.ends) - 1)

    kinds = ["none", "null", "gradexp"]
    block("none")  # warm-up: imports, allocator, first-step costs
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(ROUNDS):
        order = kinds[r % 3 :] + kinds[: r % 3]
        for kind in order:
            times[kind].append(block(kind))

    for kind in kinds:
        blocks[kind] = blocks[kind][-ROUNDS:]  # not the warm-up

    def ratio(kind: str, base: str) -> float:
        return statistics.median(a / b for a, b in zip(times[kind], times[base], strict=True))

    def logging_excess(kind: str) -> tuple[float, float]:
        """(median excess of a logging step over the median of the ``NEAR`` steps on each
        side of it, the median plain step): neighbours, so that slow drifts cancel."""
        excess, medians = [], []
        for clock in blocks[kind]:
            steps = [b - a for a, b in itertools.pairwise(clock.ends)]
            logged = clock.logged[1:]
            medians.append(
                statistics.median(t for t, lg in zip(steps, logged, strict=True) if not lg)
            )
            for i, (t, lg) in enumerate(zip(steps, logged, strict=True)):
                near = [
                    steps[j]
                    for j in range(max(0, i - NEAR), min(len(steps), i + NEAR + 1))
                    if not logged[j]
                ]
                if lg and near:
                    excess.append(t - statistics.median(near))
        return statistics.median(excess), statistics.median(medians)

    print(
        f"Lightning fit, MLP {WIDTH}x3, batch {BATCH}, log_every_n_steps={LOG_EVERY}, "
        f"{STEPS} steps per block, {ROUNDS} rounds, 1 torch thread"
    )
    print(f"{'logger':<10}{'median step':>14}{'vs null':>10}{'vs none':>10}")
    for kind in kinds:
        median_ms = statistics.median(times[kind]) * 1e3
        print(
            f"{kind:<10}{median_ms:>11.3f} ms{(ratio(kind, 'null') - 1) * 100:>+9.2f}%"
            f"{(ratio(kind, 'none') - 1) * 100:>+9.2f}%"
        )
    null_excess, step = logging_excess("null")
    gx_excess, _ = logging_excess("gradexp")
    own = (gx_excess - null_excess) / (LOG_EVERY * step)
    print(
        f"a logging step's excess over a plain step ({step * 1e3:.3f} ms): null "
        f"{null_excess * 1e6:.0f} us, gradexp {gx_excess * 1e6:.0f} us -> gradexp's own "
        f"cost spread over {LOG_EVERY} steps: {own * 100:+.3f}% per step"
    )
    inside = [t for clock in blocks["gradexp"] for t in clock.inside]
    print(
        f"inside GradexpLogger.log_metrics: median {statistics.median(inside) * 1e6:.1f} us "
        f"per call ({len(inside)} calls) = "
        f"{statistics.median(inside) / (LOG_EVERY * step) * 100:.4f}% of the steps between two"
    )
    print("target: gradexp <= +1% vs null at the default logging frequency")
    return 0


if __name__ == "__main__":
    sys.exit(main())
