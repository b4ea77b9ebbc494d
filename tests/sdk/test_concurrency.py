"""alog/aflush under asyncio and trio, a forked child, and the stream thread itself."""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

import gradexp
from gradexp.errors import GradexpWarning

from .conftest import file_records


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_alog_and_aflush(anyio_backend: str) -> None:
    run = gradexp.init(project=f"sdk-async-{anyio_backend}")
    for i in range(200):
        await gradexp.alog({"i": i, "backend": anyio_backend})
    await gradexp.alog({"extra": 1}, commit=False)
    await gradexp.alog({"i": 200})
    assert await gradexp.aflush(timeout=30) is True
    gradexp.finish()
    assert run.dir is not None
    history = [(r.step, r.values) for r in file_records(run.dir, "history")]
    assert len(history) == 201
    assert history[-1] == (200, {"extra": 1, "i": 200})


@pytest.mark.anyio
async def test_alog_backpressure_never_blocks_the_event_loop(anyio_backend: str) -> None:
    """With a tiny memory bound alog() must wait, but other tasks keep running meanwhile."""
    run = gradexp.init(settings={"memory_limit": 4000})
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        for i in range(5000):
            await run.alog({"i": i, "pad": "x" * 50})
        done = True
    gradexp.finish()
    assert run.dir is not None
    assert [r.step for r in file_records(run.dir, "history")] == list(range(5000))
    assert ticks > 0
    assert run._channel.max_pending <= 4000 + 232 + 64 * 2


def test_one_named_daemon_stream_thread() -> None:
    gradexp.init()
    gradexp.log({"x": 1})
    gradexp.flush()
    gradexp.init()  # a second run reuses the thread
    gradexp.log({"x": 2})
    gradexp.flush()
    streams = [t for t in threading.enumerate() if t.name == "gradexp-stream"]
    assert len(streams) == 1 and streams[0].daemon


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_neither_deadlocks_nor_writes_into_the_parent_run(gx_env: Path) -> None:
    run = gradexp.init(project="sdk-fork")
    for i in range(100):
        gradexp.log({"parent": i})
    # Keep the lock busy from another thread while forking: a child that inherited a held
    # lock and then took it would deadlock.
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            run._attach_to_next_step({"h": 1.0})

    t = threading.Thread(target=hammer)
    t.start()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's exit hooks
        code = 1
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for i in range(50):
                    gradexp.log({"child": i})  # ignored, with one clear warning
                run.log({"child": -1})
            messages = [str(w.message) for w in caught if issubclass(w.category, GradexpWarning)]
            assert len(messages) == 1 and "forked" in messages[0], messages
            own = gradexp.init(project="sdk-fork-child", dir=str(gx_env / "child"))
            gradexp.log({"own": 1})
            gradexp.finish()
            assert own.dir is not None
            assert [r.values for r in file_records(own.dir, "history")] == [{"own": 1}]
            code = 0
        except BaseException as exc:
            os.write(write_fd, repr(exc).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    stop.set()
    t.join()
    child_error = os.read(read_fd, 10_000).decode()
    os.close(read_fd)
    assert os.waitstatus_to_exitcode(status) == 0, child_error
    gradexp.log({"parent": 100})
    gradexp.finish()
    assert run.dir is not None
    values = [r.values for r in file_records(run.dir, "history")]
    assert not any("child" in v or "own" in v for v in values)
    assert [v["parent"] for v in values] == list(range(101))
