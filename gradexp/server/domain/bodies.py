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
#: JSON values (numbers, strings, objects...) one ingest body may hold: about 100 times
#: what the SDK's 1 MiB batches hold, and at most a few hundred MiB as Python objects.
MAX_BATCH_VALUES = 4_000_000


class Inflater:
    """Bounded, incremental gunzip: ``feed`` compressed chunks, then ``finish``.

    Each step may produce at most what is left of ``max_decompressed`` (and at most
    1 MiB), so a gzip bomb is refused after allocating no more than the limit, never its
    full size. Errors are the protocol's: ``bad_gzip`` (Invalid), ``payload_too_large``
    (TooLarge) past the limit.
    """

    def __init__(
        self, max_decompressed: int = MAX_DECOMPRESSED_BYTES, max_values: int | None = None
    ) -> None:
        self._z = zlib.decompressobj(wbits=31)
        self._max = max_decompressed
        self.produced = 0
        self._values = ValueCounter(max_values) if max_values is not None else None

    def feed(self, chunk: bytes, out: list[bytes] | bytearray) -> None:
        """Inflate ``chunk``, appending the pieces to ``out`` (a list, or a bytearray that
        grows by each piece)."""
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
            if self._values is not None:
                self._values.feed(piece)
            if isinstance(out, bytearray):
                out += piece
            else:
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


def gunzip_batch(body: bytes) -> bytearray:
    """An ingest body inflated within the protocol's limits: ``MAX_DECOMPRESSED_BYTES``,
    and :data:`MAX_BATCH_VALUES` JSON values counted as it inflates, so a small body that
    inflates to a huge document of tiny values is refused after inflating a few MiB of it,
    before it is parsed. Grows one buffer (no list of pieces and a joined copy)."""
    # gzip's trailer records the size (modulo 2^32: exact below the limit). A body that
    # inflates past what its trailer says is refused there, so the size the decode pool
    # schedules by (decode_pool.py) holds; a trailer past the limit means a bomb or junk.
    claimed = int.from_bytes(body[-4:], "little") if len(body) >= 18 else MAX_DECOMPRESSED_BYTES
    claimed = min(claimed, MAX_DECOMPRESSED_BYTES)
    inflater = Inflater(claimed, MAX_BATCH_VALUES)
    out = bytearray()
    try:
        inflater.feed(body, out)
    except TooLarge as exc:
        if inflater.produced <= claimed or claimed == MAX_DECOMPRESSED_BYTES:
            raise  # too many values, or past the limit
        raise Invalid(
            "the body inflates past the length its gzip trailer records", code="bad_gzip"
        ) from exc
    inflater.finish()
    return out


class ValueCounter:
    """An upper bound on the JSON values in a document, counted piece by piece as it
    arrives: every value but the first follows a ``,`` or opens with ``[`` or ``{`` (a
    comma inside a string counts too, so the bound is conservative). Parsing costs memory
    per value (a Python object each, 30 to 100 bytes), so this bounds what parsing may
    cost, where the byte limit alone allows a 200 MiB document of ``[{},{},...]`` (several
    GiB as Python objects)."""

    def __init__(self, max_values: int = 0) -> None:
        self.max_values = max_values or MAX_BATCH_VALUES
        self.count = 0

    def feed(self, piece: bytes | bytearray) -> None:
        """Count ``piece``; TooLarge past the limit."""
        self.count += piece.count(b",") + piece.count(b"[") + piece.count(b"{")
        if self.count > self.max_values:
            raise TooLarge(
                f"the body holds more than {self.max_values:,} JSON values: send smaller batches"
            )


def _bomb(limit: int) -> TooLarge:
    return TooLarge(
        f"the body decompresses to more than {limit // (1024 * 1024)} MiB: send smaller batches"
    )


def parse_json(body: bytes | bytearray) -> Any:
    """orjson, with an Invalid ``bad_json`` that says where it broke."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"the body is not valid JSON: {exc}", code="bad_json") from None
