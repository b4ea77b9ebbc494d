"""``gradexp.config`` and ``gradexp.summary``: the current run's config and summary.

Scripts written for a module-level API reach the run's config without holding the run
(``gradexp.config.lr``, ``gradexp.config.update(args)``, ``gradexp.summary["best"] = x``).
Each is one object for the whole process that looks up the current run on every use,
so it always acts on the run ``gradexp.init()`` started last. Before ``init()`` (and
after ``finish()``) there is no run to act on: using them raises ``GradexpError``, while
looking at them (``repr``, ``bool``, ``hasattr``) does not.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from gradexp.errors import GradexpError
from gradexp.sdk.facade import current_run

__all__ = ["CurrentConfig", "CurrentSummary", "config", "summary"]


def _run_for(name: str) -> Any:
    run = current_run()
    if run is None:
        raise GradexpError(
            f"gradexp.{name} was used before gradexp.init(): call gradexp.init() first "
            f"(gradexp.{name} is the current run's {name})."
        )
    return run


class CurrentConfig(MutableMapping[str, Any]):
    """The current run's ``run.config`` (see :class:`gradexp.sdk.config.Config`)."""

    def _target(self) -> Any:
        return _run_for("config").config

    def __getitem__(self, key: str) -> Any:
        return self._target()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._target()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._target()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._target())

    def __len__(self) -> int:
        return len(self._target())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._target(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target(), name, value)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Record changes in the current run's config (see ``Config.update``)."""
        self._target().update(other, **kwargs)

    def as_dict(self) -> dict[str, Any]:
        """A plain copy of the current run's config."""
        return dict(self._target().as_dict())

    def __bool__(self) -> bool:
        run = current_run()
        return run is not None and len(run.config) > 0

    def __repr__(self) -> str:
        run = current_run()
        if run is None:
            return "<gradexp.config: no run; call gradexp.init() first>"
        return repr(run.config)


class CurrentSummary(MutableMapping[str, Any]):
    """The current run's ``run.summary`` (see :class:`gradexp.sdk.config.Summary`)."""

    def _target(self) -> Any:
        return _run_for("summary").summary

    def __getitem__(self, key: str) -> Any:
        return self._target()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._target()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._target()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._target())

    def __len__(self) -> int:
        return len(self._target())

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set explicit summary values of the current run."""
        self._target().update(other, **kwargs)

    def __bool__(self) -> bool:
        return current_run() is not None and len(self) > 0

    def __repr__(self) -> str:
        run = current_run()
        if run is None:
            return "<gradexp.summary: no run; call gradexp.init() first>"
        return repr(run.summary)


#: ``gradexp.config``: the current run's config.
config = CurrentConfig()
#: ``gradexp.summary``: the current run's summary.
summary = CurrentSummary()
