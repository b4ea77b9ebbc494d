"""The stream loop's default executor: daemon worker threads that keep working at exit.

A module of its own because it subclasses ``concurrent.futures.Executor``, whose import
(logging, among others) ``init()`` must not pay: only the stream thread imports it.
"""

from __future__ import annotations

import concurrent.futures
import queue as queue_mod
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DaemonExecutor"]


class DaemonExecutor(concurrent.futures.Executor):
    """The stream loop's executor: daemon worker threads that keep working at exit.

    Not a ``ThreadPoolExecutor``, for two reasons that both bite at interpreter exit
    (when the exit hook's ``finish()`` needs fsync, gzip and DNS lookups): its ``submit``
    raises once shutdown has begun, and merely importing it registers a shutdown hook,
    which raises if a short script is already exiting when this thread starts.
    """

    def __init__(self, workers: int = 2) -> None:
        self._jobs: queue_mod.SimpleQueue[Any] = queue_mod.SimpleQueue()
        self._workers = [
            threading.Thread(target=self._work, name=f"gradexp-io-{i}", daemon=True)
            for i in range(workers)
        ]
        for w in self._workers:
            w.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on a worker; a future of its result (any thread)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let the workers end once the jobs queued before are done (never waits)."""
        for _ in self._workers:
            self._jobs.put(None)
