"""``GradexpCallback`` for the Hugging Face ``Trainer``: tiny models built from configs (nothing
downloaded), a few steps on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.services import require_module

from .conftest import gradexp_warnings, history, run_files

FIX = "install the test extras: pip install -e '.[integrations]'"
torch = require_module("torch", fix=FIX)
transformers = require_module("transformers", fix=FIX)

import gradexp  # noqa: E402
from gradexp.integrations.transformers import GradexpCallback  # noqa: E402

pytestmark = pytest.mark.slow  # a Trainer takes seconds to set up, even for a tiny model

STEPS = 12
LOGGING_STEPS = 3
EVAL_STEPS = 6


class Tokens(torch.utils.data.Dataset):  # type: ignore[misc]
    """Random token sequences; the label is whether the first token is in the upper half."""

    def __init__(self, n: int, seq2seq: bool = False) -> None:
        g = torch.Generator().manual_seed(n)
        self.x = torch.randint(0, 50, (n, 8), generator=g)
        self.seq2seq = seq2seq

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        labels = self.x[i].flip(0) if self.seq2seq else (self.x[i, 0] > 25).long()
        return {"input_ids": self.x[i], "labels": labels}


def _bert() -> Any:
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def _args(tmp: Path, cls: Any = None, **kw: Any) -> Any:
    return (cls or transformers.TrainingArguments)(
        output_dir=str(tmp / "out"),
        max_steps=STEPS,
        logging_steps=LOGGING_STEPS,
        eval_strategy="steps",
        eval_steps=EVAL_STEPS,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        **kw,
    )


def _train(callback: Any, tmp: Path, **kw: Any) -> Any:
    torch.manual_seed(0)
    trainer = transformers.Trainer(
        model=_bert(),
        args=_args(tmp, **kw),
        train_dataset=Tokens(48),
        eval_dataset=Tokens(16),
        callbacks=[callback],
    )
    trainer.train()
    return trainer


def test_online_run_holds_train_and_eval(api: Any, gx_env: Path) -> None:
    callback = GradexpCallback(project="hf-tests", watch="gradients", watch_freq=4)
    trainer = _train(callback, gx_env, run_name="tiny-bert")
    run_id = callback.run.id if callback.run is not None else None
    assert run_id is None  # finished at the end of training
    [got] = api.runs("hf-tests", {"q": "tiny-bert"})
    assert got.state == "finished" and got.name == "tiny-bert"
    assert got.config["learning_rate"] == 1e-3 and got.config["max_steps"] == STEPS
    assert got.config["model"]["hidden_size"] == 16
    assert got.config["model"]["num_parameters"] == trainer.model.num_parameters()

    train = history(api, got.id, "train/loss")
    assert [r["_step"] for r in train] == list(range(LOGGING_STEPS, STEPS + 1, LOGGING_STEPS))
    assert [r["train/global_step"] for r in train] == [r["_step"] for r in train]
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert [r["train/loss"] for r in train] == pytest.approx([h["loss"] for h in logged])
    evals = history(api, got.id, "eval/loss")
    assert [r["_step"] for r in evals] == list(range(EVAL_STEPS, STEPS + 1, EVAL_STEPS))
    assert not any(k.startswith("eval/") for r in train for k in r)  # apart
    assert got.summary["train_runtime"] > 0 and "train/train_runtime" not in got.summary
    assert {"name": "*", "step_metric": "train/global_step"}.items() <= next(
        m for m in got.metrics if m["name"] == "*"
    ).items()
    keys = [k["key"] for k in got.keys()]  # noqa: SIM118 (ApiRun.keys(), not a dict)
    assert any(key.startswith("gradients/") for key in keys)

    # evaluate() after train() continues the same run
    trainer.evaluate()
    gradexp.finish()
    assert len(history(api, got.id, "eval/loss")) == len(evals) + 1
    assert [r.id for r in api.runs("hf-tests", {"q": "tiny-bert"})] == [got.id]


def test_seq2seq_trainer(api: Any, gx_env: Path) -> None:
    config = transformers.T5Config(
        vocab_size=50,
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    callback = GradexpCallback(project="hf-tests", name="tiny-t5")
    trainer = transformers.Seq2SeqTrainer(
        model=transformers.T5ForConditionalGeneration(config),
        args=_args(gx_env, transformers.Seq2SeqTrainingArguments),
        train_dataset=Tokens(48, seq2seq=True),
        eval_dataset=Tokens(16, seq2seq=True),
        callbacks=[callback],
    )
    trainer.train()
    [got] = api.runs("hf-tests", {"q": "tiny-t5"})
    assert got.state == "finished" and got.config["model"]["d_model"] == 16
    assert [r["_step"] for r in history(api, got.id, "train/loss")] == [3, 6, 9, 12]
    assert [r["_step"] for r in history(api, got.id, "eval/loss")] == [6, 12]


def test_an_active_run_is_used_and_left_open(api: Any, gx_env: Path) -> None:
    run = gradexp.init(project="hf-tests", name="mine")
    callback = GradexpCallback(project="not-this-one")
    _train(callback, gx_env)
    assert gradexp.run is run
    run.finish()
    got = api.run(run.id)
    assert got.name == "mine" and got.config["max_steps"] == STEPS
    assert len(history(api, run.id, "train/loss")) == STEPS // LOGGING_STEPS


def test_offline_and_disabled(gx_env: Path) -> None:
    _train(GradexpCallback(project="hf-tests", mode="offline"), gx_env)
    [run_dir] = run_files(gx_env)
    records = list(gradexp.runfile.RunFile(run_dir))
    steps = [r.data["step"] for r in records if r.type == "history"]
    assert steps == [3, 6, 6, 9, 12, 12, 12]  # train, eval, ..., and the totals' epoch row
    assert [r.data["exit_code"] for r in records if r.type == "finish"] == [0]

    trainer = _train(GradexpCallback(project="hf-tests", mode="disabled"), gx_env)
    assert trainer.state.global_step == STEPS and run_files(gx_env) == [run_dir]


def test_training_goes_on_when_gradexp_fails(gx_env: Path) -> None:
    with gradexp_warnings() as said:
        trainer = _train(GradexpCallback(project="not a valid name"), gx_env)
    assert trainer.state.global_step == STEPS
    assert len(said) == 1 and "could not start a run" in said[0]


def test_only_process_zero_writes(gx_env: Path) -> None:
    callback = GradexpCallback(project="hf-tests", mode="offline")
    args = _args(gx_env)
    other = transformers.TrainerState(is_world_process_zero=False, global_step=3)
    callback.on_train_begin(args, other, transformers.TrainerControl(), model=_bert())
    callback.on_log(args, other, transformers.TrainerControl(), logs={"loss": 1.0})
    callback.on_train_end(args, other, transformers.TrainerControl())
    assert callback.run is None and gradexp.run is None and run_files(gx_env) == []
