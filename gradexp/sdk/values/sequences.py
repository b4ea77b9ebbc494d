"""Lists and tuples as values: a list of images is a gallery, a list of numbers a histogram.

``log({"samples": [gradexp.Image(a), gradexp.Image(b)]})`` logs one ``gallery`` value
(docs/protocol.md): the images in order, each stored as its own PNG, shown side by side
at each step in the UI. PIL images in the list count as images too.

``log({"scores": [0.1, 0.5, 0.4]})`` logs the histogram of the numbers (64 bins, with
their statistics), as ``gradexp.Histogram(values)`` would; nested lists of numbers are
flattened first. Pass ``gradexp.Histogram(values, bins=...)`` to choose the bins, or log
one number per key when each position means something of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gradexp.protocol.wire import MAX_GALLERY_IMAGES
from gradexp.sdk.values.base import HostArray, check_numeric_dtype
from gradexp.sdk.values.binning import DEFAULT_BINS
from gradexp.sdk.values.histogram import HostHistogram
from gradexp.sdk.values.image import Image, ImageValue

if TYPE_CHECKING:
    from gradexp.protocol.captured import BlobSink

__all__ = ["GalleryValue", "capture_sequence"]


class GalleryValue:
    """Several images under one key at one step, encoded on the stream thread."""

    __slots__ = ("_images", "_result", "nbytes")

    def __init__(self, images: list[ImageValue]) -> None:
        self._images = images
        self._result: dict[str, Any] | None = None
        self.nbytes = sum(i.nbytes for i in images)

    def encode(self, sink: BlobSink | None = None) -> dict[str, Any]:
        if self._result is None:
            images = [image.encode(sink) for image in self._images]
            self._result = {"_type": "gallery", "images": images}
            self._images = []
        return self._result


def _is_image(value: Any) -> bool:
    return isinstance(value, Image) or (
        type(value).__module__.startswith("PIL") and hasattr(value, "tobytes")
    )


def capture_sequence(value: list[Any] | tuple[Any, ...]) -> GalleryValue | HostHistogram:
    """A gallery for a list of images, a histogram for a list of numbers.

    Raises ValueError/TypeError (the SDK's once-per-key warning) for anything else.
    """
    if not value:
        raise ValueError("an empty list holds nothing to log")
    if all(map(_is_image, value)):
        if len(value) > MAX_GALLERY_IMAGES:
            raise ValueError(
                f"a list of {len(value)} images: at most {MAX_GALLERY_IMAGES} fit in one "
                "gallery; log fewer, or under several keys"
            )
        images = [(v if isinstance(v, Image) else Image(v))._gradexp_capture() for v in value]
        return GalleryValue(images)
    if any(map(_is_image, value)):
        raise TypeError(
            "a list that mixes images with other values cannot be logged: log the images "
            "as one list, and the other values under keys of their own"
        )
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype.kind not in "biuf":
        kinds = sorted({type(v).__name__ for v in value})
        raise TypeError(
            f"a list of {', '.join(kinds)} values cannot be logged: log a list of "
            "gradexp.Image (a gallery), a list of numbers (a histogram), or one value per key"
        )
    check_numeric_dtype(array.dtype)
    return HostHistogram(HostArray.of_numpy(array), DEFAULT_BINS, None)
