"""A classifier's evaluation script in the style of the official examples: a resumable run
id from wandb.util, preset charts (confusion matrix, ROC and PR curves, a line series), a
video of sample inputs (which gradexp does not store), the source code logged with the run,
and the run's URL printed for the log."""

import os

import numpy as np
import wandb

CLASSES = ["cat", "dog", "bird"]
run_id = os.environ.get("EVAL_RUN_ID") or wandb.util.generate_id()
run = wandb.init(project="eval-plots", id=run_id, resume="allow", config={"threshold": 0.5})
rng = np.random.default_rng(0)
y_true = rng.integers(0, len(CLASSES), 60)
probs = rng.dirichlet(np.ones(len(CLASSES)), 60)
probs[np.arange(60), y_true] += 1.0  # a decent classifier
probs /= probs.sum(axis=1, keepdims=True)
preds = probs.argmax(axis=1)
wandb.log(
    {
        "eval/accuracy": float((preds == y_true).mean()),
        "eval/confusion": wandb.plot.confusion_matrix(
            probs=None, y_true=y_true, preds=preds, class_names=CLASSES
        ),
        "eval/roc": wandb.plot.roc_curve(y_true, probs, labels=CLASSES),
        "eval/pr": wandb.plot.pr_curve(y_true, probs, labels=CLASSES),
        "eval/loss_curves": wandb.plot.line_series(
            xs=list(range(5)),
            ys=[[1.0, 0.8, 0.6, 0.5, 0.45], [1.1, 0.9, 0.8, 0.75, 0.7]],
            keys=["train", "val"],
            title="loss",
            xname="epoch",
        ),
        "eval/samples": wandb.Video(rng.integers(0, 255, (4, 3, 16, 16), dtype=np.uint8), fps=2),
    }
)
run.log_code(os.path.dirname(os.path.abspath(__file__)))
print("url", run.get_url())
wandb.finish()
