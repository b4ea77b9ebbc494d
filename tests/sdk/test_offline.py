"""init / log / finish without a server: what lands in the run file."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

import gradexp
import gradexp.sdk.facade
from gradexp.errors import GradexpError, GradexpWarning
from gradexp.runfile import RunDir

from .conftest import file_records


def _history(run: gradexp.Run) -> list[tuple[int, dict[str, object]]]:
    assert run.dir is not None
    return [(r.step, r.values) for r in file_records(run.dir, "history")]


def test_log_before_init_names_init() -> None:
    with pytest.raises(GradexpError, match=r"gradexp\.init\(\)"):
        gradexp.log({"loss": 1.0})


def test_offline_run_layout_and_records(gx_env: Path) -> None:
    run = gradexp.init(project="mnist", name="first", config={"lr": 0.001, "arch": {"depth": 3}})
    assert run.mode == "offline" and run.name == "first" and run.project == "mnist"
    assert run.dir is not None and Path(run.dir).parent == gx_env / "gradexp"
    assert Path(run.dir).name.startswith("run-") and Path(run.dir).name.endswith(f"-{run.id}")
    assert len(run.id) == 10 and run.id.isalnum()
    for i in range(100):
        gradexp.log({"loss": 1 / (i + 1), "acc": i / 100})
    run.config["batch_size"] = 64
    gradexp.finish()
    assert (gx_env / "gradexp" / "latest-run").resolve() == Path(run.dir)
    meta = RunDir(run.dir).meta
    assert meta["project"] == "mnist" and meta["config"] == {"lr": 0.001, "arch": {"depth": 3}}
    assert meta["mode"] == "offline" and meta["id"] == run.id
    records = file_records(run.dir)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    history = _history(run)
    assert [s for s, _ in history] == list(range(100))
    assert history[9][1] == {"loss": 0.1, "acc": 0.09}
    assert [r.data["update"] for r in records if r.type == "config"] == [{"batch_size": 64}]
    assert records[-1].type == "finish" and records[-1].data["exit_code"] == 0
    assert gradexp.run is None


def test_step_semantics() -> None:
    run = gradexp.init()
    gradexp.log({"a": 1})  # step 0
    gradexp.log({"b": 2}, commit=False)  # held for step 1
    gradexp.log({"c": 3})  # step 1 with b and c
    gradexp.log({"d": 4}, step=10)  # explicit step
    gradexp.log({"e": 5})  # continues at 11
    gradexp.log({"f": 6}, step=20, commit=False)
    gradexp.log({"g": 7}, step=21)  # a different step commits step 20 first
    with pytest.warns(GradexpWarning, match="step 3 is lower than the last step 21"):
        gradexp.log({"h": 8}, step=3)  # kept, with its step
        gradexp.flush()  # steps are numbered (and this is warned about) by the stream
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per run
        gradexp.log({"i": 9}, step=2)
        gradexp.flush()
    gradexp.log({"j": 10})  # auto steps continue after the highest step
    gradexp.finish()
    assert _history(run) == [
        (0, {"a": 1}),
        (1, {"b": 2, "c": 3}),
        (10, {"d": 4}),
        (11, {"e": 5}),
        (20, {"f": 6}),
        (21, {"g": 7}),
        (3, {"h": 8}),
        (2, {"i": 9}),
        (22, {"j": 10}),
    ]


def test_nonfinite_floats_are_encoded_in_the_file_and_decoded_by_the_reader() -> None:
    run = gradexp.init()
    gradexp.log({"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "ok": 1.0})
    gradexp.finish()
    assert run.dir is not None
    (record,) = file_records(run.dir, "history")
    assert record.data["values"] == {
        "nan": {"_type": "float", "value": "NaN"},
        "inf": {"_type": "float", "value": "Infinity"},
        "ninf": {"_type": "float", "value": "-Infinity"},
        "ok": 1.0,
    }
    values = record.values
    assert math.isnan(values["nan"]) and values["inf"] == math.inf and values["ninf"] == -math.inf


def test_bad_values_warned_once_per_key_counted_and_others_kept() -> None:
    run = gradexp.init()
    with pytest.warns(GradexpWarning) as caught:
        for i in range(5):
            gradexp.log({"loss": float(i), "weird": object(), "also": {1, 2}})
        gradexp.log("not a dict")  # type: ignore[arg-type]
    messages = [str(w.message) for w in caught]
    assert sum("'weird'" in m for m in messages) == 1
    assert sum("'also'" in m for m in messages) == 1
    assert sum("mapping" in m for m in messages) == 1
    gradexp.finish()
    assert run.dir is not None
    assert [v for _, v in _history(run)] == [{"loss": float(i)} for i in range(5)]
    dropped: dict[str, int] = {}
    for record in file_records(run.dir, "telemetry"):
        for key, n in record.data["dropped_values"].items():
            dropped[key] = dropped.get(key, 0) + n
    assert dropped == {"weird": 5, "also": 5}


def test_summary_and_config() -> None:
    run = gradexp.init(config={"lr": 0.1})
    gradexp.log({"loss": 2.0, "acc": 0.5})
    gradexp.log({"loss": 1.0})
    assert run.summary["loss"] == 1.0 and run.summary["acc"] == 0.5
    run.summary["best_acc"] = 0.75
    assert dict(run.summary) == {"loss": 1.0, "acc": 0.5, "best_acc": 0.75}
    run.config.update({"epochs": 3}, momentum=0.9)
    assert run.config.lr == 0.1 and run.config["epochs"] == 3
    assert run.config.as_dict() == {"lr": 0.1, "epochs": 3, "momentum": 0.9}
    gradexp.finish()
    assert run.dir is not None
    assert [r.data["update"] for r in file_records(run.dir, "summary")] == [{"best_acc": 0.75}]
    assert [r.data["update"] for r in file_records(run.dir, "config")] == [
        {"epochs": 3, "momentum": 0.9}
    ]


def test_reinit_finishes_the_previous_run_and_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gradexp.sdk.facade._current, "said_reinit", False)  # said once per process
    first = gradexp.init()
    gradexp.log({"x": 1})
    second = gradexp.init()
    assert gradexp.run is second and first.id != second.id
    assert first.dir is not None
    assert file_records(first.dir)[-1].type == "finish"
    err = capsys.readouterr().err
    assert f"finishing run {first.id} first" in err
    with pytest.warns(GradexpWarning, match="is finished"):
        first.log({"late": 1})  # a finished run ignores log() with one warning


def test_context_manager_records_failure() -> None:
    with pytest.raises(ValueError), gradexp.init() as run:
        gradexp.log({"x": 1})
        raise ValueError("diverged")
    assert run.dir is not None
    assert file_records(run.dir)[-1].data["exit_code"] == 1
    with gradexp.init() as ok:
        gradexp.log({"x": 1})
    assert ok.dir is not None
    assert file_records(ok.dir)[-1].data["exit_code"] == 0


def test_disabled_mode_is_a_no_op(gx_env: Path) -> None:
    run = gradexp.init(mode="disabled")
    gradexp.log({"x": 1})
    run.config["a"] = 1
    assert gradexp.flush() is True
    gradexp.finish()
    # run.dir is still a folder a script can save into (a temporary one), and gradexp
    # itself wrote nothing
    assert os.path.isdir(run.dir) and not str(run.dir).startswith(str(gx_env))
    with open(os.path.join(run.dir, "model.pt"), "wb") as f:
        f.write(b"weights")
    assert not (gx_env / "gradexp").exists()


def test_backpressure_with_a_tiny_memory_bound() -> None:
    limit = 20_000
    run = gradexp.init(settings={"memory_limit": limit})
    n = 20_000
    for i in range(n):
        gradexp.log({"i": i, "x": i * 0.5, "s": "abc"})
    gradexp.finish()
    assert run.dir is not None
    steps = [s for s, _ in _history(run)]
    assert steps == list(range(n))  # nothing dropped
    channel = run._channel
    one_record = 232 + 64 * 3
    assert channel.max_pending <= limit + one_record  # never grew past the bound
    assert channel.max_pending > limit // 2  # and the bound was actually reached


def test_attach_to_next_step_from_other_threads() -> None:
    run = gradexp.init()
    gradexp.log({"loss": 1.0})

    def hook(i: int) -> None:
        run._attach_to_next_step({f"grad/{i}": float(i)})

    threads = [threading.Thread(target=hook, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gradexp.log({"loss": 0.5, "grad/3": -1.0})  # the user's own key wins
    gradexp.log({"loss": 0.25})
    gradexp.finish()
    history = _history(run)
    assert history[0] == (0, {"loss": 1.0})
    assert history[1][0] == 1
    assert history[1][1] == {
        "loss": 0.5,
        **{f"grad/{i}": float(i) for i in range(8)},
        "grad/3": -1.0,
    }
    assert history[2] == (2, {"loss": 0.25})


def test_flush_means_written() -> None:
    run = gradexp.init()
    for i in range(10):
        gradexp.log({"i": i})
    assert gradexp.flush(timeout=10) is True
    assert run.dir is not None
    assert len(file_records(run.dir, "history")) == 10


def test_unfinished_run_is_finished_at_exit(gx_env: Path) -> None:
    script = (
        "import gradexp\n"
        "gradexp.init()\n"
        "for i in range(1000): gradexp.log({'i': i})\n"
        "raise SystemExit(0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), timeout=120)
    assert proc.returncode == 0
    (run_dir,) = [p for p in (gx_env / "gradexp").iterdir() if p.name.startswith("run-")]
    records = file_records(run_dir)
    assert len([r for r in records if r.type == "history"]) == 1000
    assert records[-1].type == "finish" and records[-1].data["exit_code"] == 0


def test_uncaught_exception_marks_the_run_failed(gx_env: Path) -> None:
    script = "import gradexp\ngradexp.init()\ngradexp.log({'i': 1})\nraise RuntimeError('boom')\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], env=os.environ.copy(), timeout=120, capture_output=True
    )
    assert proc.returncode == 1 and b"boom" in proc.stderr
    (run_dir,) = [p for p in (gx_env / "gradexp").iterdir() if p.name.startswith("run-")]
    assert file_records(run_dir)[-1].data["exit_code"] == 1


def test_resume_offline_continues_steps_and_sequences(gx_env: Path) -> None:
    first = gradexp.init(id="resumable")
    for i in range(5):
        gradexp.log({"i": i})
    gradexp.finish()
    with pytest.raises(GradexpError, match="no earlier run"):
        gradexp.init(id="missing", resume=True)
    second = gradexp.init(id="resumable", resume=True)
    assert second.step == 5
    gradexp.log({"i": 5})
    gradexp.finish()
    assert first.dir != second.dir
    assert second.dir is not None
    records = file_records(second.dir)
    assert records[0].seq == len(file_records(first.dir)) + 1
    assert [(r.step, r.values) for r in records if r.type == "history"] == [(5, {"i": 5})]
    assert RunDir(second.dir).meta["resume"] is True


def test_bad_dir_fails_at_init_with_a_clear_message(gx_env: Path) -> None:
    blocker = gx_env / "file"
    blocker.write_text("x")
    with pytest.raises(GradexpError, match="cannot create the run directory"):
        gradexp.init(dir=blocker)


def test_import_and_init_stay_light(gx_env: Path) -> None:
    """import gradexp and init() load no numpy, torch, aiohttp or asyncio on the caller."""
    script = (
        "import sys, gradexp\n"
        "heavy = ('numpy', 'torch', 'aiohttp', 'asyncio', 'orjson')\n"
        "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]\n"
        "before = set(sys.modules)\n"
        "run = gradexp.init(mode='offline')\n"
        "loaded = set(sys.modules) - before  # (the stream thread imports asyncio meanwhile)\n"
        "assert 'numpy' not in loaded and 'torch' not in loaded, loaded\n"
        "gradexp.log({'x': 1})\n"
        "gradexp.finish()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=os.environ.copy(),
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
