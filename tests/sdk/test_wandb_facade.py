"""``gradexp.wandb``: wandb's module API as scripts use it, mapped onto gradexp's (no server
needed here; tests/sdk/test_wandb_scripts.py runs whole scripts against one)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gradexp
import gradexp.wandb as wandb
from gradexp.errors import GradexpError, GradexpWarning

from .conftest import file_records


@pytest.fixture(autouse=True)
def _no_wandb_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("WANDB_"):
            monkeypatch.delenv(name)
    wandb._said.clear()


def test_import_is_light() -> None:
    code = (
        "import sys, gradexp.wandb as wandb\n"
        "assert wandb.run is None\n"
        "print(','.join(m for m in ('numpy', 'aiohttp', 'torch') if m in sys.modules) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"


def test_run_is_none_before_init_and_the_current_run_after() -> None:
    assert wandb.run is None
    with pytest.raises(GradexpError, match=r"gradexp\.log\(\) was called before"):
        wandb.log({"x": 1})
    run = wandb.init(project="facade", mode="dryrun", config={"a": 1})
    assert wandb.run is run and run.mode == "offline"  # dryrun is offline
    wandb.config.update({"b": 2}, allow_val_change=True)
    wandb.log({"loss": 1.0}, commit=None)
    wandb.summary["best"] = 1.0
    wandb.finish()
    assert wandb.run is None
    assert [r.data["update"] for r in file_records(run.dir, "config")] == [{"b": 2}]


def test_meaningless_keywords_are_said_once_and_ignored() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradexpWarning)
        for _ in range(2):
            wandb.init(
                mode="offline",
                anonymous="allow",
                sync_tensorboard=True,
                monitor_gym=True,
                magic=True,
                force=True,
                allow_val_change=True,
                settings=wandb.Settings(start_method="thread", _disable_stats=True, code_dir="."),
            )
            wandb.finish()
    texts = [str(w.message) for w in caught]
    for keyword in ("anonymous", "sync_tensorboard", "monitor_gym", "magic", "force"):
        assert sum(f"init({keyword}=...) is ignored" in t for t in texts) == 1, keyword
    assert sum("wandb.Settings(code_dir=...) is ignored" in t for t in texts) == 1
    assert not any("start_method" in t or "_disable_stats" in t for t in texts)


def test_what_cannot_be_done_raises() -> None:
    with pytest.raises(GradexpError, match="sweeps are not supported yet"):
        wandb.sweep({"method": "grid"}, project="p")
    with pytest.raises(GradexpError, match="sweeps are not supported yet"):
        wandb.agent("abc", function=print, count=1)
    with pytest.raises(GradexpError, match=r"fork_from= .* not supported"):
        wandb.init(mode="offline", fork_from="abc?_step=10")
    assert wandb.Error is GradexpError


def test_environment_variables_and_gradexps_own_winning(
    monkeypatch: pytest.MonkeyPatch, gx_env: Path
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "wp")
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    monkeypatch.setenv("WANDB_NAME", "wn")
    monkeypatch.setenv("WANDB_RUN_GROUP", "wg")
    monkeypatch.setenv("WANDB_JOB_TYPE", "wj")
    monkeypatch.setenv("WANDB_TAGS", "x,y")
    monkeypatch.setenv("WANDB_NOTES", "wnotes")
    monkeypatch.setenv("WANDB_DIR", str(gx_env / "wdir"))
    monkeypatch.setenv("WANDB_RUN_ID", "w.id")
    (gx_env / "wdir").mkdir()
    run = wandb.init()
    assert (run.project, run.name, run.group, run.job_type, run.tags, run.notes, run.id) == (
        "wp",
        "wn",
        "wg",
        "wj",
        ("x", "y"),
        "wnotes",
        "w.id",
    )
    assert run.mode == "offline" and str(run.dir).startswith(str(gx_env))  # GRADEXP_DIR wins
    wandb.finish()
    monkeypatch.setenv("GRADEXP_PROJECT", "gp")
    run = wandb.init(name="arg", id="other")
    assert run.project == "gp" and run.name == "arg"  # gradexp's variable, then an argument
    wandb.finish()
    monkeypatch.setenv("WANDB_DISABLED", "true")
    assert wandb.init().mode == "disabled"
    wandb.finish()
    monkeypatch.setenv("GRADEXP_MODE", "offline")  # gradexp's own mode wins over WANDB_*
    assert wandb.init().mode == "offline"
    wandb.finish()


def test_online_without_a_server_logs_offline_and_says_so() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradexpWarning)
        run = wandb.init(mode="online")
    assert run.mode == "offline"
    assert any("logging offline" in str(w.message) for w in caught)
    wandb.finish()


def test_config_keys_projects_and_resume() -> None:
    with pytest.warns(GradexpWarning, match="logging to project 'My-Project-v2'") as said:
        run = wandb.init(
            project="My Project: v2",
            mode="offline",
            config={"lr": 1, "batch": 2, "secret": 3},
            config_exclude_keys=["secret"],
            id="keys.1",
            resume=True,  # "allow": nothing there yet, so a new run
        )
    assert said[0].filename == __file__  # points at the script's line
    assert run.project == "My-Project-v2" and dict(run.config) == {"lr": 1, "batch": 2}
    assert run.resumed is False
    wandb.finish()
    run = wandb.init(mode="offline", config={"lr": 1, "batch": 2}, config_include_keys=["lr"])
    assert dict(run.config) == {"lr": 1}
    wandb.finish()
    again = wandb.init(project="My Project: v2", mode="offline", id="keys.1", resume="auto")
    assert again.resumed is True
    wandb.finish()


def test_histogram_image_and_alert_levels() -> None:
    run = wandb.init(mode="offline")
    h = wandb.Histogram([1, 2, 3, 4], num_bins=4)
    assert h.counts == [1, 1, 1, 1]
    pre = wandb.Histogram(np_histogram=np.histogram([1, 2, 2, 3], bins=3))
    assert pre.counts == [1, 2, 1]
    images = {
        "gray_l": wandb.Image(np.full((4, 4, 3), 200, np.uint8), mode="L"),
        "neg": wandb.Image(np.full((4, 4), -1.0)),  # [-1, 1] -> black
        "big": wandb.Image(np.full((4, 4), 255.0)),  # above 1 -> 0..255
        "clipped": wandb.Image(np.full((4, 4), 300, np.int64)),
        "grid": wandb.Image(np.zeros((5, 8, 8, 3), np.uint8)),  # NHWC batch -> a 3x2 grid
        "rgba": wandb.Image(np.zeros((4, 4, 3), np.uint8), mode="RGBA", caption="c"),
    }
    wandb.log(images)
    wandb.alert("t", "x", level=wandb.AlertLevel.WARN)
    wandb.finish()
    (row,) = [r.data["values"] for r in file_records(run.dir, "history")]
    assert row["gray_l"]["channels"] == 1 and row["rgba"]["channels"] == 4
    assert row["rgba"]["caption"] == "c"
    assert (row["grid"]["width"], row["grid"]["height"]) == (3 * 8 + 4 * 2, 2 * 8 + 3 * 2)
    from tests.tensors.pngread import read_png

    files = Path(run.dir) / "files"
    assert read_png((files / row["neg"]["path"]).read_bytes())[0].max() == 0
    assert read_png((files / row["big"]["path"]).read_bytes())[0].min() == 255
    assert read_png((files / row["clipped"]["path"]).read_bytes())[0].min() == 255
    assert file_records(run.dir, "alert")[0].data["level"] == "WARN"


def test_login_never_sends_a_wandb_key(capfd: Any) -> None:
    assert wandb.login(key="0123456789abcdef0123456789abcdef01234567") is False
    err = capfd.readouterr().err
    assert "not a gradexp API key" in err and "0123456789abcdef" not in err
    assert wandb.login() is False
    assert "gradexp login" in capfd.readouterr().err


def test_term_functions(capfd: Any) -> None:
    wandb.termlog("hello")
    wandb.termwarn("careful")
    wandb.termerror("broken")
    wandb.termlog("once", repeat=False)
    wandb.termlog("once", repeat=False)
    err = capfd.readouterr().err.splitlines()
    assert err == [
        "gradexp: hello",
        "gradexp: WARNING careful",
        "gradexp: ERROR broken",
        "gradexp: once",
    ]


def test_api_and_define_metric_names() -> None:
    assert wandb.Api is gradexp.Api
    run = wandb.init(mode="offline")
    metric = wandb.define_metric("val/*", step_metric="epoch", summary="max", step_sync=True)
    assert metric.summary == ("max",) and metric.step_metric == "epoch"
    wandb.finish()
    assert file_records(run.dir, "metric")[0].data["name"] == "val/*"
