"""A newer SDK against an older server: the server says which record types it takes, and
the SDK keeps the others in the run file, says so once, and delivers the rest exactly once.

The older server is a real ``gradexp server`` whose accepted types are cut back to the
ones every server knew before what the machine did was recorded (``system``, ``console``
and ``environment`` are then refused, as an older server refused them), through a
``sitecustomize`` on its path; it decodes in its own process so the cut holds everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gradexp.runfile import RunFile

from .conftest import gradexp_cli

REPO = Path(__file__).resolve().parents[2]

OLDER = textwrap.dedent(
    """
    import gradexp.server.domain.batch as batch
    batch.RECORD_KINDS = frozenset(
        ("history", "config", "summary", "file", "telemetry", "finish", "metric", "alert")
    )
    """
)

PROGRAM = textwrap.dedent(
    """
    import time
    import gradexp
    from gradexp.runfile import RunFile
    run = gradexp.init(project="caps", config={"lr": 0.5})
    for step in range(50):
        gradexp.log({"loss": 1.0 / (step + 1)})
        print(f"line {step}", flush=True)
    # Until the run file holds a system sample and the printed lines (a loaded machine
    # may take a while to sample the first time).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            if {"system", "console"} <= {r.type for r in RunFile(run.dir)}:
                break
        except FileNotFoundError:  # the stream thread has not opened it yet
            pass
    run.finish()
    print("id", run.id, flush=True)
    """
)


@pytest.fixture
def older_server(tmp_path: Path, start_server: Any) -> Any:
    site = tmp_path / "older-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(OLDER)
    return start_server(
        env={"PYTHONPATH": f"{site}{os.pathsep}{REPO}", "GRADEXP_INGEST_WORKERS": "0"}
    )


def test_an_older_server_gets_what_it_takes(tmp_path: Path, older_server: Any, server: Any) -> None:
    import gradexp

    script = tmp_path / "train.py"
    script.write_text(PROGRAM)
    env = {
        **os.environ,
        **older_server.client_env,
        "PYTHONPATH": str(REPO),
        "GRADEXP_SYSTEM_METRICS_INTERVAL": "0.1",
    }
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.split()[-1]
    said = [line for line in proc.stderr.splitlines() if "does not take" in line]
    # One line per type left out, not one per batch.
    assert sorted(line.split("does not take ")[1].split()[0] for line in said) == [
        "console",
        "environment",
        "system",
    ], proc.stderr
    assert "upload stopped" not in proc.stderr

    api = gradexp.Api(base_url=older_server.url, api_key=older_server.api_key)
    run = api.run(run_id)
    assert run.state == "finished"
    assert [r["loss"] for r in run.history()] == [1.0 / (s + 1) for s in range(50)]
    assert run.config == {"lr": 0.5}
    skipped = run.telemetry["skipped_records"]
    assert skipped["environment"] == 1 and skipped["console"] >= 1 and skipped["system"] >= 1

    # The records the older server did not take stay in the run file: a server that takes
    # them gets everything from `gradexp sync` of the run directory without its ack (the
    # acknowledgements of the older server), exactly once.
    run_dir = next((tmp_path / "gradexp").glob(f"run-*-{run_id}"))
    in_file = {r.type for r in RunFile(run_dir)}
    assert {"console", "system", "environment"} <= in_file
    (run_dir / "ack.json").unlink()
    synced = gradexp_cli("sync", str(run_dir), env=server.client_env)
    assert synced.returncode == 0, synced.stderr
    newer = gradexp.Api(base_url=server.url, api_key=server.api_key).run(run_id)
    assert [r["loss"] for r in newer.history()] == [1.0 / (s + 1) for s in range(50)]
    assert [line["text"] for line in newer.logs()][:50] == [f"line {s}" for s in range(50)]
    assert "skipped_records" not in newer.telemetry
