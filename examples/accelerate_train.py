"""Accelerate with gradexp: ``GradexpTracker`` behind ``accelerator.log``.

A small regression on synthetic data. Needs ``pip install accelerate`` (or ``pip install
'gradexp[integrations]'``). Runs as it is, or under ``accelerate launch`` (only the main
process writes). With no server configured it logs offline to ./gradexp/.

    python examples/accelerate_train.py --steps 200
"""

from __future__ import annotations

import argparse

import torch
from accelerate import Accelerator

from gradexp.integrations.accelerate import GradexpTracker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--project", default="examples")
    args = parser.parse_args()

    accelerator = Accelerator(log_with=GradexpTracker(project=args.project, run_name="linear"))
    accelerator.init_trackers(args.project, config=vars(args))
    run = accelerator.get_tracker("gradexp", unwrap=True)
    if accelerator.is_main_process:
        print(f"run {run.id}: {run.url or run.dir}")

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    model, optimizer = accelerator.prepare(model, optimizer)
    x = torch.randn(1024, 8, device=accelerator.device)
    y = torch.sin(x[:, :1]) + 0.5 * x[:, 1:2]
    val_x = torch.randn(256, 8, device=accelerator.device)
    val_y = torch.sin(val_x[:, :1]) + 0.5 * val_x[:, 1:2]

    for step in range(args.steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        accelerator.log({"train/loss": loss.item()}, step=step)
        if (step + 1) % args.eval_every == 0:
            with torch.no_grad():
                val = torch.nn.functional.mse_loss(model(val_x), val_y)
            accelerator.log({"val/loss": val.item()}, step=step)
    accelerator.end_training()


if __name__ == "__main__":
    main()
