"""What the facade says to the user: once-only notes, and wandb's ``termlog`` family.

:func:`_once` is how the facade says that something a wandb script asked for is ignored
or changed here: a :class:`~gradexp.errors.GradexpWarning`, the first time only, pointing
at the script's line. ``termlog``, ``termwarn`` and ``termerror`` are wandb's functions
of those names, re-exported by ``gradexp.wandb``; ``repeat=False`` shares the once-only
memory (``_said``, which ``gradexp.wandb`` re-exports so tests can reset it).
"""

from __future__ import annotations

import os
import sys

from gradexp.errors import GradexpWarning

__all__ = ["termerror", "termlog", "termwarn"]

_said: set[str] = set()  # the once-only notes already given


def _once(what: str, message: str) -> None:
    """A GradexpWarning, the first time only, pointing at the script's line that caused it."""
    if what not in _said:
        _said.add(what)
        import warnings

        # the first frame outside gradexp: the script's call
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        frame, level = sys._getframe(1), 2  # stacklevel 2: the frame that called _once
        while frame is not None and frame.f_code.co_filename.startswith(package):
            frame, level = frame.f_back, level + 1  # type: ignore[assignment]
        warnings.warn(f"gradexp: {message}", GradexpWarning, stacklevel=level)


def termlog(
    string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True
) -> None:
    """Print a line for the user on stderr (``gradexp:`` first; ``repeat=False``: once)."""
    _term(string, "", repeat, prefix, newline)


def termwarn(
    string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True
) -> None:
    """Print a warning line on stderr."""
    _term(string, "WARNING ", repeat, prefix, newline)


def termerror(
    string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True
) -> None:
    """Print an error line on stderr."""
    _term(string, "ERROR ", repeat, prefix, newline)


def _term(text: str, level: str, repeat: bool, prefix: bool, newline: bool) -> None:
    if not repeat:
        if f"term:{text}" in _said:
            return
        _said.add(f"term:{text}")
    line = f"gradexp: {level}{text}" if prefix else f"{level}{text}"
    try:
        print(line, end="\n" if newline else "", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
