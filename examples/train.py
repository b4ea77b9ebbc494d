"""A complete training script with gradexp: logistic regression on synthetic data (numpy only).

Run it with a server (``gradexp demo`` starts one, or ``gradexp login URL``) or without one:
with no server configured it logs offline to ./gradexp/, and ``gradexp sync`` uploads it later.

    python examples/train.py --steps 500 --lr 0.5
"""

from __future__ import annotations

import argparse
import math

import numpy as np

import gradexp


def make_data(n: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    true_w = rng.normal(size=dim)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = (x @ true_w + rng.normal(scale=0.5, size=n) > 0).astype(np.float32)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--project", default="examples")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x, y = make_data(20_000, args.dim, rng)
    x_train, y_train, x_val, y_val = x[:16_000], y[:16_000], x[16_000:], y[16_000:]
    w = np.zeros(args.dim, dtype=np.float32)

    # A context manager: the run is finished on exit, and marked failed on an exception.
    with gradexp.init(project=args.project, config=vars(args), tags=["numpy"]) as run:
        for step in range(args.steps):
            idx = rng.integers(0, len(x_train), size=args.batch_size)
            xb, yb = x_train[idx], y_train[idx]
            p = 1 / (1 + np.exp(-(xb @ w)))
            grad = xb.T @ (p - yb) / len(yb)
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))  # cosine decay
            w -= lr * grad
            loss = -np.mean(yb * np.log(p + 1e-7) + (1 - yb) * np.log(1 - p + 1e-7))
            # numpy scalars are fine; nested dicts become "train/loss", "train/acc".
            metrics = {
                "train": {"loss": loss, "acc": np.mean((p > 0.5) == yb)},
                "lr": lr,
                "grad_norm": float(np.linalg.norm(grad)),
            }
            if step % 50 == 0 or step == args.steps - 1:
                pv = 1 / (1 + np.exp(-(x_val @ w)))
                metrics["val/acc"] = float(np.mean((pv > 0.5) == y_val))
                metrics["weights"] = w  # an array: a histogram once the tensors feature is in
            gradexp.log(metrics)
        run.summary["final_val_acc"] = metrics.get("val/acc")
        print(f"run {run.id}: {run.url or run.dir}")


if __name__ == "__main__":
    main()
