"""Process hooks: finish the current run at exit, on SIGTERM, and after an uncaught exception.

Installed by the first ``init()`` (not at import: a program that never starts a run keeps
its process as it was), once per process:

- **exit** (``atexit``): :func:`_finish_at_exit` finishes the current run with a bounded
  wait, recording exit code 1 after an uncaught exception and 128 + N after signal N;
- **excepthook**: wrapped, only to note that the program died of an exception;
- **SIGTERM** (:func:`install_sigterm_handler`): raises ``SystemExit(143)`` in the main
  thread, so ``finally`` blocks run and the exit hook finishes the run;
- **fork**: a forked child gets SIGTERM's default action back (a DataLoader worker told
  to stop must stop). The child's other inherited state is reset where it lives: the
  current run in ``gradexp.sdk.facade``, the stream thread's handle in
  ``gradexp.stream.thread``.

What the hooks know lives in one object, ``_hooks`` (:class:`_ProcessHooks`).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

from gradexp.core.output import say
from gradexp.stream.channel import OPEN

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from gradexp.sdk.run import Run

__all__ = ["install", "install_sigterm_handler"]


def _no_run() -> Run | None:
    return None


class _ProcessHooks:
    """The process-wide state of the hooks (one per process).

    ``current`` returns the run to finish (the facade's current run). The flags are
    written by the hooks themselves, on the thread that runs them (the main thread for
    signals and the exit hook). Fork: a child inherits the flags unchanged; its exit
    hook does nothing for a run its parent started (``Run._pid``).
    """

    __slots__ = ("current", "installed", "sigterm_handled", "terminated_by", "uncaught_exception")

    def __init__(self) -> None:
        self.current: Callable[[], Run | None] = _no_run
        self.installed = False
        self.uncaught_exception = False  # the program died of an uncaught exception
        self.sigterm_handled = False  # our SIGTERM handler is installed (or another one is)
        self.terminated_by = 0  # the signal that ended this process through _on_sigterm


_hooks = _ProcessHooks()


def install(current: Callable[[], Run | None]) -> None:
    """Once per process: the exit hook, the fork hook and the excepthook wrapper.

    ``current`` returns the run the hooks finish (looked up when they run).
    """
    _hooks.current = current
    if _hooks.installed:
        return
    _hooks.installed = True
    atexit.register(_finish_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_sigterm_in_child)
    previous = sys.excepthook

    def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
        _hooks.uncaught_exception = True  # so the exit hook records the run as failed
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook


def install_sigterm_handler() -> None:
    """Make SIGTERM end the process the way an exception would, so the run is finished.

    A scheduler's preemption, ``kill``, or a container stop sends SIGTERM, whose default
    action ends the process at once: the run would lose its last ~100 ms of records and
    read as crashed. With this handler the main thread raises ``SystemExit(143)``, so
    ``finally`` blocks and context managers run and the exit hook finishes the run with
    exit code 143. Installed only where SIGTERM still has its default action (a handler
    of the program's own, or a framework's, is left alone), and only from the main thread
    (Python's rule for signal handlers); a second SIGTERM ends the process at once.
    """
    if _hooks.sigterm_handled or threading.current_thread() is not threading.main_thread():
        return
    import signal

    _hooks.sigterm_handled = True
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # no signals here (an embedded interpreter ...)
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process now
    if _hooks.terminated_by:
        return
    _hooks.terminated_by = signum
    run = _hooks.current()
    if run is not None and run._pid == os.getpid() and run._channel.state in OPEN:
        say(f"SIGTERM: finishing run {run.id} before exiting (send it again to exit now)")
    raise SystemExit(128 + signum)


def _finish_at_exit() -> None:
    """At interpreter exit, finish the current run with a bounded wait.

    Runs on the main thread after non-daemon threads were joined; the stream thread (a
    daemon) is still alive here. A forked child that inherited a run does nothing: the
    run belongs to its parent. Ctrl-C during the wait abandons the wait (finish() closes
    the run file first), never the file.
    """
    run = _hooks.current()
    if run is None or run._pid != os.getpid() or run._channel.state not in OPEN:
        return
    code = int(_hooks.uncaught_exception)  # 1 if the program died of an uncaught exception
    if _hooks.terminated_by:
        code = 128 + _hooks.terminated_by
    try:
        run.finish(exit_code=code)
    except (KeyboardInterrupt, SystemExit):  # the wait was abandoned; the file is closed
        pass


def _reset_sigterm_in_child() -> None:
    """A forked child's SIGTERM is its own business (a DataLoader worker told to stop)."""
    import signal

    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass
