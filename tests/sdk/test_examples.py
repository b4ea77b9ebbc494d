"""The examples under examples/ run, against a real server, and log what they say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import kernel_spec, server_rows

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _run_id(stdout: str) -> str:
    return stdout.split("run ", 1)[1].split(":", 1)[0]


def test_train_example(online: Any) -> None:
    out = _run("train.py", "--steps", "120")
    rows = server_rows(online, _run_id(out))
    assert [r["_step"] for r in rows] == list(range(120))
    assert {"train/loss", "train/acc", "lr", "grad_norm"} <= set(rows[0])
    assert rows[0]["val/acc"] > 0 and rows[-1]["val/acc"] > 0.8  # it learns


@pytest.mark.parametrize("backend", [[], ["--trio"]], ids=["asyncio", "trio"])
def test_async_example(online: Any, backend: list[str]) -> None:
    out = _run("async_train.py", "--episodes", "15", *backend)
    rows = server_rows(online, _run_id(out))
    assert len(rows) == 15 and all(r["return/max"] >= r["return/mean"] for r in rows)


def test_notebook_example(online: Any, gx_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.services import require_kernel

    nbformat, nbclient = require_kernel()
    kernel = kernel_spec(gx_env, monkeypatch)
    nb = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, kernel_name=kernel, timeout=180, resources={"metadata": {"path": str(gx_env)}}
    ).execute()
    html = "".join(o.get("data", {}).get("text/html", "") for o in nb.cells[1].outputs)
    run_id = html.split("<code>", 1)[1].split("</code>", 1)[0]
    rows = server_rows(online, run_id)
    assert len(rows) == 201 and rows[-1]["val/acc"] == 0.94
