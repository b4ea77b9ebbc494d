"""Bare arrays and tensors as values: ``log({"w": array})`` without a value type.

:func:`capture` is what ``log()``'s slow path (``gradexp.sdk.values.normalize``) hands
every non-scalar value it does not know: numpy arrays, torch tensors and other
array-likes become histograms (or, with one element, their number), PIL images become
images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradexp.sdk.values.base import (
    HostArray,
    Scalar,
    as_numpy,
    check_numeric_dtype,
    check_torch_dtype,
    torch_of,
)
from gradexp.sdk.values.binning import DEFAULT_BINS
from gradexp.sdk.values.histogram import HostHistogram, capture_histogram
from gradexp.sdk.values.image import Image

__all__ = ["capture"]


def _is_pil_image(value: Any) -> bool:
    return type(value).__module__.startswith("PIL") and hasattr(value, "tobytes")


def capture(value: Any) -> Any:
    """A ``Captured`` for a bare non-scalar value, or None if it is not ours to handle.

    numpy arrays, torch tensors and other array-likes (anything with ``__array__`` and a
    ``shape``) with more than one element become histograms with statistics; one element
    becomes its number; an empty one an empty histogram. A PIL image becomes an ``Image``.
    A list or tuple of images becomes a gallery, of numbers a histogram
    (``gradexp.sdk.values.sequences``). Raises TypeError for arrays of unsupported dtypes
    (complex, object, strings, ...).
    """
    if isinstance(value, (list, tuple)):
        from gradexp.sdk.values.sequences import capture_sequence

        return capture_sequence(value)
    torch = torch_of(value)
    if torch is not None:
        if value.layout == torch.strided and value.numel() == 1:
            t = value.detach()
            check_torch_dtype(torch, t)
            if t.device.type == "cpu":
                return Scalar(t.reshape(()).item())
            try:
                return Scalar(host=HostArray.of_torch(torch, t.reshape(())))
            except RuntimeError as exc:
                raise ValueError(f"could not read a {t.device} tensor: {exc}") from None
        return capture_histogram(value)
    if isinstance(value, np.ndarray) or (
        hasattr(value, "__array__") and hasattr(value, "shape") and hasattr(value, "dtype")
    ):
        array = as_numpy(value)
        if array.size == 1 and not isinstance(array, np.ma.MaskedArray):
            check_numeric_dtype(array.dtype)
            return Scalar(array.reshape(-1)[0].item())
        return HostHistogram(HostArray.of_numpy(array), DEFAULT_BINS, None)
    if _is_pil_image(value):
        return Image(value)._gradexp_capture()
    return None
