"""Importing in the background without breaking ``fork()``.

A module being imported holds its import lock until it is done. If the process forks
meanwhile (a DataLoader starting its workers right after ``init()``), the child inherits
that lock held by a thread that does not exist there, and the child's first import of
the same module (a warning being shown, say) waits forever.

So the stream thread's background work (system metrics, the environment) imports what it
needs first, through :func:`preload`, under a lock that a fork waits for
(``os.register_at_fork(before=...)``, bounded): a fork then never happens in the middle
of one of these imports, and what runs afterwards imports nothing new.
"""

from __future__ import annotations

import importlib
import os
import threading

__all__ = ["preload"]

#: How long a fork waits for a background import to end (it normally takes milliseconds).
FORK_WAIT_S = 10.0


class _Gate:
    """The lock background imports hold and a fork waits for (one per process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held_for_fork = False

    def before_fork(self) -> None:
        self.held_for_fork = self.lock.acquire(timeout=FORK_WAIT_S)

    def after_fork_in_parent(self) -> None:
        if self.held_for_fork:
            self.held_for_fork = False
            self.lock.release()

    def after_fork_in_child(self) -> None:
        self.lock = threading.Lock()
        self.held_for_fork = False


_gate = _Gate()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_gate.before_fork,
        after_in_parent=_gate.after_fork_in_parent,
        after_in_child=_gate.after_fork_in_child,
    )


def preload(*names: str) -> None:
    """Import these modules (a missing optional one is skipped), with forks held off."""
    with _gate.lock:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: PERF203 - ImportError, or a broken optional package
                continue
