"""The value codec shared by the SDK and the server (``docs/protocol.md``, "Values").

Plain values (``int``, ``float``, ``bool``, ``str``, ``None``) travel as they are, except
non-finite floats; typed values are objects with a ``_type``. The stream thread encodes
with :func:`needs_encoding` / :func:`encode_values` (which finish captured rich values,
see ``gradexp.protocol.captured``); readers decode with :func:`decode_value`.

Standard library only, and no ``typing`` at run time: ``log()``'s fast path imports
:data:`PLAIN_TYPES` from here.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    from typing import Any, Final

    from gradexp.protocol.captured import BlobSink

#: The types that pass through ``log()`` untouched (exact types: a subclass such as
#: ``numpy.float64`` or ``IntEnum`` takes the slow path and is converted).
PLAIN_TYPES: Final[frozenset[type]] = frozenset({int, float, bool, str, type(None)})

# --- non-finite floats ------------------------------------------------------------------
# JSON has no NaN or Infinity (orjson writes null for them), so a non-finite float travels
# as a typed object. It is the only encoding, everywhere: run file, wire, SQL, read API.
_NONFINITE_TEXT: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
# float("nan"), not math.nan: init() imports this module, and need not import math.
_TEXT_FLOAT: Final = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def encode_float(x: float) -> float | dict[str, str]:
    """Return ``x`` itself when finite, else its ``{"_type": "float"}`` encoding."""
    if x - x == 0.0:  # false for NaN and both infinities; cheaper than math.isfinite
        return x
    return {"_type": "float", "value": _NONFINITE_TEXT[repr(float(x))]}


def is_encoded_float(value: Any) -> bool:
    """True for a ``{"_type": "float", ...}`` object."""
    return isinstance(value, dict) and value.get("_type") == "float"


def decode_value(value: Any) -> Any:
    """Turn one stored value back into Python: encoded floats become floats.

    Typed objects (histograms, tensors, images) come back as dicts with their encoded
    statistics decoded; everything else is returned unchanged.
    """
    if type(value) is dict:
        kind = value.get("_type")
        if kind == "float":
            return _TEXT_FLOAT[value["value"]]
        if kind is not None:
            return {k: decode_value(v) for k, v in value.items()}
    return value


def decode_values(values: dict[str, Any]) -> dict[str, Any]:
    """``decode_value`` over a row's values."""
    return {k: decode_value(v) for k, v in values.items()}


def numeric_value(value: Any) -> float | None:
    """The float a value charts as, or None for strings, typed objects and None."""
    t = type(value)
    if t is float or t is int:
        return float(value)
    if t is bool:
        return 1.0 if value else 0.0
    if t is dict and value.get("_type") == "float":
        return _TEXT_FLOAT[value["value"]]
    return None


def needs_encoding(values: dict[str, Any]) -> bool:
    """True if some value is a non-finite float or a captured value (stream thread)."""
    for v in values.values():
        t = type(v)
        if t is float:
            if v - v != 0.0:  # NaN or ±Inf
                return True
        elif t not in PLAIN_TYPES:
            return True
    return False


def encode_values(
    values: dict[str, Any], sink: BlobSink, bad: list[tuple[str, str]]
) -> dict[str, Any]:
    """A copy of ``values`` ready for orjson: floats encoded, captured values finished.

    Runs on the stream thread. A captured value whose ``encode`` fails is dropped and
    reported in ``bad`` as ``(key, reason)``.
    """
    out: dict[str, Any] = {}
    for key, v in values.items():
        t = type(v)
        if t is float:
            out[key] = v if v - v == 0.0 else encode_float(v)
        elif t in PLAIN_TYPES:
            out[key] = v
        else:
            try:
                encoded = v.encode(sink)
            except Exception as exc:  # a bug in one value must not stop the stream
                bad.append((key, f"could not be encoded ({type(exc).__name__}: {exc})"))
                continue
            out[key] = encoded
    return out
