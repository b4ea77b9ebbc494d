"""``gradexp.Image``: pixels (numpy, torch, PIL), image files and figures, stored as PNG.

The caller's thread only copies: the pixels (an array, a tensor, a PIL image's bytes) or
the file's bytes (read when the Image is made, so a file rewritten next epoch cannot
change what this step recorded). The stream thread converts pixels to 8-bit (or keeps
16-bit) samples and encodes the PNG (``gradexp.sdk.values.png``, no Pillow needed), then stores it
in the run's files. PNG, JPEG and GIF files are kept as they are.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from gradexp.sdk.values.base import CapturingValue, HostArray, torch_of
from gradexp.sdk.values.png import encode_png, image_info

if TYPE_CHECKING:
    from gradexp.protocol.captured import BlobSink

__all__ = ["Image", "ImageValue"]

_CONTENT_TYPES = {
    "png": ("image/png", ".png"),
    "jpeg": ("image/jpeg", ".jpg"),
    "gif": ("image/gif", ".gif"),
}
_PIL_MODES = {"L": (1, np.uint8), "LA": (2, np.uint8), "RGB": (3, np.uint8), "RGBA": (4, np.uint8)}


class ImageValue:
    """An image taken from the caller, encoded to PNG (or kept as a file) on the stream thread."""

    __slots__ = ("_caption", "_channels_first", "_file", "_pixels", "_result", "nbytes")

    def __init__(
        self,
        caption: str | None,
        *,
        pixels: HostArray | None = None,
        channels_first: bool = False,
        file: bytes | None = None,
    ) -> None:
        self._caption = caption
        self._pixels = pixels
        self._channels_first = channels_first
        self._file = file
        self._result: dict[str, Any] | None = None
        self.nbytes = pixels.nbytes if pixels is not None else len(file or b"")

    def encode(self, sink: BlobSink | None = None) -> dict[str, Any]:
        if self._result is not None:
            return self._result
        if sink is None:
            raise ValueError("an Image needs a run to store its file in")
        if self._file is not None:
            data = self._file
            info = image_info(data)
            assert info is not None  # checked when the Image was made
            fmt, width, height, channels = info
        else:
            assert self._pixels is not None
            pixels = to_png_pixels(self._pixels.get(), channels_first=self._channels_first)
            data = encode_png(pixels)
            fmt, (height, width, channels) = "png", pixels.shape
            self._pixels.release()
        content_type, suffix = _CONTENT_TYPES[fmt]
        ref = sink.add_file(data, suffix=suffix, content_type=content_type)
        self._result = {
            "_type": "image",
            "path": ref["path"],
            "sha256": ref["sha256"],
            "size": ref["size"],
            "width": int(width),
            "height": int(height),
            "channels": int(channels),
            "caption": self._caption,
        }
        self._file = self._pixels = None
        return self._result


def check_pixel_shape(shape: tuple[int, ...], *, channels_first: bool) -> None:
    """Raise ValueError unless ``shape`` is HxW, HxWxC or (``channels_first``) CxHxW, C <= 4."""
    ok = len(shape) == 2 or (
        len(shape) == 3 and (shape[0] if channels_first else shape[2]) in (1, 2, 3, 4)
    )
    if not ok:
        raise ValueError(
            f"an image must be HxW, HxWx1/3/4 (or a CxHxW torch tensor), got shape {shape}"
        )
    height, width = (shape[1:] if channels_first else shape[:2]) if len(shape) == 3 else shape
    if height == 0 or width == 0:
        raise ValueError(f"an image needs at least one pixel, got shape {shape}")


def to_png_pixels(array: np.ndarray, *, channels_first: bool = False) -> np.ndarray:
    """``(H, W, C)`` uint8 samples (uint16 kept as is) from image-like pixels.

    uint8 as is; bool as 0/255; float scaled from [0, 1] (clipped, NaN as 0); other integers
    must already lie in 0..255.
    """
    if channels_first and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[:, :, None]
    kind = array.dtype.kind
    if array.dtype == np.uint8 or array.dtype == np.uint16:
        return array
    if kind == "b":
        return array.astype(np.uint8) * np.uint8(255)
    if kind == "f":
        scaled = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(scaled, 0.0, 1.0, out=scaled)
        np.multiply(scaled, 255.0, out=scaled)
        return np.rint(scaled).astype(np.uint8)
    if kind in "iu":
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"integer {array.dtype} pixels must lie in 0..255 (got {lo}..{hi}); "
                "pass uint8, or floats in [0, 1]"
            )
        return array.astype(np.uint8)
    raise TypeError(f"image pixels must be numbers, not {array.dtype}")


def _capture_pil(value: Any) -> tuple[HostArray, bool]:
    """Pixels of a PIL image (duck typed: ``mode``, ``size``, ``tobytes``, ``convert``)."""
    if value.mode not in _PIL_MODES and value.mode != "I;16":
        bands = value.getbands() if hasattr(value, "getbands") else ()
        has_alpha = "A" in bands or "transparency" in getattr(value, "info", {})
        value = value.convert("RGBA" if has_alpha else "RGB")
    width, height = value.size
    if value.mode == "I;16":  # 16-bit gray, little-endian samples
        array = np.frombuffer(value.tobytes(), dtype="<u2").reshape(height, width).astype(np.uint16)
    else:
        channels, dtype = _PIL_MODES[value.mode]
        array = np.frombuffer(value.tobytes(), dtype=dtype).reshape(height, width, channels).copy()
    return HostArray(array), False


def _read_image_file(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(
            f"cannot read image file {os.fspath(path)!r}: {exc.strerror or exc}"
        ) from None
    if image_info(data) is not None:
        return data
    # Other formats need a decoder: Pillow's, if it happens to be installed.
    try:
        from PIL import Image as PILImage  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ValueError(
            f"{os.fspath(path)!r} is not a PNG, JPEG or GIF file; install Pillow to log other "
            "formats, or pass the pixels as an array"
        ) from None
    with PILImage.open(io.BytesIO(data)) as img:
        pixels, _ = _capture_pil(img)
    return encode_png(to_png_pixels(pixels.get()))


class Image(CapturingValue[ImageValue]):
    """An image value: ``gradexp.log({"sample": gradexp.Image(x, caption="epoch 3")})``.

    ``value`` may be a numpy array (HxW, HxWx1/3/4; uint8, bool, or float in [0, 1]), a
    torch tensor (CxHxW as torch lays images out, or HxW / HxWxC), a PIL image (if Pillow is
    installed), a matplotlib figure, or the path of an image file (PNG, JPEG and GIF are
    kept as they are; other formats need Pillow). Arrays are stored as PNG, encoded without
    Pillow, off the training thread.

    Pixels are copied (a file read) when the Image is made. A bad value does not raise
    here: ``log()`` warns about it once and drops it.
    """

    __slots__ = ()

    def __init__(self, value: Any, *, caption: str | None = None) -> None:
        text = None if caption is None else str(caption)
        # A RuntimeError: a torch device error, a figure that fails to render.
        self._capture(lambda: _capture_image(value, text), failure="could not take the image")


def _capture_image(value: Any, caption: str | None) -> ImageValue:
    if isinstance(value, (str, os.PathLike)):
        return ImageValue(caption, file=_read_image_file(value))
    module = type(value).__module__
    if module.startswith("PIL"):
        pixels, channels_first = _capture_pil(value)
        return ImageValue(caption, pixels=pixels, channels_first=channels_first)
    if module.startswith("matplotlib") and hasattr(value, "savefig"):
        buf = io.BytesIO()
        value.savefig(buf, format="png")  # on the caller's thread: matplotlib is not thread-safe
        return ImageValue(caption, file=buf.getvalue())
    torch = torch_of(value)
    if torch is not None:
        shape = tuple(value.shape)
        channels_first = len(shape) == 3 and shape[0] in (1, 2, 3, 4)
        check_pixel_shape(shape, channels_first=channels_first)
        return ImageValue(
            caption, pixels=HostArray.of_torch(torch, value), channels_first=channels_first
        )
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        array = np.asarray(value)
        shape = array.shape
        # numpy images are HxWxC; a CxHxW array (last axis too long to be channels) is
        # accepted too, as torch lays images out
        channels_first = (
            len(shape) == 3 and shape[2] not in (1, 2, 3, 4) and shape[0] in (1, 2, 3, 4)
        )
        check_pixel_shape(shape, channels_first=channels_first)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"image pixels must be numbers, not {array.dtype}")
        return ImageValue(caption, pixels=HostArray.of_numpy(array), channels_first=channels_first)
    raise TypeError(
        "Image takes a numpy array, a torch tensor, a PIL image, a matplotlib figure or a "
        f"file path, not {module}.{type(value).__qualname__}"
    )
