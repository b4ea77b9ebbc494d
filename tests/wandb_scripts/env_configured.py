"""A script configured by its launcher through WANDB_* variables (as a cluster job or a
trainer integration does): no arguments to init() but resume="allow", and files saved into
wandb.run.dir."""

import os

import wandb

run = wandb.init(resume="allow")
for step in range(5):
    wandb.log({"loss": 1.0 / (step + 1)}, step=step)
with open(os.path.join(wandb.run.dir, "checkpoint.txt"), "w") as f:
    f.write("weights")
print("RUN", run.id, run.project, run.name, run.group, run.job_type, ",".join(run.tags), run.notes)
wandb.finish()
