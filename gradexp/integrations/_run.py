"""What the framework integrations share: the run they write to, and the guard that keeps
gradexp's own errors out of the training loop.

An integration is called by a trainer, inside someone's training job. Whatever goes wrong
on gradexp's side (a bad setting, a full disk, a value it cannot take) must cost that job
one warning line, never the job: every call an integration makes into gradexp runs under
:meth:`TrainerRun.guard`, which turns an exception into that one line (once per kind of
call) and lets training go on.

The run is started lazily, on the first thing the trainer records, so that building a
logger or a callback never touches the disk. A run that is already active then
(``gradexp.init()`` before the trainer starts) is used as it is: the integration logs into
it and leaves finishing it to whoever started it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradexp.core.output import warn
from gradexp.sdk.facade import current_run, init
from gradexp.sdk.run import Run

__all__ = ["TrainerRun", "plain_config"]


class _Guard:
    """``with trainer_run.guard("log metrics"):``: an exception inside is one warning."""

    __slots__ = ("_owner", "_what")

    def __init__(self, owner: TrainerRun, what: str) -> None:
        self._owner = owner
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None or not issubclass(exc_type, Exception):
            return False  # KeyboardInterrupt and SystemExit are the user's, not ours
        self._owner.failed(self._what, exc)
        return True


class TrainerRun:
    """The gradexp run one integration writes to.

    ``integration`` names the integration in messages (``"GradexpLogger"``);
    ``init_kwargs`` are :func:`gradexp.init`'s arguments, used when no run is active.
    """

    def __init__(self, integration: str, init_kwargs: Mapping[str, Any]) -> None:
        self.integration = integration
        self.init_kwargs = {k: v for k, v in init_kwargs.items() if v is not None}
        self.run: Run | None = None
        #: this integration started the run, so it finishes it
        self.owned = False
        self._broken = False  # starting the run failed: every later call is a no-op
        self._said: set[str] = set()
        self._guards: dict[str, _Guard] = {}

    def guard(self, what: str) -> _Guard:
        """A context manager: an exception raised inside becomes one warning about ``what``
        (said once per ``what``), and the trainer goes on."""
        guard = self._guards.get(what)
        if guard is None:
            guard = self._guards[what] = _Guard(self, what)
        return guard

    def failed(self, what: str, exc: BaseException) -> None:
        """Say (once per ``what``) that gradexp could not do ``what``; training goes on."""
        if what in self._said:
            return
        self._said.add(what)
        warn(
            f"{self.integration} could not {what} ({type(exc).__name__}: {exc}); "
            "training goes on without it",
            stacklevel=4,
        )

    def get(self) -> Run | None:
        """The run: the one started or adopted before, the active one, or a new one.

        None when starting one failed (said once; training goes on without gradexp).
        """
        run = self.run
        if run is not None:
            return run
        if self._broken:
            return None
        active = current_run()
        if active is not None:
            self.run = active
            return active
        try:
            self.run = init(**self.init_kwargs)
        except Exception as exc:
            self._broken = True
            self.failed("start a run", exc)
            return None
        self.owned = True
        return self.run

    @property
    def started(self) -> bool:
        """Whether a run was started or adopted (and not finished here since)."""
        return self.run is not None

    def finish(self, exit_code: int = 0) -> None:
        """Finish the run if this integration started it; a run it adopted stays open.

        A trainer may be used again after that (``trainer.evaluate()`` after ``train()``,
        ``test`` after ``fit``): the next record continues the same run (``resume="allow"``)
        rather than starting another.
        """
        run, self.run = self.run, None
        if run is not None and self.owned:
            self.owned = False
            self.init_kwargs.update(id=run.id, resume="allow")
            with self.guard("finish the run"):
                run.finish(exit_code=exit_code)


def plain_config(params: Any) -> dict[str, Any]:
    """Hyperparameters as a config dict: a mapping, an ``argparse.Namespace``, a dataclass or
    any object with attributes. Nested mappings stay nested; callables become their names
    (a Lightning module's ``hparams`` may hold a class or a function)."""
    if params is None:
        return {}
    if isinstance(params, Mapping):
        items = dict(params)
    elif hasattr(params, "__dataclass_fields__"):
        import dataclasses

        items = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    elif hasattr(params, "__dict__"):
        items = {k: v for k, v in vars(params).items() if not k.startswith("_")}
    else:
        return {"params": str(params)}
    return {str(k): _plain(v) for k, v in items.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        return plain_config(value)
    if type(value).__name__ == "Namespace":
        return plain_config(value)
    if callable(value) and not hasattr(value, "dtype"):  # a class or function, not a tensor
        return getattr(value, "__qualname__", None) or getattr(value, "__name__", str(value))
    return value
