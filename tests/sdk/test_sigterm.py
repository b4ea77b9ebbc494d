"""SIGTERM (preemption, ``kill``, a container stop) finishes the run instead of cutting it off.

Each test runs a real training-like script in a child process, sends it SIGTERM once it
has logged for a while, and reads what reached the run file (and the server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gradexp.runfile import RunFile

from .conftest import server_rows

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LOOP = """
import os, sys, time
import gradexp
{setup}
{init}
    print(run.dir, flush=True)
    step = 0
    while True:
        gradexp.log({{"loss": 1.0 / (step + 1)}})
        step += 1
        if step == 2000:
            print("ready", flush=True)
        time.sleep(0.0005)
"""


def _start(script: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_dir = proc.stdout.readline().strip()
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc, run_dir


def _history_and_finish(run_dir: str) -> tuple[list[dict[str, Any]], list[int]]:
    records = list(RunFile(run_dir))
    history = [r.data for r in records if r.type == "history"]
    return history, [r.data["exit_code"] for r in records if r.type == "finish"]


@pytest.mark.parametrize("style", ["plain", "with"])
def test_sigterm_finishes_the_run_with_exit_code_143(gx_env: Path, style: str) -> None:
    init = (
        'run = gradexp.init(project="term", mode="offline")\nif True:'
        if style == "plain"
        else 'with gradexp.init(project="term", mode="offline") as run:'
    )
    proc, run_dir = _start(LOOP.format(setup="", init=init))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "SIGTERM: finishing run" in err and "Traceback" not in err
    history, finishes = _history_and_finish(run_dir)
    assert finishes == [143]
    # Everything logged up to the signal is there, in order, once.
    assert len(history) >= 2000
    assert [h["step"] for h in history] == list(range(len(history)))


def test_sigterm_online_uploads_everything_before_exiting(gx_env: Path, online: Any) -> None:
    init = 'run = gradexp.init(project="term-online")\nif True:'
    proc, run_dir = _start(LOOP.format(setup="", init=init))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    history, finishes = _history_and_finish(run_dir)
    assert finishes == [143]
    run_id = Path(run_dir).name.rsplit("-", 1)[1]
    rows = server_rows(online, run_id)
    assert [r["_step"] for r in rows] == [h["step"] for h in history]
    status, run = online.request("GET", f"/api/v1/runs/{run_id}")
    assert status == 200 and run["state"] == "failed" and run["exit_code"] == 143, run


def test_a_programs_own_sigterm_handler_is_left_alone(gx_env: Path) -> None:
    setup = textwrap.dedent(
        """
        import signal
        def mine(signum, frame):
            print("my handler", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, mine)
        """
    )
    init = 'run = gradexp.init(project="term", mode="offline")\nif True:'
    proc, run_dir = _start(LOOP.format(setup=setup, init=init))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "my handler" in out and "SIGTERM: finishing run" not in err
    assert _history_and_finish(run_dir)[1] == [0]  # sys.exit(0): finished at exit, code 0


def test_a_forked_child_gets_the_default_sigterm(gx_env: Path) -> None:
    script = textwrap.dedent(
        """
        import os, signal, gradexp
        run = gradexp.init(project="term", mode="offline")
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # ours, in the parent
        pid = os.fork()
        if pid == 0:
            os._exit(0 if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        gradexp.finish()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "child 0" in proc.stdout
