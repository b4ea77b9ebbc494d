"""``run.dir`` of a disabled run: a temporary folder, made on first use.

A disabled run writes nothing, but scripts join paths onto ``run.dir`` to save their own
files (checkpoints, plots). So it is a real folder: made under the system's temporary
directory the first time it is asked for, and removed (with whatever the script put
there) when the process exits.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile

__all__ = ["scratch_dir"]

_made: list[str] = []


def scratch_dir(run_id: str) -> str:
    """A new temporary folder for run ``run_id``, removed at exit."""
    path = tempfile.mkdtemp(prefix=f"gradexp-disabled-{run_id}-")
    if not _made:
        atexit.register(_remove_all)
    _made.append(path)
    return path


def _remove_all() -> None:
    for path in _made:
        shutil.rmtree(path, ignore_errors=True)
