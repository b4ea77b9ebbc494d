"""A script that turns tracking off (mode="disabled") and still uses wandb.run.dir, the
config and the summary."""

import os

import wandb

run = wandb.init(project="off", mode="disabled", config={"lr": 0.1})
wandb.config.update({"batch_size": 4})
wandb.log({"loss": 1.0})
wandb.run.summary["best"] = 0.5
path = os.path.join(wandb.run.dir, "model.bin")
with open(path, "wb") as f:
    f.write(b"weights")
print("DIR", os.path.isfile(path), wandb.config.lr, wandb.config.batch_size)
wandb.finish()
