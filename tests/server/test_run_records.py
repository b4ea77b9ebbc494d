"""Records that describe a run: its fields set after init (a config record's ``run``),
``metric`` definitions and the summaries they choose, ``alert``s, and ``gallery`` values;
on every database, through the wire (raw batches)."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import batch, get, history, new_id, post, put_run

SHA = "a" * 64


def _metric(seq: int, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": "metric",
        "name": name,
        "step_metric": fields.get("step_metric"),
        "summary": fields.get("summary", []),
        "goal": fields.get("goal"),
        "hidden": fields.get("hidden", False),
    }


def _run(srv: Any, run_id: str) -> dict[str, Any]:
    return dict(get(srv, f"/api/v1/runs/{run_id}"))


def test_define_metric_summaries(db_server: Any) -> None:
    run_id = new_id("dm")
    assert put_run(db_server, run_id, project="dm")[0] == 201
    defs = [
        _metric(1, "val/*", step_metric="epoch", summary=["min"]),
        _metric(2, "acc", summary=["max"]),
        _metric(3, "loss", goal="minimize", summary=["best"]),
        _metric(4, "lr", summary=["none"]),
        _metric(5, "x", summary=["first"]),
        _metric(6, "m", summary=["mean"]),
        _metric(7, "multi", summary=["min", "max", "last"]),
        _metric(8, "val/exact", summary=["max"]),  # an exact name wins over the glob
    ]
    values = [
        {"epoch": 0, "val/loss": 0.5, "val/exact": 3, "acc": 0.1, "loss": 2.0, "lr": 0.1, "x": 7,
         "m": 1.0, "multi": 5, "nan_min": 1.0},
        {"epoch": 1, "val/loss": 0.2, "val/exact": 9, "acc": 0.7, "loss": float("nan"), "lr": 0.01,
         "x": 8, "m": 2.0, "multi": 1, "nan_min": float("nan")},
        {"epoch": 2, "val/loss": 0.4, "val/exact": 4, "acc": 0.6, "loss": 1.5, "lr": 0.001, "x": 9,
         "m": 6.0, "multi": 3, "nan_min": 2.0},
    ]  # fmt: skip
    records = defs + [
        {**history(9 + i, i, {}), "values": {k: _nan(v) for k, v in row.items()}}
        for i, row in enumerate(values)
    ]
    records.append(_metric(12, "nan_min", summary=["min"]))  # defined after its values
    # Two batches, the second first: the aggregates and the first value merge in any order.
    assert post(db_server, run_id, batch(records[9:]))[0] == 200
    assert post(db_server, run_id, batch(records[:9]))[0] == 200
    summary = _run(db_server, run_id)["summary"]
    assert summary["val/loss"] == 0.2 and summary["val/exact"] == 9
    assert summary["acc"] == 0.7 and summary["loss"] == 1.5  # best = min, NaN left out
    assert "lr" not in summary and summary["x"] == 7 and summary["m"] == 3.0
    assert (summary["multi"], summary["multi.max"], summary["multi.last"]) == (1, 5, 3)
    assert summary["nan_min"] == 1.0 and summary["epoch"] == 2  # no definition: the last
    metrics = _run(db_server, run_id)["metrics"]
    assert [m["name"] for m in metrics][:2] == ["val/*", "acc"]
    assert metrics[0] == {
        "name": "val/*",
        "step_metric": "epoch",
        "summary": ["min"],
        "goal": None,
        "hidden": False,
    }
    # A redefinition replaces the old one, and the summaries follow at once.
    assert post(db_server, run_id, batch([_metric(13, "val/*", summary=["last"])]))[0] == 200
    assert _run(db_server, run_id)["summary"]["val/loss"] == 0.4


def _nan(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return {"_type": "float", "value": "NaN"}
    return v


def test_runs_table_sorts_by_the_chosen_summary(db_server: Any) -> None:
    project = new_id("sort")
    ids = []
    # min losses 0.1, 0.3, 0.2 while the last values are 0.9, 0.4, 0.5
    for losses in ([0.9, 0.1, 0.9], [0.5, 0.3, 0.4], [0.2, 0.6, 0.5]):
        run_id = new_id("s")
        ids.append(run_id)
        assert put_run(db_server, run_id, project=project)[0] == 201
        recs = [_metric(1, "loss", summary=["min"])]
        recs += [history(2 + i, i, {"loss": v}) for i, v in enumerate(losses)]
        assert post(db_server, run_id, batch(recs))[0] == 200
    owner = db_server.user
    listed = get(db_server, f"/api/v1/projects/{owner}/{project}/runs?order=summary:loss")
    assert [r["id"] for r in listed["runs"]] == [ids[0], ids[2], ids[1]]
    assert [r["summary"]["loss"] for r in listed["runs"]] == [0.1, 0.2, 0.3]


def test_run_fields_in_a_config_record(db_server: Any) -> None:
    run_id = new_id("rf")
    assert put_run(db_server, run_id, project="rf", job_type="train", group="g")[0] == 201
    assert _run(db_server, run_id)["job_type"] == "train"
    rec = {
        "seq": 1,
        "type": "config",
        "update": {},
        "run": {"name": "new", "notes": "n", "tags": ["a", "b", "a"], "group": None,
                "job_type": "eval", "future_field": 1},
    }  # fmt: skip
    assert post(db_server, run_id, batch([rec]))[0] == 200
    info = _run(db_server, run_id)
    assert (info["name"], info["notes"], info["tags"], info["group"], info["job_type"]) == (
        "new",
        "n",
        ["a", "b"],
        None,
        "eval",
    )
    assert info["config"] == {}


def test_alerts_are_stored_and_listed(db_server: Any) -> None:
    run_id = new_id("al")
    assert put_run(db_server, run_id, project="al")[0] == 201
    recs = [
        {"seq": 1, "type": "alert", "title": "nan loss", "text": "at step 4", "level": "ERROR",
         "time": 1.7e9},
        history(2, 0, {"loss": 1.0}),
        {"seq": 3, "type": "alert", "title": "slow", "text": "", "level": "INFO", "time": 1.7e9 + 1},
    ]  # fmt: skip
    assert post(db_server, run_id, batch(recs))[0] == 200
    assert post(db_server, run_id, batch(recs))[0] == 200  # a replay adds nothing
    alerts = get(db_server, f"/api/v1/runs/{run_id}/alerts")["alerts"]
    assert [(a["seq"], a["title"], a["level"], a["text"]) for a in alerts] == [
        (1, "nan loss", "ERROR", "at step 4"),
        (3, "slow", "INFO", ""),
    ]


def test_gallery_values(db_server: Any) -> None:
    run_id = new_id("ga")
    assert put_run(db_server, run_id, project="ga")[0] == 201
    image = {"_type": "image", "path": f"{SHA}.png", "sha256": SHA, "size": 10, "width": 2,
             "height": 2, "channels": 1, "caption": "c"}  # fmt: skip
    gallery = {"_type": "gallery", "images": [image, {**image, "caption": None}]}
    recs = [history(1 + i, i, {"g": gallery, "loss": 1.0}) for i in range(3)]
    assert post(db_server, run_id, batch(recs))[0] == 200
    keys = {k["key"]: k["kind"] for k in get(db_server, f"/api/v1/runs/{run_id}/keys")["keys"]}
    assert keys == {"g": "gallery", "loss": "number"}
    series = get(db_server, f"/api/v1/runs/{run_id}/histograms?key=g")
    assert series["kind"] == "gallery" and series["step"] == [0, 1, 2]
    assert series["values"][0] == gallery


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"type": "metric", "name": "a#b", "summary": []}, "name must be a metric key"),
        ({"type": "metric", "name": "a", "summary": ["median"]}, "summary must be a list"),
        ({"type": "metric", "name": "a", "summary": ["best"]}, "needs a goal"),
        ({"type": "metric", "name": "a", "step_metric": "e*"}, "step_metric must be one"),
        ({"type": "alert", "title": "", "text": "", "level": "INFO", "time": 1}, "title must be"),
        ({"type": "alert", "title": "t", "text": "", "level": "DEBUG", "time": 1}, "level must be"),
        ({"type": "config", "update": {}, "run": {"name": ""}}, "name must be a non-empty"),
        ({"type": "config", "update": {}, "run": {"tags": "a"}}, "tags must be a list"),
        (
            {"type": "history", "step": 0, "time": 1.0,
             "values": {"g": {"_type": "gallery", "images": []}}},
            "images must be a list of 1 to",
        ),
        (
            {"type": "history", "step": 0, "time": 1.0,
             "values": {"g": {"_type": "gallery", "images": [{"_type": "tensor"}]}}},
            "must be an image value",
        ),
    ],
)  # fmt: skip
def test_bad_records_are_refused_and_write_nothing(
    db_server: Any, record: dict[str, Any], message: str
) -> None:
    run_id = new_id("bad")
    assert put_run(db_server, run_id, project="bad")[0] == 201
    status, body = post(db_server, run_id, batch([{"seq": 1, **record}]))
    assert status == 400 and body["error"]["code"] == "bad_batch"
    assert message in body["error"]["message"]
    assert _run(db_server, run_id)["acked_seq"] == 0
