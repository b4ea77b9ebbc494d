"""Capturing the process's console output: stdout and stderr teed into the run.

Two ways, chosen by :func:`start_capture` (docs/sdk.md, "Console output", says what each
captures and why):

- **File descriptors** (POSIX, a plain Python process): file descriptors 1 and 2 are
  pointed (``dup2``) at a pipe, or at a pseudo-terminal when they were a terminal, so
  that ``isatty()`` stays true and programs keep their colours and progress bars. One
  reader thread, ``gradexp-console``, copies every byte to where the descriptor pointed
  before (the terminal sees exactly what it saw) and queues it for the run. This catches
  everything written to the descriptors: ``print``, ``sys.stderr.write``, C extensions,
  ``os.write(1, ...)``, and child processes that inherit them. ``sys.stdout`` itself is
  not touched: its ``fileno()``, encoding and buffering are what they were.
- **Python streams** (Windows, a Jupyter kernel, or where the descriptors cannot be
  redirected): ``sys.stdout.write`` and ``sys.stderr.write`` are wrapped. Output of C
  code and of child processes is not seen this way. In a notebook kernel this is the
  only choice that keeps the notebook's own capture of the descriptors working.

Threads: :func:`start_capture` and :meth:`Capture.stop` run on the caller's thread
(``init()``, ``finish()``, the exit hook). The reader thread only reads, writes to the
saved descriptors and appends to the run's :class:`~gradexp.stream.console.ConsoleBuffer`:
it never prints and never waits for the stream thread, so a stalled stream cannot stall
the program's output. After ``stop()`` it keeps copying output of children that still
hold the pipe, until they close it.

Fork: a forked child (a DataLoader worker) inherits the redirected descriptors, so its
output reaches the parent's reader and the parent's run. The child's capture object does
nothing (its ``stop()`` is a no-op in another process), and its buffer is closed.
"""

from __future__ import annotations

import os
import select
import sys
import threading

from gradexp.stream.console import STDERR, STDOUT, ConsoleBuffer

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Capture", "start_capture"]

_READ_SIZE = 64 * 1024
#: How long stop() waits for the pipes to be drained (output written just before finish).
_DRAIN_TIMEOUT = 2.0


class Capture:
    """An active capture; :meth:`stop` restores the streams (idempotent, any thread)."""

    mode = "off"

    def __init__(self, buffer: ConsoleBuffer) -> None:
        self.buffer = buffer
        self.pid = os.getpid()
        self.stopped = False

    def start(self) -> None:
        """Begin teeing (OSError if this way cannot work here)."""

    def stop(self) -> None:
        """Restore stdout and stderr; everything written before is in the buffer."""
        self.stopped = True


class _FdCapture(Capture):
    """Descriptors 1 and 2 teed through pipes (or pseudo-terminals) by a reader thread."""

    mode = "fd"

    def __init__(self, buffer: ConsoleBuffer) -> None:
        super().__init__(buffer)
        self.saved: dict[int, int] = {}  # 1/2 -> a duplicate of where it pointed before
        self.readers: dict[int, int] = {}  # read end -> 1/2
        self.capturing = True
        self.thread: threading.Thread | None = None
        self.stop_lock = threading.Lock()
        # stop() -> reader: "the descriptors are restored; say when the pipes are empty".
        # The reader itself ends the capture, so no chunk it has read but not yet queued
        # can be lost between the two threads. The wake pipe cuts its select short.
        self.stopping = False
        self.drained = threading.Event()
        self.wake_r, self.wake_w = -1, -1

    def start(self) -> None:
        _flush_python_streams()  # what Python buffered so far goes where it was going
        try:
            for fd in (1, 2):
                self._redirect(fd)
        except OSError:
            self._restore()
            for r in list(self.readers):
                os.close(r)
            for saved in self.saved.values():
                os.close(saved)
            raise
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._read, name="gradexp-console", daemon=True)
        self.thread.start()

    def _redirect(self, fd: int) -> None:
        saved = os.dup(fd)  # not inheritable: children get the redirected descriptor only
        self.saved[fd] = saved
        if os.isatty(fd):
            read_end, write_end = os.openpty()
            _raw_output(write_end)
            _copy_window_size(fd, write_end)
        else:
            read_end, write_end = os.pipe()
        os.set_inheritable(read_end, False)
        try:
            os.dup2(write_end, fd)
        finally:
            os.close(write_end)
        self.readers[read_end] = fd

    def _read(self) -> None:
        """The reader thread: copy to the saved descriptors, queue for the run, until EOF."""
        readers = dict(self.readers)
        stream = {1: STDOUT, 2: STDERR}
        wake = self.wake_r
        while readers:
            watched = [*readers, wake] if wake >= 0 else list(readers)
            try:
                ready, _, _ = select.select(watched, [], [], 1.0)
            except (OSError, ValueError):
                break
            if wake in ready:
                ready.remove(wake)
                _close(wake)
                wake = -1  # no more wakes: select on the readers only from here on
            if self.stopping and self.capturing:
                # Everything written before the restore is in the pipes already: once a
                # poll finds them empty, it has all been read and queued.
                if not ready:
                    ready = select.select(list(readers), [], [], 0)[0]
                if not ready:
                    self.capturing = False
                    self.drained.set()
                    continue
            for r in ready:
                try:
                    data = os.read(r, _READ_SIZE)
                except OSError:  # EIO: the pseudo-terminal's last writer closed it
                    data = b""
                fd = readers[r]
                if not data:
                    del readers[r]
                    _close(r)
                    _close(self.saved[fd])
                    continue
                _write_all(self.saved[fd], data)
                if self.capturing:
                    self.buffer.add(stream[fd], data)
        self.drained.set()  # the pipes are closed (or unreadable): nothing more will come

    def stop(self) -> None:
        with self.stop_lock:
            if self.stopped or os.getpid() != self.pid:
                return
            self.stopped = True
            _flush_python_streams()
            self._restore()
            # Output written before the restore may still be in the pipes: wait (bounded)
            # until the reader has taken it, then stop queueing (children that still hold
            # the pipes keep reaching the terminal through the reader).
            self.stopping = True
            if self.thread is not None and self.thread.is_alive():
                _write_all(self.wake_w, b"x")
                self.drained.wait(_DRAIN_TIMEOUT)
            else:
                _close(self.wake_r)
            _close(self.wake_w)
            self.capturing = False  # (already, unless the reader is gone or too slow)
            self.buffer.closed = True  # the stream frames what is queued, then no more

    def _restore(self) -> None:
        for fd, saved in self.saved.items():
            try:
                os.dup2(saved, fd)
            except OSError:  # noqa: PERF203 - each descriptor on its own
                pass


class _PythonCapture(Capture):
    """``sys.stdout.write`` / ``sys.stderr.write`` wrapped (Windows, notebook kernels)."""

    mode = "python"

    def __init__(self, buffer: ConsoleBuffer) -> None:
        super().__init__(buffer)
        self.patched: list[tuple[str, Any, str]] = []  # (sys attribute, stream, how)

    def start(self) -> None:
        for name, stream_id in (("stdout", STDOUT), ("stderr", STDERR)):
            stream = getattr(sys, name, None)
            if stream is None:
                continue
            self._wrap(name, stream, stream_id)

    def _wrap(self, name: str, stream: Any, stream_id: int) -> None:
        buffer = self.buffer
        original = stream.write

        def write(s: Any) -> Any:
            n = original(s)
            if type(s) is str and not self.stopped:
                buffer.add(stream_id, s)
            return n

        try:
            # An instance attribute keeps the object itself (isinstance checks, identity,
            # ipykernel's OutStream); C-level streams refuse it and get a proxy instead.
            stream.write = write
            self.patched.append((name, stream, "attribute"))
        except (AttributeError, TypeError):
            proxy = _TeeProxy(stream, write)
            setattr(sys, name, proxy)
            self.patched.append((name, proxy, "proxy"))

    def stop(self) -> None:
        if self.stopped or os.getpid() != self.pid:
            return
        self.stopped = True
        for name, obj, how in self.patched:
            if how == "attribute":
                try:
                    del obj.write
                except (AttributeError, TypeError):
                    pass
            elif getattr(sys, name, None) is obj:  # unless someone replaced it since
                setattr(sys, name, obj.__dict__["_stream"])
        self.buffer.closed = True


class _TeeProxy:
    """A stream that forwards everything to ``_stream`` except ``write`` (teed)."""

    def __init__(self, stream: Any, write: Any) -> None:
        self._stream = stream
        self.write = write

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def start_capture(buffer: ConsoleBuffer) -> Capture:
    """Tee stdout and stderr into ``buffer``, at the descriptor level where possible."""
    if os.name == "posix" and not _in_notebook_kernel() and _descriptors_usable():
        capture: Capture = _FdCapture(buffer)
        try:
            capture.start()
        except OSError:
            pass  # a sandbox without ptys or pipes: the Python level still works
        else:
            _register(capture)
            return capture
    capture = _PythonCapture(buffer)
    capture.start()
    _register(capture)
    return capture


def _in_notebook_kernel() -> bool:
    """A Jupyter (ipykernel) process: its own streams forward the descriptors to the
    notebook, which a redirection would take away."""
    if "ipykernel" not in sys.modules:
        return False
    return type(sys.stdout).__module__.startswith("ipykernel")


def _descriptors_usable() -> bool:
    try:
        os.fstat(1)
        os.fstat(2)
    except OSError:
        return False
    return True


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: PERF203 - a closed or broken stream: nothing to flush
            pass


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    """Write everything to ``fd``; a closed or broken destination drops the bytes (the
    program must never block or fail because its terminal went away)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:
            return
        view = view[n:]


def _raw_output(fd: int) -> None:
    """No output processing on the pseudo-terminal (``\\n`` stays ``\\n``, not ``\\r\\n``)."""
    import termios

    attrs = termios.tcgetattr(fd)
    attrs[1] &= ~termios.OPOST
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _copy_window_size(src: int, dst: int) -> None:
    """The terminal's size on the pseudo-terminal, so programs lay out as before."""
    try:
        import fcntl
        import termios

        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except (ImportError, OSError):
        pass


# --- fork: the child's capture does nothing, its buffer takes nothing ------------------------

_active: list[Capture] = []


def _register(capture: Capture) -> None:
    _active[:] = [c for c in _active if not c.stopped]
    _active.append(capture)


def _after_fork_in_child() -> None:
    for capture in _active:
        capture.buffer.after_fork_in_child()
        if isinstance(capture, _FdCapture):
            capture.capturing = False
    _active.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
