"""Fixtures for the SDK tests: every test runs in an isolated environment (``gx_env`` in
tests/conftest.py: its own working directory, ``GRADEXP_DIR`` and ``GRADEXP_CONFIG_DIR``, no
inherited ``GRADEXP_*`` variables, any run it leaves open finished at teardown), and helpers
that read what a run wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gradexp.runfile import RunFile
from tests.helpers import server_rows as server_rows  # the SDK tests import them from here
from tests.helpers import server_run as server_run


@pytest.fixture(autouse=True)
def _isolated(gx_env: Path) -> None:
    """Every SDK test runs in ``gx_env``."""


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


def kernel_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec for this interpreter in a temporary JUPYTER_PATH (never the user's)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "gradexp-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "gradexp test",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter-config"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return "gradexp-test"
