"""An evaluation loop that logs a table of predictions each epoch (the pattern of the
official "log predictions" examples): image, ground truth, guess and per-class scores,
built row by row with add_data, plus a dataframe table of per-class accuracy."""

import numpy as np
import pandas as pd
import torch
import wandb

CLASSES = ["zero", "one", "two"]
run = wandb.init(project="prediction-tables", config={"epochs": 2, "n_samples": 6})
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, len(CLASSES)))
columns = ["id", "image", "guess", "truth"] + [f"score_{c}" for c in CLASSES]
for epoch in range(run.config.epochs):
    images = torch.rand(run.config.n_samples, 1, 8, 8)
    labels = torch.randint(0, len(CLASSES), (run.config.n_samples,))
    with torch.no_grad():
        scores = model(images).softmax(dim=1)
    table = wandb.Table(columns=columns)
    for i, (img, label, score) in enumerate(zip(images, labels, scores)):
        guess = int(score.argmax())
        table.add_data(
            f"{epoch}_{i}", wandb.Image(img), CLASSES[guess], CLASSES[int(label)], *score.numpy()
        )
    accuracy = (scores.argmax(dim=1) == labels).float().mean().item()
    per_class = pd.DataFrame(
        {"class": CLASSES, "count": np.bincount(labels.numpy(), minlength=len(CLASSES))}
    )
    wandb.log(
        {
            "epoch": epoch,
            "val/accuracy": accuracy,
            "val/predictions": table,
            "val/classes": wandb.Table(dataframe=per_class),
        }
    )
run.finish()
