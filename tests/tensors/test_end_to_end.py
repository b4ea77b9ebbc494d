"""Round trips through a real ``gradexp server``: what a user logs is what the API returns."""

from __future__ import annotations

import gzip
import io
import math
from typing import Any

import numpy as np
import pytest
import torch

import gradexp
from gradexp.protocol.values import decode_value

from .conftest import server_rows
from .pngread import read_png

pytestmark = pytest.mark.torch  # these tests drive torch tensors or models


def _finish_and_read(server: Any, run: Any) -> list[dict[str, Any]]:
    run_id = run.id
    gradexp.finish()
    return server_rows(server, run_id)


def _file(server: Any, run_id: str, path: str) -> bytes:
    status, body = server.request("GET", f"/api/v1/runs/{run_id}/files/{path}")
    assert status == 200, body
    return body


def test_arrays_become_histograms_matching_numpy(online):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal(10_000).astype(np.float32)
    weights[:3] = [np.nan, np.inf, -np.inf]
    weights[3:8] = 0.0
    run = gradexp.init(project="tensors-e2e")
    gradexp.log({"w": weights, "t": torch.from_numpy(weights.copy()), "loss": 0.5})
    rows = _finish_and_read(online, run)
    assert len(rows) == 1
    for key in ("w", "t"):
        h = decode_value(rows[0][key])
        assert h["_type"] == "histogram"
        assert len(h["counts"]) == 64
        expected, _ = np.histogram(weights[np.isfinite(weights)], bins=np.array(h["bins"]))
        assert h["counts"] == expected.tolist()
        finite = weights[np.isfinite(weights)].astype(np.float64)
        assert (h["nan"], h["inf"], h["ninf"], h["zeros"], h["count"]) == (1, 1, 1, 5, 10_000)
        assert h["min"] == finite.min() and h["max"] == finite.max()
        # float32 data: the mean is exact to float32 precision of the spread (the std)
        assert h["mean"] == pytest.approx(finite.mean(), abs=1e-7 * finite.std())
        assert h["std"] == pytest.approx(finite.std(), rel=1e-6)
        assert h["norm"] == pytest.approx(np.linalg.norm(finite), rel=1e-6)
    assert rows[0]["loss"] == 0.5


def test_statistics_chart_as_scalar_series(online):
    run = gradexp.init(project="tensors-e2e")
    for step in range(5):
        gradexp.log({"g": np.full(100, float(step + 1), dtype=np.float32)})
    run_id = run.id
    gradexp.finish()
    status, body = online.request("GET", f"/api/v1/runs/{run_id}/keys")
    assert status == 200
    kinds = {k["key"]: k["kind"] for k in body["keys"]}
    assert kinds["g"] == "histogram"
    assert kinds["g#norm"] == "number" and kinds["g#nan"] == "number"
    status, body = online.request("GET", f"/api/v1/runs/{run_id}/history?keys=g%23mean")
    assert status == 200
    assert body["series"]["g#mean"]["value"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    status, body = online.request("GET", f"/api/v1/runs/{run_id}/histograms?key=g&samples=10")
    assert status == 200
    assert body["step"] == [0, 1, 2, 3, 4]
    assert [sum(c) for c in body["counts"]] == [100] * 5


def test_mutating_an_array_after_log_does_not_change_the_record(online):
    run = gradexp.init(project="tensors-e2e")
    a = np.arange(1000, dtype=np.float64)
    t = torch.arange(1000, dtype=torch.float32)
    gradexp.log({"a": a, "t": t, "h": gradexp.Histogram(a, bins=10)})
    a[:] = -1.0  # the caller reuses its buffers at once
    t.zero_()
    rows = _finish_and_read(online, run)
    for key in ("a", "t", "h"):
        h = decode_value(rows[0][key])
        assert (h["min"], h["max"], h["count"]) == (0.0, 999.0, 1000), key
        assert h["mean"] == pytest.approx(499.5)


DTYPES = [
    np.bool_,
    np.int8,
    np.uint8,
    np.int16,
    np.int32,
    np.int64,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_numpy_dtype_round_trips(online, dtype):
    values = (np.arange(-50, 150) % 7).astype(dtype)
    run = gradexp.init(project="tensors-e2e")
    gradexp.log({"x": values})
    rows = _finish_and_read(online, run)
    h = decode_value(rows[0]["x"])
    expected, _ = np.histogram(values.astype(np.float64), bins=np.array(h["bins"]))
    assert h["counts"] == expected.tolist()
    assert h["count"] == 200
    assert h["zeros"] == int(np.count_nonzero(values == 0))
    assert h["mean"] == pytest.approx(values.astype(np.float64).mean())


TORCH_DTYPES = [
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
]


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
def test_every_torch_dtype_round_trips(online, dtype):
    base = torch.arange(-50, 150) % 7
    values = base.to(dtype)
    run = gradexp.init(project="tensors-e2e")
    gradexp.log({"x": values})
    rows = _finish_and_read(online, run)
    h = decode_value(rows[0]["x"])
    reference = values.to(torch.float64).numpy()
    expected, _ = np.histogram(reference, bins=np.array(h["bins"]))
    assert h["counts"] == expected.tolist()
    assert (h["count"], h["zeros"]) == (200, int((reference == 0).sum()))


def test_odd_tensors_strided_grad_sparse(online):
    torch.manual_seed(0)
    big = torch.randn(64, 64, requires_grad=True)
    strided = big.detach()[::2, 1::3]  # non-contiguous view
    sparse = torch.sparse_coo_tensor(
        [[0, 1, 1], [2, 0, 2]], [3.0, 4.0, -5.0], (10, 10), check_invariants=True
    )
    run = gradexp.init(project="tensors-e2e")
    gradexp.log({"grad": big * 2, "view": strided, "sparse": sparse, "empty": np.zeros((0, 3))})
    rows = _finish_and_read(online, run)
    row = {k: decode_value(v) for k, v in rows[0].items()}
    assert row["grad"]["count"] == 64 * 64
    assert row["grad"]["max"] == pytest.approx(float((big.detach() * 2).max()))
    assert row["view"]["count"] == strided.numel()
    # float32 data: the statistics are exact to ~1e-7 of the spread (docs/tensors.md), and a
    # mean near zero has no relative precision to speak of.
    spread = float(strided.max() - strided.min())
    assert row["view"]["mean"] == pytest.approx(float(strided.double().mean()), abs=1e-6 * spread)
    sp = row["sparse"]
    assert (sp["count"], sp["zeros"], sp["min"], sp["max"]) == (100, 97, -5.0, 4.0)
    assert sum(sp["counts"]) == 100
    assert row["empty"]["count"] == 0 and row["empty"]["counts"] == []
    assert row["empty"]["bins"] == [0.0]  # n + 1 edges for n = 0 counts


def test_unsupported_values_are_dropped_with_one_warning(online):
    run = gradexp.init(project="tensors-e2e")
    with pytest.warns(UserWarning, match="complex") as record:
        for _ in range(3):
            gradexp.log({"z": np.array([1j, 2j]), "ok": 1.0})
    assert sum("complex" in str(w.message) for w in record) == 1
    rows = _finish_and_read(online, run)
    assert [sorted(k for k in r if not k.startswith("_")) for r in rows] == [["ok"]] * 3


@pytest.mark.parametrize("compress", [True, False])
def test_tensor_bytes_are_equal_after_download(online, compress):
    rng = np.random.default_rng(1)
    value = rng.standard_normal((17, 5, 3)).astype(np.float32)
    run = gradexp.init(project="tensors-e2e")
    gradexp.log({"attn": gradexp.Tensor(value, compress=compress)})
    run_id = run.id
    rows = _finish_and_read(online, run)
    ref = decode_value(rows[0]["attn"])
    assert ref["_type"] == "tensor"
    assert (ref["shape"], ref["dtype"], ref["compressed"]) == ([17, 5, 3], "float32", compress)
    assert ref["path"].endswith(".npy.gz" if compress else ".npy")
    data = _file(online, run_id, ref["path"])
    assert len(data) == ref["size"]
    raw = gzip.decompress(data) if compress else data
    loaded = np.load(io.BytesIO(raw), allow_pickle=False)
    assert loaded.dtype == np.float32 and loaded.shape == value.shape
    assert loaded.tobytes() == value.tobytes()
    assert ref["mean"] == pytest.approx(float(value.astype(np.float64).mean()))


def test_bfloat16_tensor_is_kept_exactly(online):
    value = torch.randn(4, 6).to(torch.bfloat16)
    run = gradexp.init(project="tensors-e2e")
    gradexp.log({"w": gradexp.Tensor(value)})
    run_id = run.id
    rows = _finish_and_read(online, run)
    ref = decode_value(rows[0]["w"])
    loaded = np.load(io.BytesIO(gzip.decompress(_file(online, run_id, ref["path"]))))
    assert loaded.dtype == np.float32
    assert np.array_equal(loaded, value.float().numpy())


def test_image_png_decodes_to_the_same_pixels(online):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (13, 21, 3), dtype=np.uint8)
    gray = rng.random((9, 7))
    chw = torch.rand(4, 6, 5)
    run = gradexp.init(project="tensors-e2e")
    gradexp.log(
        {
            "rgb": gradexp.Image(rgb, caption="a noisy one"),
            "gray": gradexp.Image(gray),
            "rgba": gradexp.Image(chw),
        }
    )
    run_id = run.id
    rows = _finish_and_read(online, run)
    row = rows[0]
    img = row["rgb"]
    assert (img["_type"], img["width"], img["height"], img["channels"]) == ("image", 21, 13, 3)
    assert img["caption"] == "a noisy one"
    assert np.array_equal(read_png(_file(online, run_id, img["path"])), rgb)
    pixels = read_png(_file(online, run_id, row["gray"]["path"]))
    assert np.array_equal(pixels[:, :, 0], np.rint(gray * 255).astype(np.uint8))
    pixels = read_png(_file(online, run_id, row["rgba"]["path"]))
    expected = np.rint(chw.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert pixels.shape == (6, 5, 4) and np.array_equal(pixels, expected)


def test_watch_records_through_the_server(online):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = gradexp.init(project="tensors-e2e")
    gradexp.watch(model, log="all", log_freq=2)
    for _ in range(4):
        opt.zero_grad()
        loss = model(torch.randn(4, 8)).pow(2).mean()
        loss.backward()
        opt.step()
        gradexp.log({"loss": loss.item()})
    rows = _finish_and_read(online, run)
    with_grads = [r["_step"] for r in rows if "gradients/0.weight" in r]
    assert with_grads == [0, 2]
    row = rows[0]
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert row[f"gradients/{name}"]["_type"] == "histogram"
        assert row[f"parameters/{name}"]["_type"] == "histogram"
        assert isinstance(row[f"grad_norm/{name}"], float)
    norms = [row[f"grad_norm/{n}"] for n in ("0.weight", "0.bias", "2.weight", "2.bias")]
    assert row["grad_norm/global"] == pytest.approx(math.sqrt(sum(n * n for n in norms)))


def test_parquet_export_has_histogram_and_statistics_columns(online):
    import pyarrow.parquet as pq

    run = gradexp.init(project="tensors-e2e")
    for step in range(3):
        values = np.arange(10, dtype=np.float32) + step
        gradexp.log({"w": values, "t": gradexp.Tensor(values), "loss": float(step)})
    run_id = run.id
    gradexp.finish()
    status, body = online.request("GET", f"/api/v1/runs/{run_id}/history.parquet")
    assert status == 200
    table = pq.read_table(io.BytesIO(body)).to_pydict()
    assert table["step"] == [0, 1, 2]
    assert [sum(c) for c in table["w.counts"]] == [10, 10, 10]
    assert [b[0] for b in table["w.bins"]] == [0.0, 1.0, 2.0]
    assert table["w#mean"] == [4.5, 5.5, 6.5]
    assert table["t#max"] == [9.0, 10.0, 11.0]
    assert all(p.endswith(".npy.gz") for p in table["t.path"])
