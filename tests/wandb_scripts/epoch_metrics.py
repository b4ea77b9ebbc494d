"""Steps per batch, validation per epoch: define_metric puts the validation metrics on an
epoch axis and picks their summaries; the run's notes are set as it goes, and an alert
fires when the validation loss goes up."""

import random

import wandb

run = wandb.init(
    project="define-metric-demo",
    config={"epochs": 4, "steps_per_epoch": 10},
    save_code=True,
    tags=["baseline"],
)
wandb.define_metric("epoch", hidden=True)
wandb.define_metric("global_step")
wandb.define_metric("train/*", step_metric="global_step")
wandb.define_metric("val/*", step_metric="epoch")
wandb.define_metric("val/loss", step_metric="epoch", summary="min")
wandb.define_metric("val/acc", step_metric="epoch", summary="max", goal="maximize")

random.seed(0)
global_step = 0
previous = None
for epoch in range(wandb.config.epochs):
    for _ in range(wandb.config["steps_per_epoch"]):
        global_step += 1
        wandb.log({"train/loss": 1.0 / global_step, "global_step": global_step})
    val_loss = [0.8, 0.5, 0.6, 0.55][epoch]
    val_acc = [0.6, 0.7, 0.68, 0.72][epoch]
    wandb.log({"val/loss": val_loss, "val/acc": val_acc, "epoch": epoch})
    if previous is not None and val_loss > previous:
        wandb.alert(
            title="Validation loss went up",
            text=f"{previous} -> {val_loss} at epoch {epoch}",
            level=wandb.AlertLevel.WARN,
        )
    previous = val_loss
    wandb.run.notes = f"finished epoch {epoch}"
wandb.run.tags = wandb.run.tags + ("done",)
wandb.finish()
