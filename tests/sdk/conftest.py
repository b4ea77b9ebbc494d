"""Fixtures for the SDK tests: an isolated environment per test, and server helpers.

Every test gets its own working directory, ``GRADEXP_DIR`` and ``GRADEXP_CONFIG_DIR`` (so
no test ever reads or writes the real home), no inherited ``GRADEXP_*`` variables, and
any run it leaves open is finished at teardown.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gradexp
from gradexp.runfile import RunFile


@pytest.fixture(autouse=True)
def gx_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated gradexp environment: cwd, run dir and config dir under tmp_path."""
    for name in list(os.environ):
        if name.startswith("GRADEXP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GRADEXP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GRADEXP_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    run = gradexp.run
    if run is not None:
        run.finish(timeout=10)


@pytest.fixture
def online(server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point the SDK at the shared test server (environment variables)."""
    monkeypatch.setenv("GRADEXP_BASE_URL", server.url)
    monkeypatch.setenv("GRADEXP_API_KEY", server.api_key)
    return server


def server_rows(server: Any, run_id: str) -> list[dict[str, Any]]:
    """Every history row of a run, through the read API (all pages)."""
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        status, body = server.request(
            "GET", f"/api/v1/runs/{run_id}/history/rows?after_seq={after}&limit=10000"
        )
        assert status == 200, body
        rows.extend(body["rows"])
        if body["next_after_seq"] is None:
            return rows
        after = body["next_after_seq"]


def server_run(server: Any, run_id: str) -> dict[str, Any]:
    """The run object from the read API."""
    status, body = server.request("GET", f"/api/v1/runs/{run_id}")
    assert status == 200, body
    return body


def file_records(run_dir: str | Path, type_: str | None = None) -> list[Any]:
    """The records of a run file (optionally of one type)."""
    records = list(RunFile(run_dir))
    return [r for r in records if type_ is None or r.type == type_]


def gradexp_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Any = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``gradexp`` command line in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "gradexp.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )
