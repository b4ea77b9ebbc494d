"""``gradexp.Api`` against a real server."""

from __future__ import annotations

import asyncio
import hashlib
import math

import pytest

import gradexp
from gradexp.errors import ApiError, GradexpError

from .helpers import batch, history, new_id, post, put_run


@pytest.fixture
def project(server):
    """A project with two runs: one finished with NaNs, a histogram and a file; one running."""
    name = f"api-{new_id('')[:6]}"
    done, live = new_id("d"), new_id("l")
    put_run(
        server, done, project=name, name="done", tags=["best"], config={"lr": 0.1}, started_at=1.0
    )
    data = b"model weights"
    sha = hashlib.sha256(data).hexdigest()
    assert server.request("PUT", f"/api/v1/runs/{done}/blobs/{sha}", raw=data)[0] == 201
    hist = {
        "_type": "histogram",
        "bins": [0.0, 1.0, 2.0],
        "counts": [1, 2],
        "mean": {"_type": "float", "value": "NaN"},
    }
    records = [history(i + 1, i, {"loss": 1.0 / (i + 1), "acc": i / 100}) for i in range(300)]
    records[10]["values"]["loss"] = {"_type": "float", "value": "NaN"}
    records[20]["values"]["w"] = hist
    records.append(
        {"seq": 301, "type": "file", "path": "ckpt/model.pt", "sha256": sha, "size": len(data)}
    )
    records.append(
        {
            "seq": 302,
            "type": "summary",
            "update": {"best": {"_type": "float", "value": "-Infinity"}},
        }
    )
    records.append({"seq": 303, "type": "finish", "exit_code": 0, "time": 9.0})
    assert post(server, done, batch(records))[0] == 200
    put_run(server, live, project=name, name="live", started_at=2.0)
    post(server, live, batch([history(1, 0, {"loss": 5.0})]))
    return name, done, live


def test_settings_from_arguments_and_environment(server, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADEXP_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("GRADEXP_BASE_URL", raising=False)
    monkeypatch.delenv("GRADEXP_API_KEY", raising=False)
    with pytest.raises(GradexpError):
        gradexp.Api()
    assert gradexp.Api(server.url, server.api_key).viewer()["user"]["name"] == server.user
    monkeypatch.setenv("GRADEXP_BASE_URL", server.url)
    monkeypatch.setenv("GRADEXP_API_KEY", server.api_key)
    assert gradexp.Api().viewer()["user"]["name"] == server.user


def test_projects_runs_and_run(server, project):
    name, done, live = project
    api = gradexp.Api(server.url, server.api_key)
    assert name in {p["name"] for p in api.projects()}
    runs = api.runs(name)
    assert [r.id for r in runs] == [live, done]  # newest first
    assert [r.id for r in api.runs(f"{server.user}/{name}", order="started_at")] == [done, live]
    assert [r.id for r in api.runs(name, filters={"state": "finished"})] == [done]
    assert [r.id for r in api.runs(name, filters={"tag": "best"})] == [done]
    with pytest.raises(ValueError, match="unknown run filters"):
        api.runs(name, filters={"colour": "red"})
    run = api.run(done)
    assert (run.id, run.name, run.state, run.config) == (done, "done", "finished", {"lr": 0.1})
    assert run.summary["acc"] == 2.99 and run.summary["best"] == -math.inf
    assert run.summary["loss"] == 1.0 / 300
    assert run.path == f"{server.user}/{name}/{done}"


def test_history_all_rows_and_downsampled(server, project):
    _, done, _ = project
    run = gradexp.Api(server.url, server.api_key).run(done)
    rows = run.history()
    assert len(rows) == 300 and set(rows[0]) == {"_step", "_timestamp", "loss", "acc"}
    assert math.isnan(rows[10]["loss"]) and rows[20]["w"]["counts"] == [1, 2]
    assert math.isnan(rows[20]["w"]["mean"])
    only = run.history(keys=["acc"])
    assert len(only) == 300 and set(only[5]) == {"_step", "_timestamp", "acc"}
    small = run.history(keys=["loss"], samples=30)
    assert 0 < len(small) <= 30 and all("loss" in r for r in small)
    series = run.series(["loss"], samples=30)["loss"]
    assert max(series["max"]) == 1.0  # the NaN at step 10 does not hide its bucket's max
    assert not any(math.isnan(v) for v in series["max"])
    assert len(list(run.scan_history(page_size=7))) == 300


def test_files_histograms_and_arrow(server, project, tmp_path):
    _, done, _ = project
    run = gradexp.Api(server.url, server.api_key).run(done)
    assert [f["path"] for f in run.files()] == ["ckpt/model.pt"]
    path = run.download("ckpt/model.pt", root=tmp_path)
    assert path == tmp_path / "ckpt" / "model.pt" and path.read_bytes() == b"model weights"
    with pytest.raises(ValueError):
        run.download("../escape", root=tmp_path)
    h = run.histograms("w")
    assert h["step"] == [20] and h["counts"] == [[1, 2]]
    table = run.to_arrow()
    assert table.num_rows == 300 and table.column_names[:2] == ["step", "timestamp"]
    assert table.column("acc").to_pylist()[-1] == 2.99


def test_errors_are_one_clear_line(server, project):
    api = gradexp.Api(server.url, server.api_key)
    with pytest.raises(ApiError) as err:
        api.run("nosuchrun")
    assert err.value.status == 404 and err.value.code == "run_not_found"
    assert "\n" not in str(err.value) and "nosuchrun" in str(err.value)
    with pytest.raises(ApiError) as err:
        gradexp.Api(server.url, "gx_" + "x" * 40).projects()
    assert err.value.status == 401
    with pytest.raises(GradexpError, match="cannot reach"):
        gradexp.Api("http://127.0.0.1:9", server.api_key).projects()


def test_usable_inside_a_running_event_loop(server, project):
    _, done, _ = project

    async def inside() -> int:
        # A notebook cell runs inside the kernel's loop: the client must not touch it.
        return len(gradexp.Api(server.url, server.api_key).run(done).history(keys=["acc"]))

    assert asyncio.run(inside()) == 300
