"""Names, limits and the value encoding shared by the SDK and the server.

``docs/protocol.md`` is the prose version of this module; change the two together.
This module imports nothing beyond the standard library so that both sides (and
``import gradexp``) can load it for free.
"""

from __future__ import annotations

import math
import re

from gradexp._version import __version__

TYPE_CHECKING = False  # not typing's: `import gradexp` stays free of the typing import
if TYPE_CHECKING:
    from typing import Any, Final

API_PREFIX: Final = "/api/v1"
VERSION: Final = __version__  # the one place it is written: gradexp/_version.py

# --- browser sign-in and `gradexp login` (docs/protocol.md, "Auth" and "Login") -----------
SESSION_COOKIE: Final = "gradexp_session"  # HttpOnly: the browser's session
CSRF_COOKIE: Final = "gradexp_csrf"  # readable by the page: the value to send as CSRF_HEADER
CSRF_HEADER: Final = "X-CSRF-Token"  # required with a session cookie on any non-GET/HEAD
AUTHORIZE_PATH: Final = "/authorize"  # the consent page `gradexp login` opens
TOKEN_PATH: Final = API_PREFIX + "/auth/token"  # code + PKCE verifier -> a new API key
KEYS_PAGE_PATH: Final = "/keys"  # where a person creates and revokes keys

# --- run file --------------------------------------------------------------------------
RUNFILE_NAME: Final = "run.gxr"
RUNFILE_MAGIC: Final = b"GRADEXP\x00RUN\x00"  # 12 bytes, then a u32 format version
RUNFILE_VERSION: Final = 1
RUN_META_NAME: Final = "run.json"
ACK_NAME: Final = "ack.json"
FILES_DIR: Final = "files"
LATEST_RUN_LINK: Final = "latest-run"

# Record types: the JSON ``type`` field and the frame's type byte.
RECORD_TYPES: Final[dict[str, int]] = {
    "history": 1,
    "config": 2,
    "summary": 3,
    "file": 4,
    "finish": 5,
    "telemetry": 6,
}
RECORD_TYPE_NAMES: Final[dict[int, str]] = {v: k for k, v in RECORD_TYPES.items()}

# --- limits (the server enforces them; the SDK stays well inside) ---------------------
MAX_BODY_BYTES: Final = 32 * 1024 * 1024  # a request body as sent
MAX_DECOMPRESSED_BYTES: Final = 256 * 1024 * 1024  # after gunzip: past this it is a bomb
MAX_BLOB_BYTES: Final = 4 * 1024 * 1024 * 1024
MAX_KEY_LENGTH: Final = 256
MAX_HISTOGRAM_BINS: Final = 512

PROJECT_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RUN_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
STAT_SEPARATOR: Final = "#"  # histogram statistic series: "<key>#<stat>"

# Statistics carried by histogram and tensor values, in a stable order.
HISTOGRAM_STATS: Final = (
    "min",
    "max",
    "mean",
    "std",
    "norm",
    "count",
    "nan",
    "inf",
    "ninf",
    "zeros",
)

# --- non-finite floats ------------------------------------------------------------------
# JSON has no NaN or Infinity (orjson writes null for them), so a non-finite float travels
# as a typed object. It is the only encoding, everywhere: run file, wire, SQL, read API.
_NONFINITE_TEXT: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_TEXT_FLOAT: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


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
