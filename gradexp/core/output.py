"""What gradexp prints: one informational line (:func:`say`) or a warning (:func:`warn`).

Lines go to stderr prefixed ``gradexp:``. ``GRADEXP_QUIET=1`` (or ``init(settings=
{"quiet": True})``, which calls :func:`set_quiet`) silences the informational lines;
warnings are always shown, through ``warnings`` so that filters apply.
"""

from __future__ import annotations

import os
import sys

from gradexp.errors import GradexpWarning

ENV_QUIET = "GRADEXP_QUIET"

_quiet = bool(os.environ.get(ENV_QUIET, "").strip() not in ("", "0", "false"))


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) informational lines; warnings are always shown."""
    global _quiet
    _quiet = quiet


def say(message: str) -> None:
    """One informational line on stderr, prefixed ``gradexp:``."""
    if not _quiet:
        try:
            print(f"gradexp: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # a closed stderr must never break training
            pass


def warn(message: str, stacklevel: int = 2) -> None:
    """A warning the user should see once (the caller decides what "once" means)."""
    import warnings

    warnings.warn(f"gradexp: {message}", GradexpWarning, stacklevel=stacklevel + 1)
