"""The Hugging Face Trainer with gradexp: ``GradexpCallback`` records its logs.

A tiny BERT built from a config (nothing is downloaded) learns whether a sequence starts
with a high token. Needs ``pip install transformers`` (or ``pip install
'gradexp[integrations]'``). With no server configured it logs offline to ./gradexp/.

    python examples/transformers_train.py --steps 60
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from gradexp.integrations.transformers import GradexpCallback


class Tokens(torch.utils.data.Dataset):  # type: ignore[misc]
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 100, (n, 16), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.x[i], "labels": int(self.x[i, 0] >= 50)}


class SayWhere(TrainerCallback):  # type: ignore[misc]
    """Print where the run is, once training starts."""

    def __init__(self, callback: GradexpCallback) -> None:
        self.callback = callback

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        run = self.callback.run
        if run is not None:
            print(f"run {run.id}: {run.url or run.dir}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--project", default="examples")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )
    training = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="hf-example-"),
        run_name="tiny-bert",
        max_steps=args.steps,
        learning_rate=args.lr,
        logging_steps=10,
        eval_strategy="steps",
        eval_steps=20,
        per_device_train_batch_size=16,
        report_to="none",  # gradexp's callback, not the built-in integrations
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    callback = GradexpCallback(project=args.project)
    trainer = Trainer(
        model=BertForSequenceClassification(config),
        args=training,
        train_dataset=Tokens(640, 0),
        eval_dataset=Tokens(128, 1),
        callbacks=[callback],
    )

    trainer.add_callback(SayWhere(callback))  # after gradexp's: its run exists by then
    trainer.train()


if __name__ == "__main__":
    main()
