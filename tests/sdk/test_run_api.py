"""What training scripts use beyond log(): the module-level config and summary, config
changes of every shape, the run's own fields set after init(), resume modes, reinit,
save_code, a disabled run's dir, and run ids with dots. Offline, online, and offline then
`gradexp sync`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import gradexp
from gradexp.errors import GradexpError

from .conftest import file_records, gradexp_cli, server_run


def _api(server: Any) -> gradexp.Api:
    return gradexp.Api(base_url=server.url, api_key=server.api_key)


def test_module_config_and_summary_need_a_run_and_say_so() -> None:
    assert gradexp.run is None
    with pytest.raises(GradexpError, match=r"gradexp.config was used before gradexp.init\(\)"):
        gradexp.config.update({"lr": 1})
    with pytest.raises(GradexpError, match=r"gradexp\.config was used before"):
        gradexp.config.lr = 3
    with pytest.raises(GradexpError, match=r"gradexp\.summary was used before"):
        gradexp.summary["best"] = 1
    # Looking at them is not an error.
    assert "call gradexp.init() first" in repr(gradexp.config)
    assert not gradexp.config and hasattr(gradexp, "summary")


def test_import_stays_light_with_config_touched() -> None:
    code = (
        "import sys, gradexp\n"
        "gradexp.config, gradexp.summary\n"
        "heavy = [m for m in ('numpy', 'aiohttp', 'torch') if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"


@dataclasses.dataclass
class Opts:
    depth: int = 4
    act: str = "gelu"


class Plain:
    def __init__(self) -> None:
        self.width = 128
        self._private = "not config"


def test_every_way_of_setting_config_is_recorded(gx_env: Path) -> None:
    run = gradexp.init(config={"lr": 0.1})
    gradexp.config.batch_size = 64
    gradexp.config["epochs"] = 3
    run.config.dropout = 0.1
    gradexp.config.update(argparse.Namespace(seed=7, optimizer="adam"), allow_val_change=True)
    gradexp.config.update(Opts())
    run.config.update(Plain())
    gradexp.config.update({"lr": 0.05})  # a change of an existing value
    assert gradexp.config.lr == 0.05 and gradexp.config["seed"] == 7
    assert "allow_val_change" not in run.config
    gradexp.summary["best"] = 0.9
    gradexp.finish()
    updates = [r.data["update"] for r in file_records(run.dir, "config")]
    assert updates == [
        {"batch_size": 64},
        {"epochs": 3},
        {"dropout": 0.1},
        {"seed": 7, "optimizer": "adam"},
        {"depth": 4, "act": "gelu"},
        {"width": 128},
        {"lr": 0.05},
    ]
    assert file_records(run.dir, "summary")[0].data["update"] == {"best": 0.9}
    with pytest.raises(AttributeError, match="cannot start with '_'"):
        run.config._hidden = 1


def test_run_fields_are_attributes_and_checked(gx_env: Path) -> None:
    run = gradexp.init(
        project="fields", group="g1", tags=["a"], notes="first", job_type="train", name="nm"
    )
    assert (run.project, run.group, run.tags, run.notes, run.job_type, run.name) == (
        "fields",
        "g1",
        ("a",),
        "first",
        "train",
        "nm",
    )
    assert run.resumed is False and run.step == 0
    run.tags = (*run.tags, "b", "a")
    assert run.tags == ("a", "b")
    with pytest.raises(GradexpError, match="name cannot be empty"):
        run.name = ""
    with pytest.raises(GradexpError, match="job_type is at most 64"):
        run.job_type = "x" * 65
    with pytest.raises(GradexpError, match="tags must be a list"):
        run.tags = "abc"  # type: ignore[assignment]
    gradexp.finish()
    runs = [r.data["run"] for r in file_records(run.dir, "config") if "run" in r.data]
    assert runs == [{"tags": ["a", "b"]}]


def test_run_fields_set_after_init_reach_the_server(online: Any) -> None:
    run = gradexp.init(project="fields-online", group="sweep-1", job_type="train", tags=["base"])
    gradexp.log({"loss": 1.0})
    run.name = "renamed"
    run.notes = "lr too high"
    run.tags = [*run.tags, "bad"]
    run.group = "sweep-2"
    run.job_type = "eval"
    gradexp.finish()
    info = server_run(online, run.id)
    assert (info["name"], info["notes"], info["tags"], info["group"], info["job_type"]) == (
        "renamed",
        "lr too high",
        ["base", "bad"],
        "sweep-2",
        "eval",
    )
    api_run = _api(online).run(run.id)
    assert (
        api_run.job_type == "eval" and api_run.group == "sweep-2" and api_run.notes == "lr too high"
    )


def test_offline_then_sync_carries_fields_config_metrics_alerts_and_galleries(
    gx_env: Path, server: Any
) -> None:
    import numpy as np

    run = gradexp.init(project="sync-all", mode="offline", job_type="train", config={"lr": 1})
    gradexp.config.lr = 2
    gradexp.define_metric("val/*", step_metric="epoch", summary="min")
    for epoch in range(3):
        gradexp.log({"epoch": epoch, "val/loss": [0.5, 0.2, 0.4][epoch]})
    gradexp.log({"samples": [gradexp.Image(np.full((4, 4), i, np.uint8)) for i in range(3)]})
    run.notes = "written offline"
    gradexp.alert("diverged", "loss went up", level="WARN")
    gradexp.finish()
    result = gradexp_cli(
        "sync", env={"GRADEXP_BASE_URL": server.url, "GRADEXP_API_KEY": server.api_key}
    )
    assert result.returncode == 0, result.stderr
    info = server_run(server, run.id)
    assert info["config"] == {"lr": 2} and info["notes"] == "written offline"
    assert info["job_type"] == "train" and info["summary"]["val/loss"] == 0.2
    assert info["metrics"] == [
        {"name": "val/*", "step_metric": "epoch", "summary": ["min"], "goal": None, "hidden": False}
    ]
    api_run = _api(server).run(run.id)
    assert [(a["title"], a["level"]) for a in api_run.alerts()] == [("diverged", "WARN")]
    gallery = api_run.histograms("samples")
    assert gallery["kind"] == "gallery" and len(gallery["values"][0]["images"]) == 3
    # a second sync sends nothing (the run's records were all acknowledged)
    again = gradexp_cli(
        "sync", env={"GRADEXP_BASE_URL": server.url, "GRADEXP_API_KEY": server.api_key}
    )
    assert again.returncode == 0 and len(api_run.refresh().alerts()) == 1


def test_resume_modes_online(online: Any) -> None:
    run_id = "resume.modes-1"
    with pytest.raises(GradexpError, match=r"has nothing .* to resume"):
        gradexp.init(id=run_id, resume="must")
    first = gradexp.init(id=run_id, resume="allow")
    assert first.resumed is False
    gradexp.log({"x": 1})
    gradexp.log({"x": 2})
    gradexp.finish()
    with pytest.raises(GradexpError, match="already has a run"):
        gradexp.init(id=run_id, resume="never")
    again = gradexp.init(id=run_id, resume="allow")
    assert again.resumed is True and again.step == 2
    gradexp.log({"x": 3})
    gradexp.finish()
    assert server_run(online, run_id)["last_step"] == 2
    fresh = gradexp.init(resume="allow")  # no id: nothing to continue, a new run
    assert fresh.resumed is False and fresh.id != run_id
    gradexp.finish()


def test_resume_modes_offline(gx_env: Path) -> None:
    with pytest.raises(GradexpError, match=r"no earlier run r\.1 .* to resume offline"):
        gradexp.init(id="r.1", mode="offline", resume="must")
    first = gradexp.init(id="r.1", mode="offline", resume="never")
    gradexp.log({"x": 1})
    gradexp.finish()
    assert first.resumed is False
    with pytest.raises(GradexpError, match=r"already exists .* resume='never'"):
        gradexp.init(id="r.1", mode="offline", resume="never")
    second = gradexp.init(id="r.1", mode="offline", resume="allow")
    assert second.resumed is True and second.step == 1
    gradexp.finish()
    with pytest.raises(GradexpError, match="resume='sometimes'"):
        gradexp.init(resume="sometimes")


def test_reinit_finishes_or_returns_the_active_run(
    gx_env: Path, capfd: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradexp.sdk.facade

    monkeypatch.setattr(gradexp.sdk.facade._current, "said_reinit", False)  # once per process
    first = gradexp.init(mode="offline")
    assert gradexp.init(mode="offline", reinit="return_previous") is first
    assert gradexp.init(reinit=False) is first
    second = gradexp.init(mode="offline", reinit=True)
    assert second is not first and gradexp.run is second
    assert "init() was called again" not in capfd.readouterr().err  # True: silently
    third = gradexp.init(mode="offline")
    assert third is not second and "init() was called again" in capfd.readouterr().err
    assert file_records(second.dir)[-1].type == "finish"
    with pytest.raises(GradexpError, match="reinit='create_new'"):
        gradexp.init(reinit="create_new")


def test_save_code_saves_the_script_as_a_run_file(online: Any, gx_env: Path) -> None:
    script = gx_env / "train_small.py"
    script.write_text(
        textwrap.dedent(
            """
            import gradexp
            run = gradexp.init(project="code", save_code=True)
            gradexp.log({"loss": 0.5})
            gradexp.finish()
            print("RUN", run.id)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=gx_env,
        env={**os.environ},
    )
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split("RUN ")[1].strip()
    api_run = _api(online).run(run_id)
    assert "code/train_small.py" in [f["path"] for f in api_run.files()]
    saved = api_run.download("code/train_small.py", gx_env / "dl")
    assert saved.read_text() == script.read_text()
    assert api_run.host["program"] == "train_small.py"


def test_run_ids_with_dots_work_end_to_end(online: Any) -> None:
    import numpy as np

    run = gradexp.init(id="exp.3-seed.1", project="dotted")
    gradexp.log({"img": gradexp.Image(np.zeros((3, 3), np.uint8)), "loss": 1.0})
    gradexp.finish()
    api_run = _api(online).run("exp.3-seed.1")
    assert api_run.state == "finished" and api_run.summary["loss"] == 1.0
    path = api_run.files()[0]["path"]
    assert api_run.download(path, Path(run.dir) / "dl").stat().st_size > 0
