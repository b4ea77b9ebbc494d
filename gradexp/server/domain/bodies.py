"""Request bodies as bytes: bounded gunzip and JSON parsing.

Shared by the ingest path in the server process and its decode workers (decode_pool.py),
so both refuse a bad body with exactly the same error.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from gradexp.protocol.wire import MAX_DECOMPRESSED_BYTES
from gradexp.server.domain.errors import Invalid, TooLarge

INFLATE_STEP = 1024 * 1024


class Inflater:
    """Bounded, incremental gunzip: ``feed`` compressed chunks, then ``finish``.

    Each step may produce at most what is left of ``max_decompressed`` (and at most
    1 MiB), so a gzip bomb is refused after allocating no more than the limit, never its
    full size. Errors are the protocol's: ``bad_gzip`` (Invalid), ``payload_too_large``
    (TooLarge) past the limit.
    """

    def __init__(self, max_decompressed: int = MAX_DECOMPRESSED_BYTES) -> None:
        self._z = zlib.decompressobj(wbits=31)
        self._max = max_decompressed
        self.produced = 0

    def feed(self, chunk: bytes, out: list[bytes]) -> None:
        """Inflate ``chunk``, appending the pieces to ``out``."""
        z = self._z
        data = chunk
        while data:
            try:
                piece = z.decompress(data, min(INFLATE_STEP, self._max - self.produced + 1))
            except zlib.error as exc:
                raise Invalid(f"the body is not valid gzip: {exc}", code="bad_gzip") from None
            self.produced += len(piece)
            if self.produced > self._max:
                raise _bomb(self._max)
            out.append(piece)
            data = z.unconsumed_tail
            if z.eof:
                if z.unused_data.strip(b"\x00"):
                    raise Invalid("the body holds data after the gzip stream", code="bad_gzip")
                break

    def finish(self) -> None:
        """Raise unless the gzip stream was complete."""
        if not self._z.eof:
            raise Invalid("the gzip stream is truncated", code="bad_gzip")


def gunzip(body: bytes, max_decompressed: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """A whole gzip'ed body, inflated within ``max_decompressed`` (see :class:`Inflater`)."""
    inflater = Inflater(max_decompressed)
    out: list[bytes] = []
    inflater.feed(body, out)
    inflater.finish()
    return b"".join(out)


def _bomb(limit: int) -> TooLarge:
    return TooLarge(
        f"the body decompresses to more than {limit // (1024 * 1024)} MiB: send smaller batches"
    )


def parse_json(body: bytes) -> Any:
    """orjson, with an Invalid ``bad_json`` that says where it broke."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"the body is not valid JSON: {exc}", code="bad_json") from None
