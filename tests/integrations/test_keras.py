"""``GradexpCallback`` for Keras 3 (on the torch backend): a tiny model fits a few epochs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.services import require_module

from .conftest import gradexp_warnings, history, run_files

os.environ.setdefault("KERAS_BACKEND", "torch")
FIX = "install the test extras: pip install -e '.[integrations]'"
np = require_module("numpy", fix=FIX)
keras = require_module("keras", fix=FIX)

import gradexp  # noqa: E402
from gradexp.integrations.keras import GradexpCallback  # noqa: E402

EPOCHS = 3
BATCHES = 4  # per epoch


def _fit(callback: Any, epochs: int = EPOCHS, fail_at: int = -1) -> Any:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCHES * 16, 4)).astype("float32")
    y = (x.sum(1) > 0).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.9)
    model.compile(keras.optimizers.Adam(schedule), loss="binary_crossentropy", metrics=["accuracy"])
    callbacks = [callback]
    if fail_at >= 0:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_begin=_fail_at(fail_at)))
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=epochs,
        validation_data=(x[:16], y[:16]),
        verbose=0,
        callbacks=callbacks,
    )
    return model, history


def _fail_at(epoch: int) -> Any:
    def fail(e: int, logs: Any = None) -> None:
        if e == epoch:
            raise RuntimeError("out of memory")

    return fail


pytestmark = pytest.mark.slow


def test_epochs_online(api: Any) -> None:
    callback = GradexpCallback(project="keras-tests", name="epochs")
    model, fitted = _fit(callback)
    [got] = api.runs("keras-tests", {"q": "epochs"})
    assert got.state == "finished"
    assert got.config["epochs"] == EPOCHS and got.config["steps"] == BATCHES
    assert got.config["model"]["class"] == "Sequential"
    assert got.config["model"]["num_parameters"] == model.count_params()
    assert got.config["optimizer"]["class"] == "Adam"
    rows = history(api, got.id, "epoch/loss")
    assert [r["_step"] for r in rows] == [BATCHES * (e + 1) for e in range(EPOCHS)]
    assert [r["epoch/epoch"] for r in rows] == list(range(EPOCHS))
    assert [r["epoch/loss"] for r in rows] == pytest.approx(fitted.history["loss"])
    assert [r["epoch/val_loss"] for r in rows] == pytest.approx(fitted.history["val_loss"])
    # the schedule's value after each epoch's last step: 0.05 * 0.9 ** steps
    assert [r["epoch/learning_rate"] for r in rows] == pytest.approx(
        [0.05 * 0.9 ** (BATCHES * (e + 1)) for e in range(EPOCHS)], rel=1e-5
    )
    assert not history(api, got.id, "batch/loss")


def test_every_two_batches_and_a_second_fit_continues(api: Any) -> None:
    run = gradexp.init(project="keras-tests", name="batches")
    callback = GradexpCallback(log_freq=2)
    _fit(callback, epochs=2)
    _fit(callback, epochs=1)  # the same callback: the steps go on
    assert gradexp.run is run  # an active run is used, and left open
    run.finish()
    batches = history(api, run.id, "batch/loss")
    assert [r["_step"] for r in batches] == list(range(2, 3 * BATCHES + 1, 2))
    assert [r["batch/batch_step"] for r in batches] == [r["_step"] for r in batches]
    assert all(r["batch/learning_rate"] > 0 for r in batches)
    assert [r["_step"] for r in history(api, run.id, "epoch/loss")] == [4, 8, 12]


def test_an_exception_leaves_the_run_to_the_exit_hook(api: Any) -> None:
    callback = GradexpCallback(project="keras-tests", name="fails")
    with pytest.raises(RuntimeError, match="out of memory"):
        _fit(callback, fail_at=1)
    assert gradexp.run is callback.run  # still open: finishing is the program's
    gradexp.finish(exit_code=1)
    [got] = api.runs("keras-tests", {"q": "fails"})
    assert got.state == "failed" and len(history(api, got.id, "epoch/loss")) == 1


def test_offline_disabled_and_failing(gx_env: Path) -> None:
    _fit(GradexpCallback(project="keras-tests", mode="offline"), epochs=1)
    [run_dir] = run_files(gx_env)
    records = list(gradexp.runfile.RunFile(run_dir))
    assert [r.data["step"] for r in records if r.type == "history"] == [BATCHES]
    _fit(GradexpCallback(project="keras-tests", mode="disabled"), epochs=1)
    assert run_files(gx_env) == [run_dir]
    with gradexp_warnings() as said:
        _, fitted = _fit(GradexpCallback(project="not a valid name", log_freq="batch"))
    assert len(fitted.history["loss"]) == EPOCHS
    assert len(said) == 1 and "could not start a run" in said[0]


def test_log_freq_is_checked() -> None:
    with pytest.raises(ValueError, match="log_freq"):
        GradexpCallback(log_freq="step")
