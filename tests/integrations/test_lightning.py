"""``GradexpLogger``: a real Lightning ``Trainer`` fits a tiny model on the CPU."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from tests.services import require_module

from .conftest import gradexp_warnings, history, run_files

L = require_module("lightning", fix="install the test extras: pip install -e '.[integrations]'")
torch = require_module("torch", fix="install the test extras: pip install -e '.[integrations]'")

from lightning.pytorch.loggers.logger import Logger  # noqa: E402

import gradexp  # noqa: E402
from gradexp.integrations.lightning import GradexpLogger  # noqa: E402

BATCHES = 8  # per epoch


class Tiny(L.LightningModule):  # type: ignore[misc]
    """A two-layer regression, with hyperparameters Lightning records (a nested dict too)."""

    def __init__(self, lr: float = 0.05, arch: dict[str, Any] | None = None, fail_at: int = -1):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
        )

    def training_step(self, batch: Any, index: int) -> Any:
        if self.global_step == self.hparams.fail_at:
            raise RuntimeError("the data loader found a corrupt shard")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Recorder(Logger):  # type: ignore[misc]
    """A second logger on the same trainer: what Lightning handed to its loggers."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int | None, dict[str, float]]] = []

    name = "recorder"
    version = "0"

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def _data() -> Any:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCHES * 4, 4, generator=g)
    dataset = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    return torch.utils.data.DataLoader(dataset, batch_size=4)


def _fit(logger: Any, module: Any = None, epochs: int = 2, **trainer: Any) -> Any:
    loggers = [logger, *trainer.pop("more_loggers", [])]
    fit = L.Trainer(
        max_epochs=epochs,
        logger=loggers,
        log_every_n_steps=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=str(Path.cwd()),
        **{"enable_checkpointing": False, **trainer},
    )
    fit.fit(module or Tiny(arch={"hidden": 8, "act": "relu"}), _data(), _data())
    return fit


@pytest.mark.slow
def test_online_run_holds_what_the_trainer_logged(api: Any) -> None:
    recorder = Recorder()
    logger = GradexpLogger(project="lightning-tests", name="tiny")
    run = logger.experiment
    assert isinstance(run, gradexp.Run) and run.id == logger.version
    logger.log_hyperparams(argparse.Namespace(batch_size=4, data={"shards": 2}))
    model = Tiny(arch={"hidden": 8, "act": "relu"})
    logger.watch(model, log_freq=4)
    trainer = _fit(logger, model, more_loggers=[recorder])

    got = api.run(run.id)
    assert got.state == "finished" and got.project == "lightning-tests" and got.name == "tiny"
    assert got.config["lr"] == 0.05 and got.config["arch"] == {"hidden": 8, "act": "relu"}
    assert got.config["batch_size"] == 4 and got.config["data"] == {"shards": 2}
    # one row per logging step, at the trainer's steps, as Lightning gave them to any logger
    train_steps = [step for step, metrics in recorder.calls if "train/loss" in metrics]
    val_steps = [step for step, metrics in recorder.calls if "val/loss" in metrics]
    assert len(train_steps) == trainer.global_step // 2 and len(val_steps) == 2
    train = history(api, run.id, "train/loss")
    assert [row["_step"] for row in train] == train_steps
    assert [row["train/loss"] for row in train] == pytest.approx(
        [m["train/loss"] for _, m in recorder.calls if "train/loss" in m]
    )
    assert [row["_step"] for row in history(api, run.id, "val/loss")] == val_steps
    keys = [k["key"] for k in got.keys()]  # noqa: SIM118 (ApiRun.keys(), not a dict)
    assert any(key.startswith("gradients/net.0.weight") for key in keys)


def test_an_exception_in_training_fails_the_run(api: Any) -> None:
    logger = GradexpLogger(project="lightning-tests")
    with pytest.raises(RuntimeError, match="corrupt shard"):
        _fit(logger, Tiny(fail_at=5))
    got = api.run(logger.version)
    assert got.state == "failed"
    assert [row["_step"] for row in history(api, logger.version, "train/loss")] == [1, 3]


@pytest.mark.slow
def test_fitting_then_testing_continues_one_run(api: Any) -> None:
    class Tested(Tiny):
        def test_step(self, batch: Any, index: int) -> None:
            x, y = batch
            self.log("test/loss", torch.nn.functional.mse_loss(self.net(x), y))

    logger = GradexpLogger(project="lightning-tests")
    trainer = _fit(logger, Tested(), epochs=1)
    trainer.test(trainer.lightning_module, _data(), verbose=False)
    runs = api.runs("lightning-tests", {"q": logger.version})
    assert [r.id for r in runs] == [logger.version] and runs[0].state == "finished"
    assert history(api, logger.version, "test/loss") and history(api, logger.version, "val/loss")


@pytest.mark.slow
def test_an_active_run_is_used_and_left_open(api: Any) -> None:
    run = gradexp.init(project="lightning-tests", config={"seed": 3})
    logger = GradexpLogger(project="ignored-when-a-run-is-active")
    _fit(logger, epochs=1)
    assert gradexp.run is run and logger.experiment is run
    gradexp.log({"after": 1})  # the script goes on with its own run
    run.finish()
    got = api.run(run.id)
    assert got.state == "finished" and got.config["seed"] == 3 and got.config["lr"] == 0.05
    assert history(api, run.id, "train/loss") and history(api, run.id, "after")
    assert "ignored-when-a-run-is-active" not in {p["name"] for p in api.projects()}


@pytest.mark.slow
def test_offline_writes_a_run_file(gx_env: Path) -> None:
    logger = GradexpLogger(project="lightning-tests", mode="offline")
    _fit(logger, epochs=1)
    [run_dir] = run_files(gx_env)
    records = list(gradexp.runfile.RunFile(run_dir))
    assert [
        r.data["step"] for r in records if r.type == "history" and "train/loss" in r.data["values"]
    ] == [1, 3, 5, 7]
    assert [r.data["exit_code"] for r in records if r.type == "finish"] == [0]


def test_disabled_writes_nothing(gx_env: Path) -> None:
    logger = GradexpLogger(project="lightning-tests", mode="disabled")
    trainer = _fit(logger, epochs=1)
    assert trainer.global_step == BATCHES and run_files(gx_env) == []
    assert gradexp.run is None  # finished: the next trainer does not log into it


def test_training_goes_on_when_gradexp_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # a run that cannot start: one warning, and the trainer does all its steps
    with gradexp_warnings() as said:
        trainer = _fit(GradexpLogger(project="not a valid name"), epochs=1)
    assert trainer.global_step == BATCHES
    assert len(said) == 1 and "could not start a run" in said[0] and "training goes on" in said[0]

    # a run that fails while training: one warning for all the failed calls
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gradexp.Run, "log", broken)
    with gradexp_warnings() as said:
        trainer = _fit(GradexpLogger(project="lightning-tests", mode="offline"), epochs=1)
    assert trainer.global_step == BATCHES
    assert len(said) == 1 and "could not log metrics" in said[0] and "No space left" in said[0]


@pytest.mark.slow
@pytest.mark.parametrize("log_model", [True, "all"])
def test_checkpoints_become_artifact_versions(api: Any, log_model: Any) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    checkpoints = ModelCheckpoint(monitor="val/loss", save_top_k=2, dirpath="ckpt")
    logger = GradexpLogger(project="lightning-tests", log_model=log_model)
    trainer = _fit(logger, epochs=3, enable_checkpointing=True, callbacks=[checkpoints])
    name = f"model-{logger.version}"
    versions = [a for a in api.artifacts("lightning-tests", type="model") if a.name == name]
    # True: the checkpoints kept at the end (top 2); "all": every one saved (one per epoch)
    assert len(versions) == (2 if log_model is True else 3)
    [best] = [a for a in versions if "best" in a.aliases]
    assert best.metadata["original_filename"] == Path(checkpoints.best_model_path).name
    assert best.metadata["score"] == pytest.approx(float(checkpoints.best_model_score))
    assert "latest" in max(versions, key=lambda a: int(a.version[1:])).aliases
    restored = Path(api.artifact(f"lightning-tests/{name}:best").download("restored"))
    state = torch.load(next(restored.glob("*.ckpt")), weights_only=False)
    assert (
        state["global_step"]
        == torch.load(checkpoints.best_model_path, weights_only=False)["global_step"]
    )
    assert trainer.global_step == 3 * BATCHES


def test_log_model_is_checked() -> None:
    with pytest.raises(gradexp.GradexpError, match="log_model"):
        GradexpLogger(project="lightning-tests", log_model="best")


def test_only_rank_zero_writes(gx_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.utilities import rank_zero_only

    logger = GradexpLogger(project="lightning-tests", mode="offline")
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # what DDP sets on the second process
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.finalize("success")
    assert not isinstance(logger.experiment, gradexp.Run)  # Lightning's dummy
    assert gradexp.run is None and run_files(gx_env) == []
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    logger.log_metrics({"train/loss": 1.0}, step=0)
    assert isinstance(logger.experiment, gradexp.Run) and len(run_files(gx_env)) == 1
