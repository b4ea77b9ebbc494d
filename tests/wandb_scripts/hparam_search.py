"""A hyperparameter search without sweeps: argparse arguments into the config, one run per
learning rate (reinit), the lr changed with allow_val_change, a best value in the summary."""

import argparse
import math
import random

import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--project", default="lr-search")
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--optimizer", default="sgd")
args = parser.parse_args()

for trial, lr in enumerate([0.1, 0.01, 0.001]):
    run = wandb.init(
        project=args.project,
        group="lr-search",
        job_type="trial",
        reinit=True,
        name=f"trial-{trial}",
    )
    wandb.config.update(args)
    wandb.config.update({"lr": lr}, allow_val_change=True)
    random.seed(trial)
    best = math.inf
    for epoch in range(args.epochs):
        val_loss = 1.0 / (1 + epoch * lr * 10) + random.random() * 0.01
        best = min(best, val_loss)
        wandb.log({"epoch": epoch, "val_loss": val_loss})
    run.summary["best_val_loss"] = best
    run.finish()
