"""The examples under examples/ run, against a real server, and log what they say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.services import require_module

from .conftest import kernel_spec, server_rows, server_run

INTEGRATIONS = "install the test extras: pip install -e '.[integrations]'"

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


# --- the framework integrations (each example skips where its framework is missing) --------


def _history(online: Any, run_id: str, key: str) -> list[dict[str, Any]]:
    return [r for r in server_rows(online, run_id) if key in r]


@pytest.mark.slow
def test_lightning_example(online: Any) -> None:
    require_module("lightning", fix=INTEGRATIONS)
    run_id = _run_id(_run("lightning_train.py", "--epochs", "2"))
    assert server_run(online, run_id)["state"] == "finished"
    train = _history(online, run_id, "train/loss")
    assert [r["_step"] for r in train] == list(range(9, 64, 10))  # 32 batches an epoch
    val = _history(online, run_id, "val/loss")
    assert len(val) == 2 and val[-1]["val/loss"] < val[0]["val/loss"]


@pytest.mark.slow
def test_transformers_example(online: Any) -> None:
    require_module("transformers", fix=INTEGRATIONS)
    run_id = _run_id(_run("transformers_train.py", "--steps", "40"))
    assert server_run(online, run_id)["config"]["max_steps"] == 40
    assert [r["_step"] for r in _history(online, run_id, "train/loss")] == [10, 20, 30, 40]
    assert [r["_step"] for r in _history(online, run_id, "eval/loss")] == [20, 40]


@pytest.mark.slow
def test_keras_example(online: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "torch"))
    require_module("keras", fix=INTEGRATIONS)
    run_id = _run_id(_run("keras_train.py", "--epochs", "3", "--log-freq", "20"))
    epochs = _history(online, run_id, "epoch/val_loss")
    assert [r["epoch/epoch"] for r in epochs] == [0, 1, 2]
    assert [r["_step"] for r in _history(online, run_id, "batch/loss")] == list(range(20, 157, 20))


@pytest.mark.slow
def test_accelerate_example(online: Any) -> None:
    require_module("accelerate", fix=INTEGRATIONS)
    run_id = _run_id(_run("accelerate_train.py", "--steps", "100"))
    run = server_run(online, run_id)
    assert run["state"] == "finished" and run["config"]["steps"] == 100
    assert [r["_step"] for r in _history(online, run_id, "train/loss")] == list(range(100))
    val = _history(online, run_id, "val/loss")
    assert [r["_step"] for r in val] == [49, 99]
    assert val[-1]["val/loss"] < val[0]["val/loss"]  # it learns
