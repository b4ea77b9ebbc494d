"""``gradexp status`` and ``gradexp sync`` edge cases (the happy paths are in test_online)."""

from __future__ import annotations

from pathlib import Path

import pytest

import gradexp
from gradexp.core.credentials import save_credentials
from tests.helpers import ONLY_LOGGED

from .conftest import gradexp_cli


def test_status_without_anything_configured(gx_env: Path) -> None:
    result = gradexp_cli("status")
    assert result.returncode == 0, result.stderr
    assert "mode:        offline" in result.stdout
    assert "(none configured)" in result.stdout
    assert "API key:     (none)" in result.stdout
    assert f"config dir:  {gx_env / 'config'}" in result.stdout


def test_status_lists_unsynced_runs_and_masks_the_key(gx_env: Path) -> None:
    key = "gx_" + "S" * 40
    save_credentials("http://127.0.0.1:9", key, "ada")
    run = gradexp.init(mode="offline", settings=ONLY_LOGGED)
    for i in range(7):
        gradexp.log({"i": i})
    gradexp.finish()
    result = gradexp_cli("status")
    assert "server:      http://127.0.0.1:9" in result.stdout
    assert "gx_SSSS…" in result.stdout and key not in result.stdout
    assert "from the credentials file, user ada" in result.stdout
    assert f"{Path(run.dir or '').name}  8 records not uploaded (offline)" in result.stdout
    assert "1 not synced" in result.stdout and "gradexp sync" in result.stdout


def test_sync_with_nothing_to_sync(gx_env: Path) -> None:
    result = gradexp_cli("sync")
    assert result.returncode == 0
    assert "No gradexp runs under" in result.stdout


def test_sync_without_a_server_says_what_to_do(gx_env: Path) -> None:
    gradexp.init(mode="offline")
    gradexp.log({"x": 1})
    gradexp.finish()
    result = gradexp_cli("sync")
    assert result.returncode != 0
    assert "no server to sync to" in result.stderr and "--base-url" in result.stderr


@pytest.mark.slow
def test_sync_to_an_unreachable_server_gives_up_and_keeps_the_file(gx_env: Path) -> None:
    run = gradexp.init(mode="offline")
    gradexp.log({"x": 1})
    gradexp.finish()
    result = gradexp_cli(
        "sync",
        "--base-url",
        "http://127.0.0.1:9",
        "--retry-for",
        "1",
        env={"GRADEXP_API_KEY": "gx_" + "k" * 40},
    )
    assert result.returncode == 1
    assert "not synced" in result.stderr and "try again later" in result.stderr
    assert (Path(run.dir or "") / "run.gxr").exists()
    assert "1 not synced" in gradexp_cli("status").stdout
