"""``GradexpTracker``: an Accelerate tracker that writes to a gradexp run.

::

    from accelerate import Accelerator
    from gradexp.integrations.accelerate import GradexpTracker

    accelerator = Accelerator(log_with=GradexpTracker(project="glue"))
    accelerator.init_trackers("glue", config={"lr": 1e-3})  # the config is recorded
    accelerator.log({"train/loss": loss}, step=step)
    accelerator.end_training()                              # finishes the run

- ``init_trackers`` starts the run (or adopts one started with ``gradexp.init()``) and
  ``store_init_configuration`` records the config;
- ``log(values, step)`` is one history row at ``step`` (the next step without one);
- ``finish`` (``accelerator.end_training()``) finishes the run the tracker started; a run
  it adopted is left for its owner to finish;
- ``accelerator.get_tracker("gradexp", unwrap=True)`` is the :class:`gradexp.Run`.

Only the main process writes (Accelerate's ``main_process_only``). The project is the
tracker's own (``GradexpTracker(project=...)``, ``GRADEXP_PROJECT``): Accelerate does not
pass ``init_trackers``' project name to trackers it did not build. Every call is guarded: a
gradexp error is one warning and training goes on.

``accelerate`` is imported with this module; ``import gradexp`` never imports it.
"""

from __future__ import annotations

from typing import Any

from gradexp.integrations._run import TrainerRun, plain_config

try:
    from accelerate.tracking import GeneralTracker, on_main_process
except ImportError:
    raise ImportError(
        "gradexp.integrations.accelerate needs accelerate: pip install accelerate "
        "(or pip install 'gradexp[integrations]')"
    ) from None

__all__ = ["GradexpTracker"]


class GradexpTracker(GeneralTracker):
    """An Accelerate ``GeneralTracker`` for gradexp: pass an instance as ``log_with``.

    ``project``, ``name``, ``mode`` (``"online"``, ``"offline"``, ``"disabled"``), ``dir``
    and any other keyword arguments are :func:`gradexp.init`'s, used when the tracker
    starts the run.
    """

    name = "gradexp"
    requires_logging_directory = False
    main_process_only = True

    def __init__(
        self,
        project: str | None = None,
        run_name: str | None = None,
        *,
        mode: str | None = None,
        dir: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        self._trainer_run = TrainerRun(
            "GradexpTracker",
            {"project": project, "name": run_name, "mode": mode, "dir": dir, **init_kwargs},
        )
        super().__init__()

    @property
    def tracker(self) -> Any:
        """The :class:`gradexp.Run` (None before ``init_trackers``)."""
        return self._trainer_run.run

    @on_main_process
    def start(self) -> None:
        """Start (or adopt) the run: ``accelerator.init_trackers`` calls this."""
        with self._trainer_run.guard("start logging"):
            self._trainer_run.get()

    @on_main_process
    def store_init_configuration(self, values: dict[str, Any]) -> None:
        """Record ``values`` as the run's config."""
        with self._trainer_run.guard("record the configuration"):
            run = self._trainer_run.get()
            if run is not None:
                run.config.update(plain_config(values))

    @on_main_process
    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """One history row at ``step`` (the next step when None)."""
        with self._trainer_run.guard("log metrics"):
            run = self._trainer_run.get()
            if run is not None:
                run.log(values, step=step)

    @on_main_process
    def finish(self) -> None:
        """Finish the run the tracker started (``accelerator.end_training()``)."""
        self._trainer_run.finish()
