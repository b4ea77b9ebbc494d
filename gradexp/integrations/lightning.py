"""``GradexpLogger``: a PyTorch Lightning logger that writes to a gradexp run.

::

    from gradexp.integrations.lightning import GradexpLogger

    trainer = lightning.Trainer(logger=GradexpLogger(project="mnist", name="baseline"))

- ``log_metrics`` logs what ``self.log(...)`` produced at the trainer's step (the run's
  ``_step`` is the trainer's ``global_step`` as Lightning reports it);
- ``log_hyperparams`` records the module's ``hparams`` (a dict, nested dicts, an
  ``argparse.Namespace``) as the run's config;
- ``watch(model)`` records gradient histograms and norms (``gradexp.watch``);
- ``log_model=True`` (or ``"all"``) logs the checkpoints as versions of the artifact
  ``model-<run id>``, the best one aliased ``best``;
- ``experiment`` is the :class:`gradexp.Run`;
- ``finalize`` finishes the run the logger started: finished on success, failed when the
  trainer stopped on an exception. Fitting again, or testing, with the same logger continues
  that run. A run started with ``gradexp.init()`` before the trainer is used as it is, and
  left for its owner to finish.

Only global rank zero writes (Lightning's ``rank_zero_only``); the other ranks see a dummy
experiment. Every call is guarded: a gradexp error is one warning and training goes on.

Lightning (``lightning.pytorch``) is imported with this module; ``import gradexp`` never
imports it.
"""

from __future__ import annotations

from typing import Any

from gradexp.errors import GradexpError
from gradexp.integrations._run import TrainerRun, plain_config
from gradexp.sdk.ids import random_id
from gradexp.sdk.run import Run

try:
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:
    raise ImportError(
        "gradexp.integrations.lightning needs PyTorch Lightning 2: "
        "pip install lightning (or pip install 'gradexp[integrations]')"
    ) from None

__all__ = ["GradexpLogger"]


class GradexpLogger(Logger):
    """Log a Lightning ``Trainer`` to gradexp.

    ``project``, ``name``, ``id``, ``config``, ``tags``, ``notes``, ``group``, ``mode``
    (``"online"``, ``"offline"``, ``"disabled"``), ``dir`` and any other keyword arguments
    are :func:`gradexp.init`'s, used when the logger starts the run (on the trainer's first
    record). ``log_model``: ``True`` logs the checkpoints of the ``ModelCheckpoint``
    callbacks as versions of the artifact ``model-<run id>`` (type ``model``) when fitting
    ends successfully (as they are saved, when ``save_top_k=-1`` keeps all of them);
    ``"all"`` logs each one as it is saved; ``False`` (the default) logs none.
    """

    def __init__(
        self,
        project: str | None = None,
        name: str | None = None,
        *,
        id: str | None = None,
        config: Any = None,
        mode: str | None = None,
        dir: str | None = None,
        log_model: bool | str = False,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        if log_model not in (False, True, "all"):
            raise GradexpError(f"log_model={log_model!r}: use False, True or 'all'.")
        self._log_model = log_model
        self._checkpoint_callbacks: dict[int, Any] = {}  # logged when fitting ends
        self._logged_checkpoints: dict[str, float] = {}  # path -> mtime already logged
        self._id = id or random_id()
        self._project = project
        self._run = TrainerRun(
            "GradexpLogger",
            {
                "project": project,
                "name": name,
                "id": self._id,
                "config": config,
                "mode": mode,
                "dir": dir,
                **init_kwargs,
            },
        )

    # --- what Lightning asks of a logger --------------------------------------------------

    @property
    def name(self) -> str | None:
        """The project (Lightning names checkpoint folders after it)."""
        run = self._run.run
        return run.project if run is not None else self._project

    @property
    def version(self) -> str:
        """The run's id."""
        run = self._run.run
        return run.id if run is not None else self._id

    @property
    @rank_zero_experiment
    def experiment(self) -> Run | None:
        """The :class:`gradexp.Run` this logger writes to (started on first use); a dummy
        on ranks other than zero, None if the run could not be started."""
        return self._start()

    @rank_zero_only
    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        """Log ``metrics`` at the trainer's ``step``."""
        with self._run.guard("log metrics"):
            run = self._start()
            if run is not None:
                run.log(metrics, step=step)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Record hyperparameters (a dict, nested dicts, a ``Namespace``) as the run's config."""
        with self._run.guard("record hyperparameters"):
            run = self._start()
            if run is not None:
                run.config.update(plain_config(params))

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Lightning calls this at the start of fitting; gradexp records no graph."""

    @rank_zero_only
    def watch(
        self, model: Any, log: str | None = "gradients", log_freq: int = 100, **kwargs: Any
    ) -> None:
        """Record gradient (and, with ``log="all"``, parameter) histograms and norms of
        ``model`` every ``log_freq`` optimizer steps (see :func:`gradexp.watch`)."""
        with self._run.guard("watch the model"):
            if self._start() is not None:
                from gradexp.integrations.torch import watch

                watch(model, log=log, log_freq=log_freq, **kwargs)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """A ``ModelCheckpoint`` saved: log it now (``log_model="all"``, or ``True`` with
        ``save_top_k=-1``), or remember the callback until fitting ends (``True``)."""
        if self._log_model == "all" or (
            self._log_model is True and checkpoint_callback.save_top_k == -1
        ):
            with self._run.guard("log the checkpoint"):
                self._log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """The trainer is done: log the checkpoints still to log (``log_model=True``, when it
        succeeded), and finish the run this logger started (failed when ``status`` is
        ``"failed"``: the trainer stopped on an exception). A later fit or test with this
        logger continues the same run."""
        if status == "success" and self._checkpoint_callbacks and self._run.started:
            with self._run.guard("log the checkpoints"):
                for callback in self._checkpoint_callbacks.values():
                    self._log_checkpoints(callback)
        self._checkpoint_callbacks.clear()
        self._run.finish(exit_code=1 if status == "failed" else 0)

    def _start(self) -> Run | None:
        return self._run.get()

    def _log_checkpoints(self, callback: Any) -> None:
        """Log each checkpoint of ``callback`` not logged yet, oldest first, as the next
        version of ``model-<run id>``: its score and step in the metadata, ``best`` on the
        best one, ``latest`` (always) on the newest. Each file is copied aside as it is
        added, so the callback may delete it (``save_top_k``) before it is uploaded."""
        import os

        from gradexp.sdk.artifacts import Artifact

        run = self._start()
        if run is None or run.mode == "disabled":
            return
        scores: dict[str, Any] = dict(getattr(callback, "best_k_models", {}) or {})
        for path in (callback.last_model_path, callback.best_model_path):
            if path:
                scores.setdefault(path, None)
        found = [(os.path.getmtime(p), p) for p in scores if os.path.isfile(p)]
        for mtime, path in sorted(found):
            if self._logged_checkpoints.get(path) == mtime:
                continue
            score = scores[path]
            metadata = {
                "score": None if score is None else float(score),
                "monitor": callback.monitor,
                "original_filename": os.path.basename(path),
            }
            artifact = Artifact(f"model-{run.id}", type="model", metadata=metadata)
            artifact.add_file(path)
            aliases = ["best"] if path == callback.best_model_path else []
            run.log_artifact(artifact, aliases=aliases)
            self._logged_checkpoints[path] = mtime
