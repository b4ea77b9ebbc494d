"""``GradexpCallback``: log a Keras 3 ``model.fit()`` to gradexp (any backend).

::

    from gradexp.integrations.keras import GradexpCallback

    model.fit(x, y, validation_data=(vx, vy), callbacks=[GradexpCallback(project="mnist")])

- ``log_freq="epoch"`` (the default): one row per epoch with ``epoch/<metric>``
  (validation metrics as ``epoch/val_<metric>``), ``epoch/learning_rate`` and
  ``epoch/epoch``, which the epoch charts use as their x axis;
- ``log_freq="batch"``, or every ``N`` batches: also ``batch/<metric>`` (Keras reports
  each metric's running mean over the epoch so far), ``batch/learning_rate`` and
  ``batch/batch_step``;
- the run's step is the number of training batches so far, so batch and epoch rows keep
  one order, and a second ``fit()`` continues where the first stopped;
- the model's config (``model.get_config()``, its parameter count) and the optimizer's
  are recorded as the run's config, with ``epochs`` and ``steps`` (per epoch).

The run the callback started is finished when ``fit()`` ends; a run started with
``gradexp.init()`` before is used as it is, and left for its owner to finish. Every call is
guarded: a gradexp error is one warning and training goes on.

Keras is imported with this module (set ``KERAS_BACKEND`` before, as for Keras itself);
``import gradexp`` never imports it.
"""

from __future__ import annotations

from typing import Any

from gradexp.integrations._run import TrainerRun, plain_config

try:
    import keras
except ImportError:
    raise ImportError(
        "gradexp.integrations.keras needs Keras 3: pip install keras "
        "(or pip install 'gradexp[integrations]')"
    ) from None

__all__ = ["GradexpCallback"]


class GradexpCallback(keras.callbacks.Callback):
    """A Keras callback that logs ``fit()`` to a gradexp run.

    ``log_freq``: ``"epoch"``, ``"batch"`` or a number of batches. ``project``, ``name``,
    ``mode`` (``"online"``, ``"offline"``, ``"disabled"``), ``dir`` and any other keyword
    arguments are :func:`gradexp.init`'s, used when the callback starts the run.
    """

    def __init__(
        self,
        project: str | None = None,
        name: str | None = None,
        *,
        log_freq: str | int = "epoch",
        mode: str | None = None,
        dir: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        if log_freq == "epoch":
            every = 0
        elif log_freq == "batch":
            every = 1
        elif isinstance(log_freq, int) and not isinstance(log_freq, bool) and log_freq > 0:
            every = log_freq
        else:
            raise ValueError(f"log_freq={log_freq!r}: use 'epoch', 'batch' or a number of batches")
        self._every = every  # log every this many batches; 0: epochs only
        self._trainer_run = TrainerRun(
            "GradexpCallback",
            {"project": project, "name": name, "mode": mode, "dir": dir, **init_kwargs},
        )
        self._step = 0  # training batches so far (the run's step)
        self._ready: str | None = None  # the run that has the config and metric definitions

    @property
    def run(self) -> Any:
        """The :class:`gradexp.Run` the callback writes to (None before ``fit()``)."""
        return self._trainer_run.run

    def on_train_begin(self, logs: Any = None) -> None:
        """Start (or adopt) the run; record the model's config."""
        trainer_run = self._trainer_run
        with trainer_run.guard("start logging"):
            run = trainer_run.get()
            if run is None or self._ready == run.id:
                return
            self._ready = run.id
            with trainer_run.guard("record the model's config"):
                run.config.update(_config(self.model, self.params))
            with trainer_run.guard("define the metrics"):
                run.define_metric("epoch/*", step_metric="epoch/epoch")
                if self._every:
                    run.define_metric("batch/*", step_metric="batch/batch_step")

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        """Every ``log_freq`` batches: one ``batch/...`` row."""
        step = self._step = self._step + 1
        every = self._every
        if not every or step % every:
            return
        with self._trainer_run.guard("log batch metrics"):
            run = self._trainer_run.run
            if run is None:
                return
            values = {f"batch/{k}": v for k, v in (logs or {}).items()}
            values["batch/batch_step"] = step
            lr = _learning_rate(self.model)
            if lr is not None:
                values["batch/learning_rate"] = lr
            run.log(values, step=step)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        """One ``epoch/...`` row, with the validation metrics."""
        with self._trainer_run.guard("log epoch metrics"):
            run = self._trainer_run.run
            if run is None:
                return
            values = {f"epoch/{k}": v for k, v in (logs or {}).items()}
            values["epoch/epoch"] = epoch
            if "epoch/learning_rate" not in values:
                lr = _learning_rate(self.model)
                if lr is not None:
                    values["epoch/learning_rate"] = lr
            run.log(values, step=self._step)

    def on_train_end(self, logs: Any = None) -> None:
        """Finish the run the callback started (a run it adopted stays open)."""
        self._trainer_run.finish()


def _learning_rate(model: Any) -> float | None:
    """The optimizer's current learning rate (a schedule's value at this step)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        lr = optimizer.learning_rate
    except (AttributeError, TypeError, ValueError):
        return None
    try:
        return float(lr)  # a variable, or a schedule's value (a backend scalar)
    except (TypeError, ValueError):
        pass
    try:
        return float(keras.ops.convert_to_numpy(lr))
    except (TypeError, ValueError):
        return None


def _config(model: Any, params: Any) -> dict[str, Any]:
    """The run's config: the model's and the optimizer's configs, epochs and steps."""
    config: dict[str, Any] = {}
    for key in ("epochs", "steps"):
        if isinstance(params, dict) and params.get(key) is not None:
            config[key] = params[key]
    if model is None:
        return config
    described: dict[str, Any] = {"class": type(model).__name__}
    try:
        described.update(plain_config(model.get_config()))
    except (NotImplementedError, TypeError, AttributeError):
        pass  # a subclassed model without get_config(): its class name is what there is
    try:
        described["num_parameters"] = int(model.count_params())
    except (ValueError, AttributeError):
        pass  # a model whose weights are made at its first call has none to count
    config["model"] = described
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        try:
            config["optimizer"] = {"class": type(optimizer).__name__, **optimizer.get_config()}
        except (NotImplementedError, TypeError, AttributeError):
            config["optimizer"] = {"class": type(optimizer).__name__}
    return plain_config(config)
