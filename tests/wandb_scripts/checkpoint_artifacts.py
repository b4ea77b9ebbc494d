"""Train a small regressor, keep the best checkpoint as a model artifact, then evaluate it
in a second run that uses the artifact (the shape of the official "model checkpoints with
artifacts" examples)."""

import argparse
import math
import os

import torch
import wandb
from torch import nn


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="ckpt-artifacts")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=0.05)
    return parser.parse_args()


def make_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.arange(1.0, 9.0) + 0.1 * torch.randn(n, generator=g)
    return x, y.unsqueeze(1)


def train(args):
    run = wandb.init(project=args.project, config=vars(args), job_type="train")
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=wandb.config.lr)
    x, y = make_data()
    best = math.inf
    for epoch in range(args.epochs):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        wandb.log({"epoch": epoch, "train/loss": loss.item()})
        if loss.item() < best:
            best = loss.item()
            path = os.path.join(wandb.run.dir, "model.pt")
            torch.save({"epoch": epoch, "state_dict": model.state_dict()}, path)
            artifact = wandb.Artifact(
                "regressor", type="model", metadata={"epoch": epoch, "loss": best}
            )
            artifact.add_file(path)
            run.log_artifact(artifact, aliases=["best", f"epoch-{epoch}"])
    wandb.finish()
    return best


def evaluate(args):
    run = wandb.init(project=args.project, job_type="eval")
    artifact = run.use_artifact("regressor:best", type="model")
    artifact_dir = artifact.download()
    checkpoint = torch.load(os.path.join(artifact_dir, "model.pt"))
    model = nn.Linear(8, 1)
    model.load_state_dict(checkpoint["state_dict"])
    x, y = make_data(seed=1)
    with torch.no_grad():
        loss = nn.functional.mse_loss(model(x), y).item()
    wandb.log({"eval/loss": loss, "eval/epoch": checkpoint["epoch"]})
    print(f"best checkpoint from epoch {checkpoint['epoch']}: eval loss {loss:.4f}")
    wandb.finish()


if __name__ == "__main__":
    args = parse_args()
    train(args)
    evaluate(args)
