"""``GradexpTracker``: an Accelerate training loop on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.services import require_module

from .conftest import gradexp_warnings, history, run_files

FIX = "install the test extras: pip install -e '.[integrations]'"
torch = require_module("torch", fix=FIX)
accelerate = require_module("accelerate", fix=FIX)

import gradexp  # noqa: E402
from gradexp.integrations.accelerate import GradexpTracker  # noqa: E402

STEPS = 6


def _train(tracker: Any, config: Any = None, evaluate_every: int = 3) -> list[float]:
    accelerator = accelerate.Accelerator(cpu=True, log_with=tracker)
    accelerator.init_trackers("ignored", config=config)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    x = torch.randn(32, 4)
    y = x.sum(1, keepdim=True)
    losses = []
    for step in range(STEPS):
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        accelerator.log({"train/loss": loss.item()}, step=step)
        if (step + 1) % evaluate_every == 0:
            accelerator.log({"eval/loss": loss.item() / 2}, step=step)
    assert accelerator.get_tracker("gradexp", unwrap=True) is tracker.tracker
    accelerator.end_training()
    return losses


def test_online(api: Any) -> None:
    tracker = GradexpTracker(project="accelerate-tests", run_name="loop")
    losses = _train(tracker, config={"lr": 0.1, "data": {"n": 32}})
    [got] = api.runs("accelerate-tests", {"q": "loop"})
    assert got.state == "finished" and got.config == {"lr": 0.1, "data": {"n": 32}}
    rows = history(api, got.id, "train/loss")
    assert [r["_step"] for r in rows] == list(range(STEPS))
    assert [r["train/loss"] for r in rows] == pytest.approx(losses)
    assert [r["_step"] for r in history(api, got.id, "eval/loss")] == [2, 5]
    assert tracker.tracker is None and gradexp.run is None  # finished by end_training()


def test_an_active_run_is_used_and_left_open(api: Any) -> None:
    run = gradexp.init(project="accelerate-tests", name="mine")
    _train(GradexpTracker(project="not-this-one"))
    assert gradexp.run is run
    run.finish()
    assert len(history(api, run.id, "train/loss")) == STEPS


def test_offline_disabled_and_failing(gx_env: Path) -> None:
    _train(GradexpTracker(project="accelerate-tests", mode="offline"))
    [run_dir] = run_files(gx_env)
    records = list(gradexp.runfile.RunFile(run_dir))
    assert [r.data["step"] for r in records if r.type == "history"] == [0, 1, 2, 2, 3, 4, 5, 5]
    _train(GradexpTracker(project="accelerate-tests", mode="disabled"))
    assert run_files(gx_env) == [run_dir]
    with gradexp_warnings() as said:
        losses = _train(GradexpTracker(project="not a valid name"), config={"lr": 0.1})
    assert len(losses) == STEPS
    assert len(said) == 1 and "could not start a run" in said[0]
