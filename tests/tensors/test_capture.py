"""Capturing values on the caller's thread and finishing them on another, without a run."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from gradexp.protocol.values import decode_value
from gradexp.protocol.wire import HISTOGRAM_STATS
from gradexp.sdk.values import device
from gradexp.sdk.values.base import BufferPool
from gradexp.sdk.values.capture import capture
from gradexp.sdk.values.histogram import Histogram, capture_histogram
from gradexp.sdk.values.image import Image, ImageValue
from gradexp.sdk.values.tensor import Tensor

pytestmark = pytest.mark.torch  # these tests drive torch tensors or models


def _encode_elsewhere(captured, sink=None):
    """encode() on another thread, as the stream thread does it."""
    out: list = []
    worker = threading.Thread(target=lambda: out.append(captured.encode(sink)))
    worker.start()
    worker.join()
    return decode_value(out[0])


def _assert_numpy_counts(h: dict, values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    expected, _ = np.histogram(finite, bins=np.array(h["bins"]))
    assert h["counts"] == expected.tolist()


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
@pytest.mark.parametrize(
    "dtype",
    [
        torch.bool,
        torch.uint8,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
    ],
    ids=str,
)
def test_torch_dtypes_on_both_paths_match_numpy(dtype, on_device):
    torch.manual_seed(0)
    t = (torch.randn(40, 30) * 20).to(dtype)
    h = _encode_elsewhere(capture_histogram(t, on_device=on_device))
    ref = t.to(torch.float64).numpy()
    _assert_numpy_counts(h, ref)
    assert (h["count"], h["zeros"]) == (1200, int((ref == 0).sum()))
    assert (h["min"], h["max"]) == (ref.min(), ref.max())
    # float32 precision relative to the spread (the std), double for float64 data
    assert h["mean"] == pytest.approx(ref.mean(), abs=1e-7 * ref.std() + 1e-12)
    assert h["std"] == pytest.approx(ref.std(), rel=1e-6, abs=1e-9)
    assert h["norm"] == pytest.approx(np.linalg.norm(ref), rel=1e-6)


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_non_finite_values_on_both_paths(on_device):
    t = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 2.0, float("nan")])
    h = _encode_elsewhere(capture_histogram(t, bins=4, on_device=on_device))
    assert (h["count"], h["nan"], h["inf"], h["ninf"], h["zeros"]) == (8, 2, 1, 1, 2)
    assert sum(h["counts"]) == 4 and (h["min"], h["max"]) == (0.0, 2.0)
    _assert_numpy_counts(h, t.numpy())


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_degenerate_tensors_on_both_paths(on_device):
    h = _encode_elsewhere(capture_histogram(torch.full((5,), 3.0), bins=4, on_device=on_device))
    assert sum(h["counts"]) == 5 and h["bins"][0] <= 3.0 <= h["bins"][-1] and h["std"] == 0.0
    h = _encode_elsewhere(capture_histogram(torch.zeros(0, 4), on_device=on_device))
    assert (h["count"], h["counts"], h["bins"]) == (0, [], [0.0])
    h = _encode_elsewhere(capture_histogram(torch.full((3,), float("nan")), on_device=on_device))
    assert (h["count"], h["nan"], h["counts"]) == (3, 3, [])
    assert math.isnan(h["mean"])


def test_device_path_in_chunks_and_deterministic_mode(monkeypatch):
    monkeypatch.setattr(device, "DEVICE_CHUNK", 1000)
    torch.manual_seed(1)
    t = torch.randn(10_007)
    t[17] = float("nan")
    reference = decode_value(capture_histogram(t, on_device=True).encode(None))
    _assert_numpy_counts(reference, t.numpy())
    assert reference["nan"] == 1 and reference["count"] == 10_007
    torch.use_deterministic_algorithms(True)
    try:
        again = decode_value(capture_histogram(t, on_device=True).encode(None))
    finally:
        torch.use_deterministic_algorithms(False)
    assert again["counts"] == reference["counts"] and again["bins"] == reference["bins"]
    assert again["std"] == pytest.approx(reference["std"])


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_explicit_range(on_device):
    t = torch.arange(20, dtype=torch.float32)
    h = _encode_elsewhere(capture_histogram(t, bins=4, range=(0, 8), on_device=on_device))
    counts, _ = np.histogram(t.numpy(), bins=np.array(h["bins"]))
    assert h["counts"] == counts.tolist() == [2, 2, 2, 3]
    assert h["bins"] == pytest.approx([0, 2, 4, 6, 8])
    assert (h["min"], h["max"], h["count"]) == (0.0, 19.0, 20)


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_sparse_tensors_count_their_implicit_zeros(on_device):
    sparse = torch.sparse_coo_tensor(
        [[0, 1, 1, 1], [2, 0, 2, 2]], [3.0, 4.0, -5.0, 1.0], (10, 10), check_invariants=True
    )  # a duplicate index: the dense tensor holds its sum, -4
    dense = sparse.to_dense().numpy()
    for t in (sparse, sparse.to_sparse_csr()):
        h = _encode_elsewhere(capture_histogram(t, bins=8, on_device=on_device))
        assert (h["count"], h["zeros"], h["min"], h["max"]) == (100, 97, -4.0, 4.0)
        assert h["mean"] == pytest.approx(dense.mean())
        assert h["std"] == pytest.approx(dense.astype(np.float64).std())
        _assert_numpy_counts(h, dense.ravel())


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_strided_and_requires_grad_tensors(on_device):
    base = torch.randn(50, 40, requires_grad=True)
    view = (base * 3)[::3, 1::2]  # non-contiguous, part of a graph
    h = _encode_elsewhere(capture_histogram(view, on_device=on_device))
    ref = view.detach().double().numpy()
    assert h["count"] == view.numel()
    assert h["mean"] == pytest.approx(ref.mean())
    _assert_numpy_counts(h, ref)


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_mutation_after_capture_changes_nothing(on_device):
    t = torch.arange(100, dtype=torch.float32)
    captured = capture_histogram(t, on_device=on_device)
    t.fill_(-7.0)
    h = decode_value(captured.encode(None))
    assert (h["min"], h["max"], h["mean"]) == (0.0, 99.0, 49.5)
    a = np.arange(100, dtype=np.float32)
    captured = capture(a)
    a[:] = -7.0
    assert decode_value(captured.encode(None))["max"] == 99.0


def test_bare_values_dispatch():
    assert capture(np.array([[2.5]])).encode(None) == 2.5
    assert capture(torch.tensor([7])).encode(None) == 7
    assert capture(np.array([float("nan")])).encode(None) == {"_type": "float", "value": "NaN"}
    assert capture(np.arange(3)).encode(None)["_type"] == "histogram"
    assert capture(torch.ones(2, 2, dtype=torch.bfloat16)).encode(None)["mean"] == 1.0
    masked = np.ma.masked_array([1.0, 100.0, 3.0], mask=[False, True, False])
    assert capture(masked).encode(None)["max"] == 3.0  # masked entries are not values
    assert capture([1, 2, 3]).encode(None)["count"] == 3  # a list of numbers: its histogram
    assert capture("text") is None


@pytest.mark.parametrize(
    "value",
    [
        np.array([1j, 2j]),
        np.array([object(), object()]),
        np.array(["a", "b"]),
        torch.tensor([1j, 2j]),
        torch.empty(3, device="meta"),
    ],
    ids=["complex", "object", "str", "torch-complex", "meta"],
)
def test_unsupported_values_raise_a_clear_type_error(value):
    with pytest.raises(TypeError, match="cannot log"):
        capture(value)


def test_histogram_objects():
    h = Histogram(np.arange(10.0), bins=5)
    assert h.counts == [2, 2, 2, 2, 2]
    assert h.bins[0] == 0.0 and h.bins[-1] == 9.0
    assert set(h.stats) == set(HISTOGRAM_STATS) and h.stats["mean"] == 4.5
    counts, edges = np.histogram([1, 2, 2, 3], bins=3)
    pre = Histogram(np_histogram=(counts, edges))
    value = pre._gradexp_capture().encode(None)
    assert value["counts"] == [1, 2, 1] and value["count"] == 4
    assert "mean" not in value  # unknown from counts alone: left out, not guessed
    assert Histogram(torch.randn(100, 3), bins=512).counts.__len__() == 512


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": np.zeros(3), "bins": 513}, "bins"),
        ({"values": np.zeros(3), "bins": 0}, "bins"),
        ({"values": np.zeros(3), "range": (1, 1)}, "range"),
        ({"values": np.zeros(3), "np_histogram": ([1], [0, 1])}, "not both"),
        ({}, "needs values"),
        ({"np_histogram": ([1, 2], [0, 1])}, "len"),
        ({"np_histogram": ([1, -2], [0, 1, 2])}, ">= 0"),
        ({"np_histogram": ([1, 2], [0, 2, 1])}, "non-decreasing"),
        ({"values": "abc"}, "numpy array"),
        ({"values": np.array([1j])}, "complex"),
    ],
)
def test_bad_histogram_arguments_surface_at_log_time(kwargs, match):
    h = Histogram(**kwargs)  # never raises where it is made
    with pytest.raises((TypeError, ValueError), match=match):
        h._gradexp_capture()
    assert "invalid" in repr(h)


def test_tensor_value(sink):
    value = torch.arange(24, dtype=torch.int16).reshape(2, 3, 4)[:, ::2]  # strided
    first = Tensor(value)._gradexp_capture().encode(sink)
    second = Tensor(value.clone())._gradexp_capture().encode(sink)
    assert first["sha256"] == second["sha256"]  # same bytes, same blob (gzip mtime=0)
    assert (first["shape"], first["dtype"], first["compressed"]) == ([2, 2, 4], "int16", True)
    assert sink.files[0]["content_type"] == "application/gzip"
    plain = Tensor(np.eye(3), compress=False)._gradexp_capture().encode(sink)
    assert plain["path"].endswith(".npy") and plain["max"] == 1.0 and plain["zeros"] == 6
    sparse = Tensor(torch.eye(3).to_sparse())._gradexp_capture().encode(sink)
    assert sparse["shape"] == [3, 3] and sparse["count"] == 9
    with pytest.raises(TypeError, match="complex"):
        Tensor(np.array([1j]))._gradexp_capture()


def test_pil_images_are_captured_without_pillow(sink):
    class FakePILImage:  # what gradexp reads of a PIL image: mode, size, tobytes, convert
        __module__ = "PIL.Image"

        def __init__(self, mode, pixels):
            self.mode, self._pixels = mode, pixels
            self.size = (pixels.shape[1], pixels.shape[0])
            self.info = {}

        def tobytes(self):
            return self._pixels.tobytes()

        def getbands(self):
            return ("P",)

        def convert(self, mode):
            assert mode == "RGB"
            return FakePILImage("RGB", np.repeat(self._pixels[:, :, None], 3, axis=2))

    rgba = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    value = Image(FakePILImage("RGBA", rgba))._gradexp_capture().encode(sink)
    assert (value["width"], value["height"], value["channels"]) == (3, 2, 4)
    palette = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    value = Image(FakePILImage("P", palette))._gradexp_capture().encode(sink)
    assert value["channels"] == 3
    assert isinstance(capture(FakePILImage("L", palette)), ImageValue)  # a bare PIL image


def test_copies_reuse_pooled_buffers_without_mixing_values():
    a = np.arange(50_000, dtype=np.float32)  # 200 KB: pooled
    first = capture(a)
    buffer = first._host._buffer
    assert decode_value(first.encode(None))["max"] == 49_999.0
    assert first._host._buffer is None  # given back once reduced
    b = np.full(50_000, -3.0, np.float32)
    second = capture(b)
    assert second._host._buffer is buffer  # the same pages, recycled
    h = decode_value(second.encode(None))
    assert (h["min"], h["max"], h["mean"]) == (-3.0, -3.0, -3.0)
    t = torch.arange(50_000, dtype=torch.bfloat16)  # widened into a float32 pooled buffer
    third = capture_histogram(t)
    assert third._host._buffer is buffer
    assert decode_value(third.encode(None))["max"] == float(t.max())


def test_the_pool_is_bounded():
    pool = BufferPool(limit=1 << 20)
    buffers = [pool.take(1 << 18) for _ in range(6)]
    for buf in buffers:
        pool.give(buf)
    assert pool._idle == 1 << 20  # four kept, two dropped
    pool.give(np.empty(100, np.uint8))  # too small to be worth keeping
    assert pool._idle == 1 << 20
