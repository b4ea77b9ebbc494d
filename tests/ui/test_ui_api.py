"""The read endpoints the UI adds (tensor slices, .npy download, project columns), against a
real server with tensors logged by the real SDK."""

from __future__ import annotations

import gzip
import io
import json
import urllib.request
from typing import Any

import numpy as np
import pytest


def get(server: Any, path: str) -> tuple[int, Any]:
    return server.request("GET", path)


@pytest.fixture(scope="module")
def tensors(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run with a compressed 3-D tensor, an uncompressed one with NaN, and a big one."""
    import gradexp

    rng = np.random.default_rng(0)
    cube = rng.standard_normal((3, 5, 7)).astype(np.float32)
    with_nan = np.arange(12, dtype=np.float64).reshape(3, 4)
    with_nan[1, 2] = np.nan
    with_nan[2, 3] = np.inf
    big = np.arange(600 * 700, dtype=np.int32).reshape(600, 700)
    run = gradexp.init(
        project="ui-api",
        name="tensors",
        config={"model": {"width": 8, "depth": 2}, "lr": 0.1},
        tags=["t1", "t2"],
        base_url=server.url,
        api_key=server.api_key,
        dir=str(tmp_path_factory.mktemp("run")),
        settings={"quiet": True},
    )
    run.log(
        {
            "cube": gradexp.Tensor(cube),
            "nan": gradexp.Tensor(with_nan, compress=False),
            "big": gradexp.Tensor(big),
            "loss": 0.5,
        },
        step=0,
    )
    run.summary["best_loss"] = 0.25  # set explicitly, never logged
    run.finish()
    paths = {}
    for key in ("cube", "nan", "big"):
        paths[key] = get(server, f"/api/v1/runs/{run.id}/histograms?key={key}")[1]["values"][0][
            "path"
        ]
    return {"run": run.id, "paths": paths, "cube": cube, "nan": with_nan, "big": big}


def test_default_slice_is_the_last_two_axes(server: Any, tensors: dict[str, Any]) -> None:
    status, body = get(
        server, f"/api/v1/runs/{tensors['run']}/tensor?path={tensors['paths']['cube']}"
    )
    assert status == 200
    assert body["shape"] == [3, 5, 7] and body["dtype"] == "float32"
    assert body["index"] == [0, ":", ":"] and (body["rows"], body["cols"]) == (5, 7)
    np.testing.assert_allclose(
        np.array(body["values"]).reshape(5, 7), tensors["cube"][0], rtol=1e-6
    )
    assert body["min"] == pytest.approx(float(tensors["cube"][0].min()))


def test_slice_by_index_and_non_finite_values(server: Any, tensors: dict[str, Any]) -> None:
    run, paths = tensors["run"], tensors["paths"]
    status, body = get(server, f"/api/v1/runs/{run}/tensor?path={paths['cube']}&index=:,2,:")
    assert status == 200 and (body["rows"], body["cols"]) == (3, 7)
    np.testing.assert_allclose(
        np.array(body["values"]).reshape(3, 7), tensors["cube"][:, 2, :], rtol=1e-6
    )
    status, body = get(server, f"/api/v1/runs/{run}/tensor?path={paths['nan']}")
    assert status == 200
    values = body["values"]
    assert values[1 * 4 + 2] == {"_type": "float", "value": "NaN"}
    assert values[2 * 4 + 3] == {"_type": "float", "value": "Infinity"}
    assert body["max"] == 10.0  # finite values only


def test_large_slices_are_strided(server: Any, tensors: dict[str, Any]) -> None:
    status, body = get(
        server, f"/api/v1/runs/{tensors['run']}/tensor?path={tensors['paths']['big']}&max=100"
    )
    assert status == 200
    assert body["stride"] == [6, 7] and (body["rows"], body["cols"]) == (100, 100)
    np.testing.assert_array_equal(
        np.array(body["values"]).reshape(100, 100), tensors["big"][::6, ::7]
    )


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("index=0,0", 400, "bad_request"),  # wrong number of axes
        ("index=:,:,:", 400, "bad_request"),  # three kept axes
        ("index=9,:,:", 400, "bad_request"),  # out of range
        ("index=a,:,:", 400, "bad_request"),
        ("max=lots", 400, "bad_request"),
    ],
)
def test_bad_slices_are_refused_clearly(
    server: Any, tensors: dict[str, Any], query: str, status: int, code: str
) -> None:
    got, body = get(
        server, f"/api/v1/runs/{tensors['run']}/tensor?path={tensors['paths']['cube']}&{query}"
    )
    assert got == status and body["error"]["code"] == code
    assert body["error"]["message"]


def test_unknown_tensor_file_or_run_is_404(server: Any, tensors: dict[str, Any]) -> None:
    status, body = get(server, f"/api/v1/runs/{tensors['run']}/tensor?path=nope.npy")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = get(server, f"/api/v1/runs/{tensors['run']}/tensor")
    assert status == 400
    status, body = get(server, "/api/v1/runs/nosuchrun/tensor?path=x.npy")
    assert status == 404 and body["error"]["code"] == "run_not_found"
    # Another user cannot read it either.
    _, other_key = server.new_user()
    status, body = server.request(
        "GET",
        f"/api/v1/runs/{tensors['run']}/tensor?path={tensors['paths']['cube']}",
        key=other_key,
    )
    assert status == 404


def test_npy_download_is_the_plain_array(server: Any, tensors: dict[str, Any]) -> None:
    for key in ("cube", "nan"):
        req = urllib.request.Request(
            f"{server.url}/api/v1/runs/{tensors['run']}/tensor.npy?path={tensors['paths'][key]}&name=my%20tensor",
            headers={"Authorization": f"Bearer {server.api_key}"},
        )
        with urllib.request.urlopen(req) as resp:
            assert resp.headers["Content-Disposition"] == 'attachment; filename="my_tensor.npy"'
            data = resp.read()
        assert data[:2] != b"\x1f\x8b"  # never the gzip'ed blob
        np.testing.assert_array_equal(np.load(io.BytesIO(data)), tensors[key])
    # The stored blob of the compressed one really is gzip (so the endpoint did gunzip it).
    status, raw = get(server, f"/api/v1/runs/{tensors['run']}/files/{tensors['paths']['cube']}")
    assert status == 200 and gzip.decompress(raw)[:6] == b"\x93NUMPY"


def test_project_columns(server: Any, tensors: dict[str, Any]) -> None:
    status, body = get(server, f"/api/v1/projects/{server.user}/ui-api/columns")
    assert status == 200
    assert body["tags"] == ["t1", "t2"]
    assert body["config_keys"] == ["lr", "model.depth", "model.width"]
    assert "loss" in body["summary_keys"]
    assert "best_loss" in body["summary_keys"]  # explicit summary values are columns too
    assert not any("#" in k for k in body["summary_keys"])  # histogram statistics excluded
    assert "cube" not in body["summary_keys"]  # tensors are not columns
    status, body = get(server, f"/api/v1/projects/{server.user}/nope/columns")
    assert status == 404 and json.dumps(body)
