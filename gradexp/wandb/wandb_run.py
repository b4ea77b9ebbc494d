"""The run ``wandb.init()`` returns: a :class:`gradexp.Run` with the few methods of wandb's
run that scripts call and gradexp spells otherwise (``get_url``, ``log_code``,
``mark_preempting``). gradexp's own ``Run`` keeps its own names; ``init`` gives the run it
made this class (same object, same state: ``isinstance(run, gradexp.Run)`` still holds).

(Not named ``run``: a submodule of that name would hide ``wandb.run``.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gradexp.sdk.run import Run
from gradexp.wandb.term import _once

__all__ = ["WandbRun", "as_wandb_run"]

#: The most files ``log_code`` takes (a root that is a whole home folder is a mistake).
MAX_CODE_FILES = 1000


class WandbRun(Run):
    """:class:`gradexp.Run` with wandb's spelling of a few of its methods."""

    __slots__ = ()

    def get_url(self) -> str | None:
        """The run's page (``run.url``)."""
        return self.url

    def mark_preempting(self) -> None:
        """Nothing to do: a run that stops without finishing reads as crashed and is
        resumed by id (``resume="allow"``)."""
        _once("mark_preempting", "run.mark_preempting() has no effect in gradexp.")

    def log_code(
        self,
        root: str | os.PathLike[str] | None = ".",
        name: str | None = None,
        include_fn: Callable[..., bool] | None = None,
        exclude_fn: Callable[..., bool] | None = None,
        **_ignored: Any,
    ) -> Any:
        """The source files under ``root`` (``*.py`` unless ``include_fn`` says otherwise)
        as an artifact of type ``code`` (``source-<run id>`` unless ``name``), logged by
        this run; None when there is no file."""
        from gradexp.sdk.artifacts import Artifact

        base = os.path.abspath(root or ".")
        files: list[tuple[str, str]] = []
        for folder, dirs, names in os.walk(base):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for file in sorted(names):
                path = os.path.join(folder, file)
                if not _wanted(path, base, include_fn, exclude_fn):
                    continue
                files.append((path, os.path.relpath(path, base)))
                if len(files) > MAX_CODE_FILES:
                    raise ValueError(
                        f"log_code(): more than {MAX_CODE_FILES} files under {base}: "
                        "pass a narrower root= or an include_fn"
                    )
        if not files:
            return None
        artifact = Artifact(name or f"source-{self.id}", "code")
        for path, rel in files:
            artifact.add_file(path, name=rel)
        return self.log_artifact(artifact)


def _wanted(
    path: str,
    root: str,
    include_fn: Callable[..., bool] | None,
    exclude_fn: Callable[..., bool] | None,
) -> bool:
    """wandb's filters take (path) or (path, root)."""

    def call(fn: Callable[..., bool]) -> bool:
        try:
            return bool(fn(path, root))
        except TypeError:
            return bool(fn(path))

    if include_fn is not None:
        if not call(include_fn):
            return False
    elif not path.endswith(".py"):
        return False
    return not (exclude_fn is not None and call(exclude_fn))


def as_wandb_run(run: Any) -> Any:
    """The same run, now a :class:`WandbRun` (a plain :class:`Run`'s class is swapped; a
    subclass of gradexp's own is left as it is)."""
    if type(run) is Run:
        run.__class__ = WandbRun
    return run
