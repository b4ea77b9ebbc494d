"""A distributed job is one run: real ``torchrun --nproc_per_node=2`` jobs (gloo on the
CPU) against a real server, online and offline-then-synced, and a job where a rank fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gradexp.sdk.distributed import job_run_id, writer_from_env
from tests.services import require_torch

from .conftest import gradexp_cli

pytestmark = pytest.mark.slow

STEPS = 100

TRAIN = textwrap.dedent(
    """
    import os, sys, time
    import torch
    import torch.distributed as dist
    import gradexp

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    run = gradexp.init(project=os.environ.get("DDP_PROJECT", "ddp"), config={"lr": 0.1}, name="two-ranks")
    for step in range(%(steps)d):
        t = torch.tensor([float(step)])
        dist.all_reduce(t)  # both ranks step together
        gradexp.log({"loss": 1.0 / (step + 1) + rank, "reduced": t.item(), "who": rank})
    time.sleep(1.0)  # a few system samples (0.2 s apart): a CPU share needs two of them
    print(f"rank {rank} trained", flush=True)
    print(f"rank {rank} warns", file=sys.stderr, flush=True)
    if os.environ.get("FAIL_RANK") == str(rank):
        dist.barrier()  # rank 0 has finished its run: the failure is this rank's alone
        raise RuntimeError(f"rank {rank} broke")
    gradexp.finish()
    if os.environ.get("FAIL_RANK"):
        dist.barrier()
    dist.destroy_process_group()
    print(f"run id {run.id}", flush=True)
    """
) % {"steps": STEPS}


def torchrun(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run TRAIN under ``torchrun --nproc_per_node=2`` in ``tmp_path``."""
    require_torch()
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    full = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "GRADEXP_SYSTEM_METRICS_INTERVAL": "0.2",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(script)],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )


def job_run(api: Any, proc: subprocess.CompletedProcess[str]) -> Any:
    """The job's run, by the id rank 0 printed."""
    ids = {line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("run id ")}
    assert len(ids) == 1, proc.stdout + proc.stderr  # every rank is on one run
    return api.run(ids.pop())


def check_job(api: Any, run: Any) -> None:
    """Both ranks' 100 steps exactly, their system metrics and their logs, by rank."""
    assert run.state == "finished" and run.exit_code == 0
    assert run.world_size == 2
    assert [(w["rank"], w["state"], w["exit_code"]) for w in run.writers] == [
        (0, "finished", 0),
        (1, "finished", 0),
    ]
    for rank in (0, 1):
        rows = run.history(rank=rank)
        assert [r["_step"] for r in rows] == list(range(STEPS))
        assert [r["loss"] for r in rows] == [1.0 / (s + 1) + rank for s in range(STEPS)]
        assert [r["reduced"] for r in rows] == [2.0 * s for s in range(STEPS)]
        assert {r["who"] for r in rows} == {rank}
        assert run.summary["who"] == 0  # the run's summary is rank 0's
        system = run.system_metrics(rank=rank)
        assert system["cpu.percent"]["value"] and system["memory.rss_mb"]["value"]
        logs = run.logs(rank=rank)
        texts = [(line["stream"], line["text"], line["rank"]) for line in logs]
        assert ("stdout", f"rank {rank} trained", rank) in texts
        assert ("stderr", f"rank {rank} warns", rank) in texts
        assert not any(f"rank {1 - rank} " in line["text"] for line in logs)
    assert run.history() == run.history(rank=0)
    # One run for the job: the project lists it once, and the other rank is not a run.
    listed = [r.id for r in api.runs(f"{run.owner}/ddp")]
    assert listed.count(run.id) == 1 and not any(i.startswith("@") for i in listed)


def test_a_torchrun_job_is_one_run(tmp_path: Path, online: Any) -> None:
    import gradexp

    proc = torchrun(tmp_path, online.client_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = gradexp.Api()
    check_job(api, job_run(api, proc))


def test_offline_job_synced_afterwards(tmp_path: Path, online: Any) -> None:
    import gradexp

    proc = torchrun(tmp_path, {"GRADEXP_MODE": "offline"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "gradexp"
    # One run file per rank (rank 1's folder says so; the ranks may start in different
    # seconds, so the names' order says nothing).
    dirs = sorted((p.name for p in root.glob("run-*")), key=lambda name: name.endswith(".rank1"))
    assert len(dirs) == 2 and not dirs[0].endswith(".rank1") and dirs[1].endswith(".rank1"), dirs
    assert os.readlink(root / "latest-run") == dirs[0]  # the job's latest run is rank 0's
    synced = gradexp_cli("sync", str(root), env=online.client_env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    api = gradexp.Api()
    check_job(api, job_run(api, proc))
    # A second sync delivers nothing twice.
    again = gradexp_cli("sync", str(root), env=online.client_env)
    assert again.returncode == 0, again.stdout + again.stderr
    check_job(api, job_run(api, proc))


def test_a_failing_rank_fails_the_run(tmp_path: Path, online: Any) -> None:
    import gradexp

    proc = torchrun(tmp_path, {**online.client_env, "FAIL_RANK": "1"})
    assert proc.returncode != 0
    assert "rank 1 broke" in proc.stderr
    api = gradexp.Api()
    runs = api.runs(f"{online.user}/ddp", filters={"state": "failed"})
    run = max(runs, key=lambda r: r.started_at or 0)
    assert run.state == "failed" and run.exit_code == 1
    by_rank = {w["rank"]: w for w in run.writers}
    assert (by_rank[1]["state"], by_rank[1]["exit_code"]) == ("failed", 1)
    assert (by_rank[0]["state"], by_rank[0]["exit_code"]) == ("finished", 0)
    assert [r["_step"] for r in run.history(rank=1)] == list(range(STEPS))
    assert any("RuntimeError: rank 1 broke" in line["text"] for line in run.logs(rank=1))


def test_ranks_zero_leaves_the_other_ranks_disabled(tmp_path: Path, online: Any) -> None:
    script = tmp_path / "zero.py"
    script.write_text(
        "import gradexp\n"
        "run = gradexp.init(project='ddp', ranks='zero')\n"
        "print('mode', run.settings.mode, flush=True)\n"
        "run.finish()\n"
    )
    env = {**os.environ, **online.client_env, "PYTHONPATH": str(Path(__file__).parents[2])}
    modes = []
    for rank in ("0", "1"):
        ranked = {**env, "RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": "2"}
        out = subprocess.run(
            [sys.executable, str(script)], env=ranked, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        modes.append(out.stdout.split()[-1])
    assert modes == ["online", "disabled"]
    assert sorted(p.name for p in (tmp_path / "gradexp").glob("run-*"))[0].count("rank") == 0


def test_the_job_id_every_rank_derives() -> None:
    base = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
    writer = writer_from_env(base)
    assert writer is not None and (writer.rank, writer.world_size) == (1, 2)
    assert writer_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None  # one process: no job
    one = job_run_id("p", {**base, "TORCHELASTIC_RUN_ID": "abc"})
    assert one == job_run_id("p", {**base, "RANK": "0", "TORCHELASTIC_RUN_ID": "abc"})
    assert one != job_run_id("q", {**base, "TORCHELASTIC_RUN_ID": "abc"})  # per project
    assert one != job_run_id("p", {**base, "TORCHELASTIC_RUN_ID": "abd"})
    assert job_run_id("p", {**base, "SLURM_JOB_ID": "7"}) is not None
    # torchrun's static "none" id on one node: the launch's error-file folder tells jobs apart
    none = {**base, "TORCHELASTIC_RUN_ID": "none"}
    first = job_run_id(
        "p", {**none, "TORCHELASTIC_ERROR_FILE": "/tmp/te_a/none_x/attempt_0/1/e.json"}
    )
    second = job_run_id(
        "p", {**none, "TORCHELASTIC_ERROR_FILE": "/tmp/te_b/none_y/attempt_0/0/e.json"}
    )
    assert first is not None and second is not None and first != second
    assert job_run_id("p", none) is None  # nothing to tell this job apart: init() says so
