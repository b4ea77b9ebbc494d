"""Reads on every database: downsampled history (spikes survive), histograms, run lists."""

from __future__ import annotations

import math
import random
import time

import pytest

from .helpers import batch, get, history, new_id, post, put_run, rows

NAN = {"_type": "float", "value": "NaN"}
INF = {"_type": "float", "value": "Infinity"}


def _value(v):
    if isinstance(v, dict):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[v["value"]]
    return v


def _feed(srv, run, values_for_step, n, per_batch=2000):
    for first in range(0, n, per_batch):
        recs = [
            history(s + 1, s, values_for_step(s)) for s in range(first, min(n, first + per_batch))
        ]
        status, body = post(srv, run, batch(recs))
        assert status == 200, body


@pytest.mark.slow
def test_a_single_spike_in_100k_steps_survives(db_server):
    run = new_id()
    put_run(db_server, run)
    spike_step = 61_234
    _feed(
        db_server,
        run,
        lambda s: {"loss": 1000.0 if s == spike_step else 1.0 + (s % 10) / 100},
        100_000,
        5000,
    )
    series = get(db_server, f"/api/v1/runs/{run}/history?keys=loss&samples=500")["series"]["loss"]
    assert 250 <= len(series["step"]) <= 500
    assert max(series["max"]) == 1000.0
    hit = [i for i, m in enumerate(series["max"]) if m == 1000.0]
    assert len(hit) == 1
    i = hit[0]
    assert series["step"][i - 1] < spike_step <= series["step"][i]
    assert min(series["min"]) == 1.0 and series["value"][-1] == 1.0 + (99_999 % 10) / 100
    # Zoomed in on the spike: raw points, and the spike is one of them.
    zoom = get(
        db_server, f"/api/v1/runs/{run}/history?keys=loss&samples=500&min_step=61000&max_step=61400"
    )
    z = zoom["series"]["loss"]
    assert z["step"] == list(range(61000, 61401)) and z["min"] == z["max"] == z["value"]
    assert z["value"][spike_step - 61000] == 1000.0


def test_downsampled_buckets_agree_with_the_raw_rows(db_server):
    rnd = random.Random(7)
    run = new_id()
    put_run(db_server, run)
    n = 20_000

    def values(s):
        r = rnd.random()
        if r < 0.001:
            return {"x": NAN, "y": s}
        if r < 0.002:
            return {"x": INF, "y": s}
        if s % 3 == 0:
            return {"y": s}  # x is missing on some steps
        return {"x": rnd.gauss(0, 1), "y": s}

    _feed(db_server, run, values, n)
    raw = rows(db_server, run, keys="x", limit=50_000)
    lo, hi, samples = 1234, 17_777, 77
    in_range = [(r["_step"], _value(r["x"])) for r in raw if lo <= r["_step"] <= hi]
    s = get(
        db_server,
        f"/api/v1/runs/{run}/history?keys=x,y&samples={samples}&min_step={lo}&max_step={hi}",
    )["series"]
    x = s["x"]
    assert 0 < len(x["step"]) <= samples
    assert x["step"] == sorted(x["step"]) and lo <= x["step"][0] and x["step"][-1] <= hi
    by_step = dict(in_range)
    finite = [v for _, v in in_range if math.isfinite(v)]
    assert max(_value(m) for m in x["max"]) == math.inf  # the +inf point is in some bucket's max
    assert min(_value(m) for m in x["min"]) == min(finite)
    for step, value in zip(x["step"], x["value"], strict=True):
        got, want = _value(value), by_step[step]
        assert got == want or (math.isnan(got) and math.isnan(want))
    assert s["y"]["step"][-1] == hi and s["y"]["value"][-1] == hi and s["y"]["max"][-1] == hi
    assert s["y"]["min"][0] >= lo


def test_histograms_endpoint(db_server):
    run = new_id()
    put_run(db_server, run)

    def hist(i):
        return {
            "_type": "histogram",
            "bins": [0.0, 1.0, float(i + 2)],
            "counts": [i, 1],
            "mean": i / 2,
            "count": i + 1,
        }

    _feed(
        db_server,
        run,
        lambda s: {"loss": 1.0, **({"g": hist(s // 10)} if s % 10 == 0 else {})},
        1000,
    )
    h = get(db_server, f"/api/v1/runs/{run}/histograms?key=g&samples=11")
    assert h["kind"] == "histogram" and len(h["step"]) == 11
    assert h["step"][0] == 0 and h["step"][-1] == 990
    assert h["counts"][-1] == [99, 1] and h["bins"][-1] == [0.0, 1.0, 101.0]
    all_h = get(
        db_server, f"/api/v1/runs/{run}/histograms?key=g&samples=1000&min_step=500&max_step=530"
    )
    assert all_h["step"] == [500, 510, 520, 530]
    # The statistics chart like any number: "g#mean".
    mean = get(db_server, f"/api/v1/runs/{run}/history?keys=g%23mean&samples=1000")["series"][
        "g#mean"
    ]
    assert mean["step"][:3] == [0, 10, 20] and mean["value"][:3] == [0.0, 0.5, 1.0]
    assert {k["key"]: k["kind"] for k in get(db_server, f"/api/v1/runs/{run}/keys")["keys"]}[
        "g"
    ] == "histogram"
    assert db_server.request("GET", f"/api/v1/runs/{run}/histograms?key=loss")[0] == 400
    assert db_server.request("GET", f"/api/v1/runs/{run}/histograms?key=nope")[0] == 404


@pytest.fixture(scope="module")
def listed_project(db_server):
    """A project with 7 runs in various states and tags."""
    project = f"list-{new_id('')[:6]}"
    ids = []
    for i in range(7):
        run = new_id(f"l{i}")
        tags = ["even"] if i % 2 == 0 else ["odd"]
        put_run(
            db_server,
            run,
            project=project,
            name=f"run-{i}",
            tags=tags,
            started_at=1000.0 + i,
            group="g" if i < 3 else None,
        )
        post(db_server, run, batch([history(1, i * 10, {"loss": float(i)})]))
        if i in (1, 2):
            post(
                db_server,
                run,
                batch([{"seq": 2, "type": "finish", "exit_code": i - 1, "time": 2000.0}]),
            )
        ids.append(run)
    return project, ids


def test_runs_list_filters_sort_and_pages(db_server, listed_project):
    project, ids = listed_project
    base = f"/api/v1/projects/{db_server.user}/{project}/runs"
    page = get(db_server, base)
    assert page["total"] == 7 and [r["id"] for r in page["runs"]] == ids[::-1]
    assert get(db_server, base + "?order=started_at")["runs"][0]["id"] == ids[0]
    assert [r["name"] for r in get(db_server, base + "?order=-last_step&limit=2")["runs"]] == [
        "run-6",
        "run-5",
    ]
    assert {r["id"] for r in get(db_server, base + "?tag=even")["runs"]} == {
        ids[0],
        ids[2],
        ids[4],
        ids[6],
    }
    assert [r["id"] for r in get(db_server, base + "?state=finished")["runs"]] == [ids[1]]
    assert [r["id"] for r in get(db_server, base + "?state=failed")["runs"]] == [ids[2]]
    assert len(get(db_server, base + "?state=running")["runs"]) == 5
    assert [r["name"] for r in get(db_server, base + "?q=run-3")["runs"]] == ["run-3"]
    assert len(get(db_server, base + "?group=g")["runs"]) == 3
    seen, cursor = [], None
    while True:
        page = get(db_server, base + "?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    projects = {p["name"]: p for p in get(db_server, "/api/v1/projects")["projects"]}
    assert projects[project]["run_count"] == 7 and projects[project]["owner"] == db_server.user
    run = get(db_server, f"/api/v1/runs/{ids[2]}")
    assert run["url"].endswith(f"/r/{ids[2]}") and run["exit_code"] == 1


@pytest.mark.slow
def test_silent_runs_read_as_crashed(start_server):
    srv = start_server(env={"GRADEXP_SERVER_CRASH_AFTER": "1"})
    run = new_id()
    put_run(srv, run, project="crashy")
    time.sleep(1.5)
    assert get(srv, f"/api/v1/runs/{run}")["state"] == "crashed"
    assert [
        r["id"] for r in get(srv, f"/api/v1/projects/{srv.user}/crashy/runs?state=crashed")["runs"]
    ] == [run]
    assert srv.request("POST", f"/api/v1/runs/{run}/heartbeat")[0] == 200
    assert get(srv, f"/api/v1/runs/{run}")["state"] == "running"
