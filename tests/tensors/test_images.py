"""PNG encoding (checked by an independent reader) and ``gradexp.Image`` inputs."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch

from gradexp.sdk.values.image import Image
from gradexp.sdk.values.png import encode_png, image_info

from .pngread import read_png

pytestmark = pytest.mark.torch  # these tests drive torch tensors or models


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trips_through_an_independent_reader(channels, dtype):
    rng = np.random.default_rng(channels)
    top = 256 if dtype == np.uint8 else 65536
    noise = rng.integers(0, top, (17, 23, channels)).astype(dtype)
    # smooth gradients make every filter (Sub, Up, Average, Paeth) win some rows
    y, x = np.mgrid[0:17, 0:23]
    smooth = np.stack([(x * 11 + y * 7 + c * 40) % top for c in range(channels)], axis=2)
    for pixels in (noise, smooth.astype(dtype)):
        data = encode_png(pixels)
        assert image_info(data) == ("png", 23, 17, channels)
        assert np.array_equal(read_png(data), pixels)


def _rows_made_for_each_filter(width: int = 64) -> np.ndarray:
    """Gray rows, each built so that one PNG filter turns it into zeros (and wins)."""
    rng = np.random.default_rng(9)

    def noise() -> np.ndarray:
        return rng.integers(0, 256, width).astype(np.int64)

    def paeth(a: int, b: int, c: int) -> int:
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else (b if pb <= pc else c)

    rows = [np.zeros(width, np.int64)]  # None: every filter gives zeros; ties go to None
    rows += [noise()]
    rows += [rows[-1].copy()]  # Up
    rows += [np.full(width, 9, np.int64)]  # Sub: one 9, then zeros
    above = noise()
    avg = np.zeros(width, np.int64)
    for i in range(width):
        avg[i] = ((avg[i - 1] if i else 0) + above[i]) // 2
    rows += [above, avg]  # Average
    # Paeth: a random-walk row above, and a row that follows Paeth's prediction from a
    # first pixel of its own, so that Paeth's choices (left, above, upper-left) diverge
    # from what Sub or Up would predict
    walk = np.random.default_rng(0)
    above = np.cumsum(walk.integers(-20, 21, width)) % 256
    pae = np.zeros(width, np.int64)
    pae[0] = walk.integers(0, 256)
    for i in range(1, width):
        pae[i] = paeth(pae[i - 1], above[i], above[i - 1])
    rows += [above, pae]  # Paeth
    return np.stack(rows).astype(np.uint8)[:, :, None]


def _filter_types(data: bytes, height: int, stride: int) -> list[int]:
    (length,) = struct.unpack(">I", data[33:37])
    raw = zlib.decompress(data[41 : 41 + length])
    return [raw[r * (stride + 1)] for r in range(height)]


@pytest.mark.parametrize("block_bytes", [1 << 21, 64])
def test_every_png_filter_is_chosen_and_decodes(monkeypatch, block_bytes):
    import gradexp.sdk.values.png as png

    monkeypatch.setattr(png, "_BLOCK_BYTES", block_bytes)  # 64: one row per block
    pixels = _rows_made_for_each_filter()
    data = encode_png(pixels)
    types = _filter_types(data, 8, 64)
    assert (types[0], types[2], types[3], types[5], types[7]) == (0, 2, 1, 3, 4)
    assert np.array_equal(read_png(data), pixels)


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((2, 2, 5), np.uint8), np.zeros((2, 2), np.uint8), np.zeros((0, 3, 3), np.uint8)],
)
def test_png_rejects_what_it_cannot_write(pixels):
    with pytest.raises(ValueError):
        encode_png(pixels)


def test_image_info_reads_jpeg_and_gif_headers():
    jpeg = (
        b"\xff\xd8"  # SOI
        + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9  # APP0
        + b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 480, 640, 3) + b"\x00" * 3  # SOF0
    )  # fmt: skip
    assert image_info(jpeg) == ("jpeg", 640, 480, 3)
    assert image_info(b"GIF89a" + struct.pack("<HH", 12, 34) + b"\x00" * 8) == ("gif", 12, 34, 3)
    assert image_info(b"BM not a format we read") is None


def _decoded(sink, value):
    return read_png((sink.folder / value["path"]).read_bytes())


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: np.full((4, 5), 0.5), np.full((4, 5, 1), 128, np.uint8)),
        (lambda: np.ones((4, 5, 1), bool), np.full((4, 5, 1), 255, np.uint8)),
        (lambda: np.full((4, 5, 3), 7, np.int64), np.full((4, 5, 3), 7, np.uint8)),
        (lambda: np.full((4, 5, 3), 2.0), np.full((4, 5, 3), 255, np.uint8)),  # clipped
        (lambda: np.full((4, 5), np.nan), np.zeros((4, 5, 1), np.uint8)),
        (lambda: np.zeros((3, 4, 5)), np.zeros((4, 5, 3), np.uint8)),  # CxHxW numpy
        (lambda: torch.zeros(1, 4, 5), np.zeros((4, 5, 1), np.uint8)),  # torch CxHxW
        (lambda: torch.full((6, 5, 8), 1.0)[:, :, :3], np.full((6, 5, 3), 255, np.uint8)),
        (lambda: torch.ones(4, 5, requires_grad=True), np.full((4, 5, 1), 255, np.uint8)),
    ],
)
def test_image_inputs(sink, make, expected):
    value = Image(make(), caption=3)._gradexp_capture().encode(sink)
    assert value["caption"] == "3"
    assert (value["height"], value["width"], value["channels"]) == expected.shape
    assert np.array_equal(_decoded(sink, value), expected)


def test_image_pixels_are_copied_when_made(sink):
    pixels = np.zeros((3, 3), np.uint8)
    image = Image(pixels)
    pixels[:] = 200
    assert np.array_equal(
        _decoded(sink, image._gradexp_capture().encode(sink)), np.zeros((3, 3, 1))
    )


def test_image_files_are_read_when_made_and_kept_as_they_are(sink, tmp_path):
    path = tmp_path / "plot.png"
    first = encode_png(np.full((2, 3, 3), 10, np.uint8))
    path.write_bytes(first)
    image = Image(path, caption="epoch 1")
    path.write_bytes(encode_png(np.full((2, 3, 3), 99, np.uint8)))  # the next epoch's plot
    value = image._gradexp_capture().encode(sink)
    assert (sink.folder / value["path"]).read_bytes() == first
    assert (value["width"], value["height"], value["channels"]) == (3, 2, 3)
    jpeg = tmp_path / "photo.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xc0" + struct.pack(">HBHHB", 11, 8, 5, 7, 1) + b"\x00" * 3)
    value = Image(str(jpeg))._gradexp_capture().encode(sink)
    assert value["path"].endswith(".jpg") and (value["width"], value["height"]) == (7, 5)
    assert sink.files[-1]["content_type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.zeros((5, 6, 7)), "HxW"),
        (np.zeros((0, 5)), "at least one pixel"),
        (np.zeros(5), "HxW"),
        (np.array([["a"]]), "numbers"),
        ("/does/not/exist.png", "cannot read image file"),
        (object(), "Image takes"),
    ],
)
def test_bad_images_surface_at_log_time(value, match):
    image = Image(value)  # never raises where it is made
    with pytest.raises((TypeError, ValueError), match=match):
        image._gradexp_capture()


def test_integer_pixels_out_of_range_fail_when_encoded(sink):
    captured = Image(np.array([[0, 300]]))._gradexp_capture()
    with pytest.raises(ValueError, match=r"0\.\.255"):
        captured.encode(sink)


def test_unknown_file_formats_need_pillow(tmp_path):
    path = tmp_path / "image.bmp"
    path.write_bytes(b"BM" + b"\x00" * 60)
    try:
        import PIL  # noqa: F401
    except ImportError:  # Pillow is not a dependency: this is the usual case
        with pytest.raises(ValueError, match="install Pillow"):
            Image(path)._gradexp_capture()
    else:  # with Pillow, a BMP this broken is still refused, as a ValueError
        with pytest.raises(ValueError):
            Image(path)._gradexp_capture()
