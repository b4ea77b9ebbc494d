"""``wandb.Image``'s reading of pixels, for scripts that rely on it.

wandb guesses the range of float pixels (values in [-1, 1] are -1..1, values above 1 are
0..255, others 0..1), clips integers to 0..255, converts channels for ``mode=`` and
tiles a batch of images (a 4-D array or tensor) into one grid. gradexp's ``Image`` reads
floats as 0..1 and refuses integers outside 0..255, so this module turns what a wandb
script passes into pixels gradexp reads the same way. Files, PIL images and figures pass
through unchanged (PIL images converted for ``mode=``).
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import numpy as np

__all__ = ["as_pixels", "grid"]

_CHANNELS = (1, 3, 4)
_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
GRID_PAD = 2  # pixels between the images of a grid (torchvision's make_grid default)


def as_pixels(value: Any, mode: str | None, normalize: bool) -> Any:
    """What to give ``gradexp.Image`` for wandb's ``Image(value, mode=, normalize=)``."""
    if isinstance(value, (str, os.PathLike)) or type(value).__module__.startswith("matplotlib"):
        return value
    if type(value).__module__.startswith("PIL"):
        return value.convert(mode) if mode and getattr(value, "mode", mode) != mode else value
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        array = (
            value.detach().to("cpu").float().numpy()
            if value.dtype.is_floating_point
            else value.detach().to("cpu").numpy()
        )
        if array.ndim == 3 and array.shape[0] in _CHANNELS:  # torch lays images out CxHxW
            array = np.moveaxis(array, 0, -1)
        elif array.ndim == 4 and array.shape[1] in _CHANNELS:  # NCHW
            array = np.moveaxis(array, 1, -1)
    else:
        array = np.asarray(value)
        if array.ndim == 4 and array.shape[1] in _CHANNELS and array.shape[-1] not in _CHANNELS:
            array = np.moveaxis(array, 1, -1)  # NCHW
    if array.ndim == 4:
        array = grid(array)
    if array.dtype.kind == "f":
        array = _floats(array, normalize)
    elif array.dtype.kind in "iu" and array.size and (array.min() < 0 or array.max() > 255):
        array = np.clip(array, 0, 255).astype(np.uint8)
    if mode in _MODES:
        array = _channels(array, _MODES[mode])
    return array


def _floats(array: np.ndarray, normalize: bool) -> np.ndarray:
    """Float pixels as 0..1 (what gradexp reads), from wandb's guess of their range."""
    finite = array[np.isfinite(array)]
    if not normalize:
        return array / 255.0
    if finite.size and finite.min() < 0:
        return (array + 1.0) / 2.0
    if finite.size and finite.max() > 1:
        return array / 255.0
    return array


def _channels(array: np.ndarray, want: int) -> np.ndarray:
    """HxW or HxWxC pixels with ``want`` channels (gray <-> colour, alpha added or dropped)."""
    if array.ndim == 2:
        array = array[:, :, None]
    have = array.shape[2]
    if have == want:
        return array
    color = array[:, :, :3] if have >= 3 else np.repeat(array[:, :, :1], 3, axis=2)
    opaque = 1.0 if array.dtype.kind == "f" else 255
    if want == 1:
        gray = color.astype(np.float32).mean(axis=2, keepdims=True)
        return gray.astype(array.dtype)
    if want == 2:
        gray = color.astype(np.float32).mean(axis=2, keepdims=True).astype(array.dtype)
        return np.concatenate([gray, np.full_like(gray, opaque)], axis=2)
    if want == 3:
        return color
    alpha = array[:, :, 3:4] if have == 4 else np.full_like(color[:, :, :1], opaque)
    return np.concatenate([color, alpha], axis=2)


def grid(batch: np.ndarray) -> np.ndarray:
    """N HxWxC images tiled into one image: ceil(sqrt(N)) a row, ``GRID_PAD`` apart."""
    n, height, width = batch.shape[:3]
    channels = batch.shape[3]
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    out = np.zeros(
        (rows * (height + GRID_PAD) + GRID_PAD, cols * (width + GRID_PAD) + GRID_PAD, channels),
        dtype=batch.dtype,
    )
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = GRID_PAD + r * (height + GRID_PAD), GRID_PAD + c * (width + GRID_PAD)
        out[top : top + height, left : left + width] = batch[i]
    return out
