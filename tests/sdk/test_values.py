"""What log() accepts: scalars, nested mappings, numpy and torch scalars, rich values, bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from gradexp.protocol.captured import Captured
from gradexp.protocol.names import key_problem
from gradexp.protocol.values import encode_values
from gradexp.sdk.values.normalize import normalize


def _norm(data: dict[Any, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    bad: list[tuple[str, str]] = []
    return normalize(data, set(), bad), bad


def test_nested_mappings_are_flattened() -> None:
    out, bad = _norm({"train": {"loss": 1.0, "acc": {"top1": 0.5}}, "lr": 0.1})
    assert out == {"train/loss": 1.0, "train/acc/top1": 0.5, "lr": 0.1}
    assert bad == []


def test_numpy_scalars_and_0d_arrays_become_python_scalars() -> None:
    out, bad = _norm(
        {
            "f32": np.float32(1.5),
            "f64": np.float64(2.5),
            "i64": np.int64(7),
            "b": np.bool_(True),
            "arr0": np.array(3.25),
            "nan": np.float32("nan"),
        }
    )
    assert bad == []
    assert out["f32"] == 1.5 and type(out["f32"]) is float
    assert out["f64"] == 2.5 and type(out["f64"]) is float
    assert out["i64"] == 7 and type(out["i64"]) is int
    assert out["b"] is True
    assert out["arr0"] == 3.25 and type(out["arr0"]) is float
    assert math.isnan(out["nan"])


@pytest.mark.torch
def test_torch_scalars_are_duck_typed() -> None:
    from tests.services import require_torch

    torch = require_torch()
    out, bad = _norm({"t": torch.tensor(0.5), "g": torch.tensor(2.0, requires_grad=True) * 2})
    assert bad == []
    assert out == {"t": 0.5, "g": 4.0}


def test_bad_values_and_keys_are_reported_not_raised() -> None:
    out, bad = _norm({"ok": 1, "obj": object(), "": 2, "a#b": 3, 5: 4, "x" * 300: 5, "c\n": 6})
    assert out == {"ok": 1}
    reasons = dict(bad)
    assert "not supported" in reasons["obj"]
    assert "empty" in reasons[""]
    assert "reserved" in reasons["a#b"]
    assert "strings" in reasons["5"]
    assert "control" in reasons["c\n"]
    assert len(bad) == 6


def test_key_problem() -> None:
    assert key_problem("loss/train") is None
    assert key_problem("a b") is None  # spaces are fine
    assert key_problem("x" * 257) is not None


class _Doubled:
    """A minimal rich value in the Captured protocol (what gradexp.sdk.values provides)."""

    nbytes = 8

    def __init__(self, x: float) -> None:
        self.x = x

    def encode(self, sink: Any) -> Any:
        return {"_type": "histogram", "bins": [0, 1], "counts": [self.x * 2]}


class _Loggable:
    def _gradexp_capture(self) -> _Doubled:
        return _Doubled(21)


def test_gradexp_capture_hook_and_stream_side_encoding() -> None:
    out, bad = _norm({"h": _Loggable(), "nan": math.nan, "inf": -math.inf, "s": "text"})
    assert bad == []
    assert isinstance(out["h"], Captured)
    encoded = encode_values(out, sink=None, bad=bad)  # type: ignore[arg-type]
    assert encoded == {
        "h": {"_type": "histogram", "bins": [0, 1], "counts": [42]},
        "nan": {"_type": "float", "value": "NaN"},
        "inf": {"_type": "float", "value": "-Infinity"},
        "s": "text",
    }


def test_arrays_become_histograms() -> None:
    out, bad = _norm({"arr": np.arange(10, dtype=np.float32)})
    assert bad == []
    assert isinstance(out["arr"], Captured)
    encoded = encode_values(out, sink=None, bad=bad)  # type: ignore[arg-type]
    assert encoded["arr"]["_type"] == "histogram" and encoded["arr"]["count"] == 10
    assert bad == []


def test_capture_failures_are_bad_values() -> None:
    class Broken:
        def _gradexp_capture(self) -> Any:
            raise TypeError("complex tensors are not supported")

    out, bad = _norm({"x": Broken(), "y": 1})
    assert out == {"y": 1}
    assert bad == [("x", "complex tensors are not supported")]


@pytest.mark.torch
def test_device_scalars_are_read_on_the_stream_side() -> None:
    """The path a 0-d CUDA tensor takes (exercised here with a CPU tensor)."""
    from tests.services import require_torch

    torch = require_torch()
    from gradexp.sdk.values.normalize import _DeviceScalar

    t = torch.tensor(1.5)
    captured = _DeviceScalar(t)
    t.add_(1.0)  # the caller mutates it right after log(): the capture is a copy
    assert captured.encode(sink=None) == 1.5  # type: ignore[arg-type]
    assert _DeviceScalar(torch.tensor(float("nan"))).encode(sink=None) == {  # type: ignore[arg-type]
        "_type": "float",
        "value": "NaN",
    }
