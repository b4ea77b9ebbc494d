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


def test_util_generate_id_is_a_run_id() -> None:
    from gradexp.protocol.names import run_id_problem

    ids = {wandb.util.generate_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 8 for i in ids)
    assert [run_id_problem(i) for i in ids] == [None] * 50
    run = wandb.init(project="facade", mode="offline", id=wandb.util.generate_id(12))
    assert len(run.id) == 12
    wandb.finish()


def test_plot_presets_are_the_tables_they_draw() -> None:
    data = wandb.Table(columns=["step", "acc", "other"], data=[[0, 0.5, "a"], [1, 0.75, "b"]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradexpWarning)
        line = wandb.plot.line(data, "step", "acc", title="accuracy")
        wandb.plot.scatter(data, "step", "acc")
    assert (line.columns, line.data) == (["step", "acc"], [[0, 0.5], [1, 0.75]])
    assert sum("tables they are drawn from" in str(w.message) for w in caught) == 1  # once
    assert wandb.plot.bar(data, "other", "acc").data == [["a", 0.5], ["b", 0.75]]
    assert wandb.plot.histogram(data, "acc").columns == ["acc"]
    series = wandb.plot.line_series(xs=[0, 1], ys=[[1, 2], [3, 4]], keys=["a", "b"])
    assert series.data == [["a", 0, 1], ["a", 1, 2], ["b", 0, 3], ["b", 1, 4]]

    cm = wandb.plot.confusion_matrix(
        y_true=[0, 1, 1, 2], preds=[0, 1, 2, 2], class_names=["x", "y", "z"]
    )
    counts = {(a, p): n for a, p, n in cm.data}
    assert cm.columns == ["Actual", "Predicted", "nPredictions"] and len(cm.data) == 9
    assert counts[("x", "x")] == 1 and counts[("y", "y")] == 1 and counts[("y", "z")] == 1
    assert counts[("z", "z")] == 1 and sum(counts.values()) == 4
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    from_probs = wandb.plot.confusion_matrix(probs=probs, y_true=[0, 1, 1])
    assert {(a, p): n for a, p, n in from_probs.data}[("Class_1", "Class_0")] == 1
    with pytest.raises(ValueError, match="one of preds= or probs="):
        wandb.plot.confusion_matrix(y_true=[0])

    roc = wandb.plot.roc_curve([0, 1, 1, 0], np.array([0.1, 0.9, 0.8, 0.3]), labels=["neg", "pos"])
    pos = [(fpr, tpr) for cls, fpr, tpr in roc.data if cls == "pos"]
    assert pos[0] == (0.0, 0.0) and pos[-1] == (1.0, 1.0)
    assert (0.0, 1.0) in pos  # separable: every positive before any negative
    pr = wandb.plot.pr_curve([0, 1, 1, 0], np.array([0.1, 0.9, 0.8, 0.3]), classes_to_plot=[1])
    assert pr.columns == ["class", "recall", "precision"] and pr.data[0] == ["1", 0.5, 1.0]


def test_unstored_media_are_left_out_of_the_log_call() -> None:
    run = wandb.init(project="facade", mode="offline")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradexpWarning)
        video = wandb.Video(np.zeros((2, 3, 8, 8), dtype=np.uint8), fps=4)
        wandb.Video(np.zeros((2, 3, 8, 8), dtype=np.uint8))
        wandb.log({"video": video, "loss": 0.5, "audio": wandb.Audio(np.zeros(10), sample_rate=10)})
    said = [str(w.message) for w in caught]
    assert sum("wandb.Video values are not stored" in m for m in said) == 1
    assert sum("wandb.Audio values are not stored" in m for m in said) == 1
    assert not any("dropped the value" in m for m in said)  # left out, not an error
    wandb.finish()
    (row,) = [r.data["values"] for r in file_records(run.dir, "history")]
    assert row == {"loss": 0.5}


def test_the_run_has_wandbs_method_names(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "train.py").write_text("print('train')\n")
    (tmp_path / "src" / "pkg" / "model.py").write_text("MODEL = 1\n")
    (tmp_path / "src" / "notes.txt").write_text("not code\n")
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    run = wandb.init(project="facade", mode="offline")
    assert isinstance(run, gradexp.Run) and wandb.run is run
    assert run.get_url() == run.url
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", GradexpWarning)
        run.mark_preempting()
    code = run.log_code(str(tmp_path / "src"))
    assert code is not None and code.type == "code" and code.name == f"source-{run.id}"
    assert [f["path"] for f in code.files()] == ["pkg/model.py", "train.py"]
    only = run.log_code(
        str(tmp_path / "src"), name="notes", include_fn=lambda path: path.endswith(".txt")
    )
    assert [f["path"] for f in only.files()] == ["notes.txt"]
    assert run.log_code(str(tmp_path / "src" / "pkg"), exclude_fn=lambda p, root: True) is None
    wandb.finish()
