"""``GradexpCallback``: log a Hugging Face ``Trainer`` to gradexp.

::

    from gradexp.integrations.transformers import GradexpCallback

    trainer = Trainer(..., callbacks=[GradexpCallback(project="glue")], report_to="none")

- at the start of training, the ``TrainingArguments`` are recorded as the run's config,
  and the model's config (with its parameter count) under ``model``;
- every ``on_log`` is one history row at the trainer's ``global_step``: training keys
  as ``train/<key>``, evaluation keys as ``eval/<key>``, prediction metrics as
  ``test/<key>``, each row with ``train/global_step``, which every chart uses as its x
  axis (``define_metric``). The one-off totals of a finished training (``train_runtime``,
  ``total_flos``, ...) go to the run's summary instead;
- ``watch="gradients"`` (or ``"parameters"``, ``"all"``) records histograms and norms of
  the model (:func:`gradexp.watch`);
- at the end of training, the run the callback started is finished; an ``evaluate()``
  after ``train()`` continues the same run. A run started with ``gradexp.init()`` before
  the trainer is used as it is, and left for its owner to finish.

Any trainer that follows the ``TrainerCallback`` protocol works: ``Seq2SeqTrainer``, and
TRL's trainers. Only the world's process zero writes. Every call is guarded: a gradexp
error is one warning and training goes on.

``transformers`` is imported with this module; ``import gradexp`` never imports it.
"""

from __future__ import annotations

from typing import Any

from gradexp.integrations._run import TrainerRun, plain_config

try:
    from transformers import TrainerCallback
except ImportError:
    raise ImportError(
        "gradexp.integrations.transformers needs transformers: "
        "pip install transformers (or pip install 'gradexp[integrations]')"
    ) from None

__all__ = ["GradexpCallback"]

#: What a finished training logs once: the run's summary holds them, not its history.
_TOTALS = frozenset(
    (
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "train_loss",
        "total_flos",
    )
)
_STEP_KEY = "train/global_step"


class GradexpCallback(TrainerCallback):
    """A ``TrainerCallback`` that logs the training to a gradexp run.

    ``project``, ``name`` (default: ``TrainingArguments.run_name``), ``mode``
    (``"online"``, ``"offline"``, ``"disabled"``), ``dir`` and any other keyword arguments
    are :func:`gradexp.init`'s, used when the callback starts the run. ``watch``:
    ``"gradients"``, ``"parameters"`` or ``"all"`` to record the model's histograms every
    ``watch_freq`` optimizer steps (default: 100, or the logging interval if longer).
    """

    def __init__(
        self,
        project: str | None = None,
        name: str | None = None,
        *,
        mode: str | None = None,
        dir: str | None = None,
        watch: str | None = None,
        watch_freq: int | None = None,
        **init_kwargs: Any,
    ) -> None:
        if watch not in (None, "gradients", "parameters", "all"):
            raise ValueError(f"watch={watch!r}: use 'gradients', 'parameters', 'all' or None")
        self._run = TrainerRun(
            "GradexpCallback",
            {"project": project, "name": name, "mode": mode, "dir": dir, **init_kwargs},
        )
        self._watch = watch
        self._watch_freq = watch_freq
        self._ready: str | None = None  # the run that has the config and metric definitions

    @property
    def run(self) -> Any:
        """The :class:`gradexp.Run` the callback writes to (None before training starts)."""
        return self._run.run

    def _setup(self, args: Any, state: Any, model: Any) -> Any:
        """The run, with the trainer's config and metric definitions (once per run)."""
        trainer_run = self._run
        if not trainer_run.started and "name" not in trainer_run.init_kwargs:
            run_name = getattr(args, "run_name", None)
            if run_name and run_name != getattr(args, "output_dir", None):
                trainer_run.init_kwargs["name"] = run_name
        run = trainer_run.get()
        if run is None or self._ready == run.id:
            return run
        self._ready = run.id
        with trainer_run.guard("record the training arguments"):
            config = plain_config(args.to_dict())
            model_config = _model_config(model)
            if model_config is not None:
                config["model"] = model_config
            run.config.update(config)
        with trainer_run.guard("define the metrics"):
            run.define_metric(_STEP_KEY)
            run.define_metric("*", step_metric=_STEP_KEY)
        if self._watch is not None and model is not None:
            with trainer_run.guard("watch the model"):
                from gradexp.integrations.torch import watch

                freq = self._watch_freq or max(100, int(getattr(state, "logging_steps", 0) or 0))
                watch(model, log=self._watch, log_freq=freq)
        return run

    # --- the callback protocol --------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start (or adopt) the run and record the config."""
        if state.is_world_process_zero:
            with self._run.guard("start logging"):
                self._setup(args, state, kwargs.get("model"))

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        """One history row at ``global_step``: ``train/...`` and ``eval/...`` keys."""
        if not state.is_world_process_zero or not logs:
            return
        with self._run.guard("log metrics"):
            run = self._setup(args, state, kwargs.get("model"))
            if run is None:
                return
            step = int(state.global_step)
            values: dict[str, Any] = {}
            totals: dict[str, Any] = {}
            for key, value in logs.items():
                if key in _TOTALS:
                    totals[key] = value
                else:
                    values[_rename(key)] = value
            if values:
                values[_STEP_KEY] = step
                run.log(values, step=step)
            if totals:
                run.summary.update(totals)

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Any, **kwargs: Any) -> None:
        """``trainer.predict()``'s metrics, as ``test/...`` keys."""
        self.on_log(args, state, control, logs=metrics, **kwargs)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Finish the run the callback started (a run it adopted stays open)."""
        if state.is_world_process_zero:
            self._run.finish()


def _rename(key: str) -> str:
    """``eval_loss`` -> ``eval/loss``, ``test_loss`` -> ``test/loss``, ``loss`` -> ``train/loss``."""
    for prefix in ("eval", "test"):
        if key.startswith(prefix + "_"):
            return f"{prefix}/{key[len(prefix) + 1 :]}"
    return f"train/{key}"


def _model_config(model: Any) -> dict[str, Any] | None:
    """The model's config (``PretrainedConfig.to_dict()``) and parameter count, if it has them."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    out = plain_config(config if isinstance(config, dict) else config.to_dict())
    try:
        out["num_parameters"] = int(model.num_parameters())
    except (AttributeError, TypeError):
        pass
    return out
