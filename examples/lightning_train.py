"""PyTorch Lightning with gradexp: ``GradexpLogger`` records what the module logs.

A small regression on synthetic data; nothing is downloaded. Needs ``pip install lightning``
(or ``pip install 'gradexp[integrations]'``). With no server configured it logs offline
to ./gradexp/ (``gradexp sync`` uploads it later).

    python examples/lightning_train.py --epochs 5
"""

from __future__ import annotations

import argparse
from typing import Any

import lightning as L
import torch

from gradexp.integrations.lightning import GradexpLogger


class Regressor(L.LightningModule):  # type: ignore[misc]
    def __init__(self, lr: float, hidden: int) -> None:
        super().__init__()
        self.save_hyperparameters()  # the run's config
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def training_step(self, batch: Any, index: int) -> Any:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def loader(n: int, seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = torch.sin(x[:, :1]) + 0.5 * x[:, 1:2]
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--project", default="examples")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = Regressor(args.lr, args.hidden)
    logger = GradexpLogger(project=args.project, name="lightning-regressor")
    logger.watch(model, log_freq=20)  # gradient histograms and norms
    trainer = L.Trainer(
        max_epochs=args.epochs,
        logger=logger,
        log_every_n_steps=10,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    run = logger.experiment
    print(f"run {run.id}: {run.url or run.dir}")
    trainer.fit(model, loader(1024, 0), loader(256, 1))


if __name__ == "__main__":
    main()
