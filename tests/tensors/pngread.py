"""A small, independent PNG reader for the tests: chunks, CRCs, zlib, and the five filters
undone byte by byte in plain Python (slow, obvious, and sharing no code with the encoder)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def read_png(data: bytes) -> np.ndarray:
    """The pixels of a non-interlaced 8/16-bit gray, gray+alpha, RGB or RGBA PNG: (H, W, C)."""
    assert data[:8] == SIGNATURE, "not a PNG"
    pos = 8
    header = None
    idat = b""
    seen_end = False
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            seen_end = True
            break
        pos += 12 + length
    assert header is not None and seen_end
    width, height, depth, color, compression, filt, interlace = header
    assert (compression, filt, interlace) == (0, 0, 0)
    channels = CHANNELS[color]
    nbytes = depth // 8
    bpp = channels * nbytes
    stride = width * bpp
    raw = zlib.decompress(idat)
    assert len(raw) == height * (stride + 1)
    rows: list[bytearray] = []
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                raise AssertionError(f"unknown filter type {ftype}")
            line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        prev = line
    flat = np.frombuffer(b"".join(rows), dtype=">u2" if depth == 16 else np.uint8)
    return flat.reshape(height, width, channels).astype(np.uint16 if depth == 16 else np.uint8)
