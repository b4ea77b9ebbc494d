"""The process's one ``gradexp-stream`` thread: starting it and handing runs over to it.

Threading invariants (the reader should never have to guess which thread runs a line):

- One stream thread per process, started by the first ``init()`` (:func:`stream_handle`)
  and started again by a later ``init()`` if it died. It is a daemon, so it never keeps
  a finished program alive; the exit hook (``gradexp.sdk.hooks``) finishes the current
  run (bounded) while the thread still runs.
- :class:`StreamHandle` is the caller's side: ``start_run`` runs on any caller thread.
  :func:`serve` is the thread's body: it owns an asyncio loop and everything on it
  (``gradexp.stream.runstream``). The thread imports asyncio and aiohttp itself, so
  ``init()`` never pays for them; this module imports neither.
- The loop's default executor is a :class:`~gradexp.stream.executor.DaemonExecutor`, not
  a ``ThreadPoolExecutor``: at interpreter exit (when ``finish()`` runs from the exit
  hook) the standard pool refuses new work, and the upload would fail exactly when it is
  needed.
- Fork: a child process has no stream thread. :meth:`_StreamSlot.after_fork_in_child`
  (registered with ``os.register_at_fork`` when this module is imported) drops the
  parent's handle, so a later ``init()`` in the child starts a thread of its own.
"""

from __future__ import annotations

import os
import threading

from gradexp.core.output import say

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    from typing import Any

    from gradexp.stream.channel import Channel

__all__ = ["StreamHandle", "serve", "stream_handle"]


class StreamHandle:
    """The process's ``gradexp-stream`` thread, as the caller sees it.

    Until its loop is ready, runs to start wait in ``_pending`` (under ``_lock``); after
    that they are handed over with ``loop.call_soon_threadsafe``.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop: Any = None
        self._lock = threading.Lock()
        self._pending: list[Channel] = []
        self.thread = threading.Thread(target=self._main, name="gradexp-stream", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            serve(self)
        except BaseException as exc:
            # The thread cannot work (it should never happen): say why, and release every
            # caller that would otherwise wait on it.
            reason = f"{type(exc).__name__}: {exc}"
            say(f"the gradexp stream thread stopped ({reason}); runs cannot be written.")
            with self._lock:
                pending, self._pending = self._pending, []
            for channel in pending:
                channel.fail(reason)
            raise

    def loop_ready(self, loop: Any) -> list[Channel]:
        """Called by the stream thread once its loop runs: take the runs waiting to start."""
        with self._lock:
            self.loop = loop
            pending, self._pending = self._pending, []
        return pending

    def start_run(self, channel: Channel) -> None:
        """Hand a new run to the stream thread (any thread)."""
        with self._lock:
            loop = self.loop
            if loop is None:
                self._pending.append(channel)
                return
        # The loop is running, so the stream thread has imported runstream already.
        from gradexp.stream.runstream import start_run

        loop.call_soon_threadsafe(start_run, channel)

    def alive(self) -> bool:
        """Whether the thread still runs."""
        return self.thread.is_alive()


def serve(handle: StreamHandle) -> None:
    """The stream thread's body: make the loop, take the runs waiting to start, run forever."""
    from gradexp.stream.preload import preload

    # Here, on the stream thread: init() does not pay for it. Through preload, so that a
    # fork right after init() (a DataLoader's workers) never lands in the middle of it.
    preload("asyncio", "gradexp.stream.executor", "gradexp.stream.runstream")
    import asyncio

    from gradexp.stream.executor import DaemonExecutor
    from gradexp.stream.runstream import start_run

    loop = asyncio.new_event_loop()
    # set_default_executor() insists on a ThreadPoolExecutor (see DaemonExecutor for why
    # not), so the attribute it would set is set directly. Every run_in_executor(None, ...)
    # on this loop, aiohttp's DNS lookups included, then runs on daemon threads.
    loop._default_executor = DaemonExecutor()  # type: ignore[attr-defined]
    asyncio.set_event_loop(loop)
    for channel in handle.loop_ready(loop):
        loop.call_soon(start_run, channel)
    try:
        loop.run_forever()
    finally:  # only reached if something stops the loop; the thread normally dies with the process
        loop.close()


class _StreamSlot:
    """Where the process keeps its stream thread's handle (one per process).

    ``lock``: two threads calling ``init()`` at once start one stream thread.
    Fork: the child has no stream thread, and ``lock`` may have been held by a parent's
    thread that does not exist in the child; :meth:`after_fork_in_child` forgets both.
    """

    __slots__ = ("handle", "lock")

    def __init__(self) -> None:
        self.handle: StreamHandle | None = None
        self.lock = threading.Lock()

    def get(self) -> StreamHandle:
        """The running stream thread's handle, starting the thread if there is none."""
        with self.lock:
            if self.handle is None or not self.handle.alive():
                self.handle = StreamHandle()
            return self.handle

    def after_fork_in_child(self) -> None:
        """In a forked child: a later ``init()`` starts a fresh thread."""
        self.handle = None
        self.lock = threading.Lock()


_slot = _StreamSlot()
if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_slot.after_fork_in_child)


def stream_handle() -> StreamHandle:
    """The process's stream thread (started on first use; any thread)."""
    return _slot.get()
