"""The per-process wake-up of live streams.

The database is the source of truth for every live stream (``gradexp.server.http.live``):
a stream polls it, so any process can serve any run, whichever process ingested it. The
:class:`Notifier` only wakes the streams of *this* process early when it committed a change
itself.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Notifier:
    """Wakes the streams of this process when it commits a change to a run.

    Everything runs on the server's single event loop, so plain sets of futures are safe
    without locks.
    """

    def __init__(self) -> None:
        self._by_run: defaultdict[int, set[asyncio.Future[None]]] = defaultdict(set)
        self._by_project: defaultdict[int, set[asyncio.Future[None]]] = defaultdict(set)
        self.closed = False
        # Streams of this process that are open right now (``GET /healthz`` reports it):
        # it returns to zero when clients leave, which is how a leaked poller would show.
        self.open_streams = 0

    def close(self) -> None:
        """Wake every stream for good: the server is shutting down."""
        self.closed = True
        for waiters in (*self._by_run.values(), *self._by_project.values()):
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def notify(self, project_id: int, run_pk: int) -> None:
        """Wake whoever follows this run or its project."""
        for fut in (*self._by_run.pop(run_pk, ()), *self._by_project.pop(project_id, ())):
            if not fut.done():
                fut.set_result(None)

    async def wait(
        self, timeout: float, *, run_pk: int | None = None, project_id: int | None = None
    ) -> None:
        """Return on the next notification for the run/project, or after ``timeout``."""
        if self.closed:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if run_pk is not None:
            self._by_run[run_pk].add(fut)
        if project_id is not None:
            self._by_project[project_id].add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            if run_pk is not None:
                waiters = self._by_run.get(run_pk)
                if waiters is not None:
                    waiters.discard(fut)
                    if not waiters:
                        del self._by_run[run_pk]
            if project_id is not None:
                pwaiters = self._by_project.get(project_id)
                if pwaiters is not None:
                    pwaiters.discard(fut)
                    if not pwaiters:
                        del self._by_project[project_id]
