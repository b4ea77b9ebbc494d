"""Scripts written for wandb (tests/wandb_scripts/, shaped like public training scripts) run
against a real gradexp server with one change, ``import wandb`` swapped for
``import gradexp.wandb as wandb``; what they logged is read back with ``gradexp.Api``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

import gradexp
from gradexp.runfile import find_run_dirs

SCRIPTS = Path(__file__).resolve().parents[1] / "wandb_scripts"
SWAP = ("import wandb\n", "import gradexp.wandb as wandb\n")

pytestmark = pytest.mark.slow  # each script is an interpreter of its own (and most import torch)


def run_script(
    name: str, server: Any, workdir: Path, env: dict[str, str] | None = None, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run a corpus script with its import swapped; returns the process and the ids of the
    runs it made (oldest first, from the run directories it left)."""
    source = (SCRIPTS / name).read_text()
    assert source.count(SWAP[0]) == 1, (
        f"{name} must import wandb exactly once, on a line of its own"
    )
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / name
    script.write_text(source.replace(*SWAP))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GRADEXP_", "WANDB_"))}
    out = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,
        env={
            **clean,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(Path.cwd()), os.environ.get("PYTHONPATH", "")) if p
            ),
            "GRADEXP_CONFIG_DIR": str(workdir / "config"),
            "GRADEXP_BASE_URL": server.url,
            "GRADEXP_API_KEY": server.api_key,
            **(env or {}),
        },
    )
    assert out.returncode == 0, f"{name} failed:\n{out.stdout}\n{out.stderr}"
    ids = [
        orjson.loads((Path(d.path) / "run.json").read_bytes())["id"] for d in find_run_dirs(workdir)
    ]
    return out, ids


@pytest.fixture
def api(server: Any) -> gradexp.Api:
    return gradexp.Api(base_url=server.url, api_key=server.api_key)


def kinds_of(run: Any) -> dict[str, str]:
    """A run's keys and the kind of value each holds."""
    return {k["key"]: k["kind"] for k in run.keys()}  # noqa: SIM118 - a list, not a dict


def _torch() -> None:
    from tests.services import require_torch

    require_torch()


def test_nanogpt_loop_with_globals_config(server: Any, api: gradexp.Api, tmp_path: Path) -> None:
    _torch()
    _, (run_id,) = run_script("nanogpt_train.py", server, tmp_path, None, "--max_iters=10")
    run = api.run(run_id)
    assert (run.project, run.name, run.state) == ("owt", "gpt2-tiny", "finished")
    assert run.config["max_iters"] == 10 and run.config["wandb_project"] == "owt"
    assert run.config["learning_rate"] == 6e-4 and run.config["decay_lr"] is True
    rows = run.history()
    assert [r["iter"] for r in rows] == [0, 5, 10]
    assert all(isinstance(r["train/loss"], float) for r in rows)
    assert rows[0]["lr"] == 0.0 and rows[0]["mfu"] == -100.0


def test_mnist_example_with_config_attributes_watch_and_image_lists(
    server: Any, api: gradexp.Api, tmp_path: Path
) -> None:
    _torch()
    _, (run_id,) = run_script("mnist_pytorch.py", server, tmp_path)
    run = api.run(run_id)
    assert run.project == "pytorch-intro" and run.state == "finished"
    assert run.config == {
        "batch_size": 8,
        "test_batch_size": 10,
        "epochs": 2,
        "lr": 0.1,
        "momentum": 0.1,
        "no_cuda": False,
        "seed": 42,
        "log_interval": 2,
    }
    kinds = kinds_of(run)
    assert kinds["Examples"] == "gallery" and kinds["Test Accuracy"] == "number"
    assert any(k.startswith("gradients/") for k in kinds)  # wandb.watch(model, log="all")
    gallery = run.histograms("Examples")
    assert len(gallery["step"]) == 2
    images = gallery["values"][0]["images"]
    assert len(images) == 3 and images[0]["caption"].startswith("Pred: ")
    assert (images[0]["width"], images[0]["height"], images[0]["channels"]) == (28, 28, 1)


def test_fashion_example_with_every_init_keyword(
    server: Any, api: gradexp.Api, tmp_path: Path
) -> None:
    _torch()
    out, (run_id,) = run_script("fashion_mnist.py", server, tmp_path)
    run = api.run(run_id)
    assert (run.project, run.group, run.job_type, run.tags, run.notes) == (
        "pytorch-cnn-fashion",
        "cnn",
        "train",
        ["fashion", "cnn"],
        "baseline CNN",
    )
    assert run.config["dropout"] == 0.5 and run.config["epochs"] == 2
    assert run.summary["final_accuracy"] == run.summary["accuracy"]
    kinds = kinds_of(run)
    assert (kinds["sample"], kinds["predictions"], kinds["logits"]) == (
        "image",
        "histogram",
        "histogram",
    )
    assert len(run.histograms("logits")["bins"][0]) == 33  # num_bins=32
    assert "init(anonymous=...) is ignored" in out.stderr  # said once, then ignored


def test_hyperparameter_loop_with_config_update_args(
    server: Any, api: gradexp.Api, tmp_path: Path
) -> None:
    project = "lr-search-" + tmp_path.name[-8:].replace("_", "-")
    _, ids = run_script("hparam_search.py", server, tmp_path, None, "--project", project)
    assert len(ids) == 3
    runs = sorted((api.run(i) for i in ids), key=lambda r: r.name)
    assert [r.config["lr"] for r in runs] == [0.1, 0.01, 0.001]
    assert all(r.config["batch_size"] == 32 and r.config["optimizer"] == "sgd" for r in runs)
    assert {r.group for r in runs} == {"lr-search"} and {r.job_type for r in runs} == {"trial"}
    assert [r.name for r in runs] == ["trial-0", "trial-1", "trial-2"]
    assert all(r.state == "finished" for r in runs)
    assert all(r.summary["best_val_loss"] <= r.summary["val_loss"] for r in runs)


def test_define_metric_with_epoch_axes_notes_and_an_alert(
    server: Any, api: gradexp.Api, tmp_path: Path
) -> None:
    _, (run_id,) = run_script("epoch_metrics.py", server, tmp_path)
    run = api.run(run_id)
    assert run.summary["val/loss"] == 0.5 and run.summary["val/acc"] == 0.72
    assert run.notes == "finished epoch 3" and run.tags == ["baseline", "done"]
    by_name = {m["name"]: m for m in run.metrics}
    assert by_name["val/*"]["step_metric"] == "epoch" and by_name["epoch"]["hidden"] is True
    assert by_name["val/acc"]["summary"] == ["max"] and by_name["val/acc"]["goal"] == "maximize"
    assert [(a["title"], a["level"]) for a in run.alerts()] == [("Validation loss went up", "WARN")]
    assert "code/epoch_metrics.py" in [f["path"] for f in run.files()]  # save_code=True


def test_lists_of_images_and_numbers(server: Any, api: gradexp.Api, tmp_path: Path) -> None:
    _torch()
    _, (run_id,) = run_script("image_lists.py", server, tmp_path)
    run = api.run(run_id)
    kinds = kinds_of(run)
    assert (kinds["predictions"], kinds["masks"], kinds["grid"], kinds["class_scores"]) == (
        "gallery",
        "gallery",
        "image",
        "histogram",
    )
    predictions = run.histograms("predictions")
    assert predictions["step"] == [0, 1, 2]
    first = predictions["values"][0]["images"]
    assert len(first) == 8 and first[0]["caption"].startswith("pred ")
    assert (first[0]["width"], first[0]["channels"]) == (16, 3)
    grid = run.histograms("grid")["values"][0]
    assert (grid["width"], grid["height"]) == (
        3 * 16 + 4 * 2,
        3 * 16 + 4 * 2,
    )  # 8 in 3x3, 2 px apart
    assert (
        run.histograms("class_scores")["counts"][0]
        and sum(run.histograms("class_scores")["counts"][0]) == 10
    )


def test_wandb_environment_variables_configure_the_run(
    server: Any, api: gradexp.Api, tmp_path: Path
) -> None:
    env = {
        "WANDB_PROJECT": "from-env",
        "WANDB_NAME": "env-run",
        "WANDB_RUN_ID": "env.run.1",
        "WANDB_RUN_GROUP": "env-group",
        "WANDB_JOB_TYPE": "eval",
        "WANDB_TAGS": "a, b",
        "WANDB_NOTES": "set by the launcher",
        "WANDB_API_KEY": "not-a-gradexp-key",  # never sent anywhere
        "GRADEXP_PROJECT": "gradexp-wins",  # gradexp's own variable wins over WANDB_PROJECT
    }
    out, (run_id,) = run_script("env_configured.py", server, tmp_path, env)
    assert run_id == "env.run.1"
    assert "RUN env.run.1 gradexp-wins env-run env-group eval a,b set by the launcher" in out.stdout
    run = api.run(run_id)
    assert (run.project, run.name, run.group, run.job_type, run.tags) == (
        "gradexp-wins",
        "env-run",
        "env-group",
        "eval",
        ["a", "b"],
    )
    assert (Path(tmp_path) / "gradexp" / "latest-run" / "checkpoint.txt").read_text() == "weights"
    # again: resume="allow" continues the same run
    run_script("env_configured.py", server, tmp_path / "again", env)
    assert api.run(run_id).refresh().state == "finished"


def test_disabled_runs_still_have_a_dir_config_and_summary(server: Any, tmp_path: Path) -> None:
    out, ids = run_script("disabled_run.py", server, tmp_path)
    assert "DIR True 0.1 4" in out.stdout
    assert ids == [] and not (tmp_path / "gradexp").exists()


def test_wandb_disabled_turns_tracking_off(server: Any, tmp_path: Path) -> None:
    out, ids = run_script("env_configured.py", server, tmp_path, {"WANDB_DISABLED": "true"})
    assert ids == [] and "RUN " in out.stdout


def test_prediction_tables_with_images_and_a_dataframe(
    server: Any, api: gradexp.Api, tmp_path: Path
) -> None:
    _torch()
    _, (run_id,) = run_script("prediction_tables.py", server, tmp_path)
    run = api.run(run_id)
    kinds = kinds_of(run)
    assert kinds["val/predictions"] == "table" and kinds["val/classes"] == "table"
    assert run.tables("val/predictions") == [0, 1]
    preds = run.table("val/predictions", step=1)
    assert preds.columns == ["id", "image", "guess", "truth", "score_zero", "score_one",
                             "score_two"]  # fmt: skip
    assert preds.types == ["string", "image", "string", "string", "number", "number", "number"]
    assert [row[0] for row in preds.rows] == [f"1_{i}" for i in range(6)]
    for row in preds.rows:
        assert abs(sum(row[4:]) - 1.0) < 1e-5  # softmax scores, as float32 made them
        assert row[1]["width"] == 8 and row[1]["height"] == 8
    classes = run.table("val/classes")
    assert classes.columns == ["class", "count"] and sum(r[1] for r in classes.rows) == 6


def test_checkpoints_as_artifacts_then_an_eval_run_uses_the_best(
    server: Any, api: gradexp.Api, tmp_path: Path
) -> None:
    _torch()
    project = f"ckpt-{os.urandom(3).hex()}"
    out, (train_id, eval_id) = run_script(
        "checkpoint_artifacts.py", server, tmp_path, None, f"--project={project}"
    )
    best = api.artifact(f"{project}/regressor:best", type="model")
    assert "latest" in best.aliases and best.logged_by["id"] == train_id
    assert [r["id"] for r in best.used_by] == [eval_id]
    versions = api.artifacts(project, type="model")
    assert [v.version for v in versions] == [f"v{i}" for i in reversed(range(len(versions)))]
    assert best.version == versions[0].version and best.metadata["epoch"] == len(versions) - 1
    assert f"best checkpoint from epoch {best.metadata['epoch']}" in out.stdout
    evaluated = api.run(eval_id).summary
    assert evaluated["eval/epoch"] == best.metadata["epoch"]
    # every version still holds the checkpoint it was logged with (the script overwrote
    # model.pt each time: log_artifact kept a copy)
    first = api.artifact(f"{project}/regressor:epoch-0")
    restored = first.download(tmp_path / "epoch0") / "model.pt"
    import torch

    assert torch.load(restored)["epoch"] == 0


def test_eval_script_with_preset_charts_a_video_and_its_code(
    server: Any, api: gradexp.Api, tmp_path: Path
) -> None:
    out, (run_id,) = run_script("eval_plots.py", server, tmp_path)
    assert len(run_id) == 8  # wandb.util.generate_id()
    assert f"url {server.url}/r/{run_id}" in out.stdout
    assert "wandb.Video values are not stored" in out.stderr
    run = api.run(run_id)
    kinds = kinds_of(run)
    assert {kinds[k] for k in ("eval/confusion", "eval/roc", "eval/pr", "eval/loss_curves")} == {
        "table"
    }
    assert "eval/samples" not in kinds  # left out; the rest of the call was logged
    confusion = run.table("eval/confusion")
    assert confusion.columns == ["Actual", "Predicted", "nPredictions"]
    assert sum(row[2] for row in confusion.rows) == 60 and len(confusion.rows) == 9
    roc = run.table("eval/roc")
    assert {row[0] for row in roc.rows} == {"cat", "dog", "bird"}
    assert all(0.0 <= row[1] <= 1.0 and 0.0 <= row[2] <= 1.0 for row in roc.rows)
    curves = run.table("eval/loss_curves")
    assert curves.columns == ["series", "epoch", "y"] and len(curves.rows) == 10
    code = api.artifact(f"eval-plots/source-{run_id}:latest")
    assert code.type == "code" and [f["path"] for f in code.files()] == ["eval_plots.py"]
