"""A PNG encoder in numpy and zlib (no Pillow), and a reader of image headers.

``encode_png`` writes 8- or 16-bit grayscale, gray+alpha, RGB or RGBA images. Rows are
filtered the way libpng does by default: for each row, the filter among None, Sub, Up,
Average and Paeth whose output has the smallest sum of absolute (signed) bytes, which
makes the zlib stream much smaller on photos and plots alike. All five filters are
computed for a block of rows at once with numpy, so the encoder's Python overhead is per
block, not per pixel; blocks keep the temporaries bounded on large images.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["PNG_SIGNATURE", "encode_png", "image_info"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+A, RGB, RGBA)
_BLOCK_BYTES = 1 << 21  # rows filtered at once: ~2 MiB of samples, ~20 MiB of temporaries


def encode_png(pixels: np.ndarray, *, level: int = 6) -> bytes:
    """PNG bytes of ``pixels``: an ``(H, W, C)`` uint8 or uint16 array, C in 1..4."""
    if pixels.ndim != 3 or pixels.shape[2] not in _COLOR_TYPES:
        raise ValueError(f"encode_png needs an (H, W, 1..4) array, got shape {pixels.shape}")
    if pixels.dtype == np.uint8:
        depth = 8
    elif pixels.dtype == np.uint16:
        depth = 16
    else:
        raise ValueError(f"encode_png needs uint8 or uint16 pixels, got {pixels.dtype}")
    height, width, channels = pixels.shape
    if height == 0 or width == 0:
        raise ValueError(f"an image needs at least one pixel, got {width}x{height}")
    # Rows as bytes, big-endian for 16-bit samples as PNG requires.
    rows = np.ascontiguousarray(pixels.astype(">u2") if depth == 16 else pixels)
    rows = rows.view(np.uint8).reshape(height, width * channels * (depth // 8))
    bpp = channels * (depth // 8)  # bytes per pixel: the Sub/Average/Paeth distance
    compressor = zlib.compressobj(level)
    parts = []
    previous = np.zeros(rows.shape[1], dtype=np.uint8)
    per_block = max(1, _BLOCK_BYTES // rows.shape[1])
    for start in range(0, height, per_block):
        block = rows[start : start + per_block]
        parts.append(compressor.compress(_filter_block(block, previous, bpp).tobytes()))
        previous = block[-1]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, depth, _COLOR_TYPES[channels], 0, 0, 0)
    return b"".join(
        [
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", b"".join(parts)),
            _chunk(b"IEND", b""),
        ]
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _filter_block(block: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    """Rows of ``block`` each prefixed with its best filter type and filtered by it.

    ``previous`` is the row above the block (zeros above the first row of the image).
    """
    x = block.astype(np.int16)
    above = np.vstack([previous[None, :].astype(np.int16), x[:-1]])
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upper_left = np.zeros_like(x)
    upper_left[:, bpp:] = above[:, :-bpp]
    # Paeth predictor (PNG spec 9.4): the neighbour closest to left + above - upper_left,
    # ties going to left, then above.
    p = left + above - upper_left
    pa, pb, pc = np.abs(p - left), np.abs(p - above), np.abs(p - upper_left)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, above, upper_left))
    candidates = np.stack([x, x - left, x - above, x - ((left + above) >> 1), x - paeth]).astype(
        np.uint8
    )  # wraps modulo 256, as the spec's filters do
    # libpng's heuristic: the smallest sum of the bytes read as signed values' magnitudes
    signed = candidates.view(np.int8).astype(np.int16)
    scores = np.abs(signed).sum(axis=2, dtype=np.int64)  # (5, rows)
    best = scores.argmin(axis=0)
    out = np.empty((x.shape[0], x.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = best
    out[:, 1:] = candidates[best, np.arange(x.shape[0])]
    return out


def image_info(data: bytes) -> tuple[str, int, int, int] | None:
    """``(format, width, height, channels)`` from a PNG, JPEG or GIF file's header.

    ``format`` is ``"png"``, ``"jpeg"`` or ``"gif"``; None for anything else (or a header
    too damaged to read).
    """
    if data.startswith(PNG_SIGNATURE) and len(data) >= 33 and data[12:16] == b"IHDR":
        width, height, _depth, color = struct.unpack(">IIBB", data[16:26])
        channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(color)
        return None if channels is None else ("png", width, height, channels)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_info(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return ("gif", width, height, 3)
    return None


# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_info(data: bytes) -> tuple[str, int, int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF_MARKERS:
            if i + 10 > len(data):
                return None
            height, width, components = struct.unpack(">HHB", data[i + 5 : i + 10])
            return ("jpeg", width, height, components)
        i += 2 + length
    return None
