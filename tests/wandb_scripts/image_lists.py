"""Predictions as a list of images per step (the usual way to log a batch of samples), a
batch tensor as one grid image, and a list of numbers."""

import numpy as np
import torch
import wandb

wandb.init(project="image-lists", config={"samples": 8})
rng = np.random.default_rng(0)
for step in range(3):
    batch = torch.rand(wandb.config.samples, 3, 16, 16)
    preds = rng.integers(0, 10, size=wandb.config.samples)
    wandb.log(
        {
            "predictions": [wandb.Image(img, caption=f"pred {p}") for img, p in zip(batch, preds)],
            "masks": [wandb.Image(rng.random((16, 16)) * 2 - 1) for _ in range(4)],  # in [-1, 1]
            "grid": wandb.Image(batch),
            "class_scores": rng.random(10).tolist(),
            "loss": 1.0 / (step + 1),
        }
    )
wandb.finish()
