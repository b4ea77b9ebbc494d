"""Checks of what ingest records carry: metric key names, file paths, SHA-256 hashes, values.

A value is a scalar (number, string, bool or null) or a typed value, an object with a
``_type``: float, histogram, tensor, image, gallery or table. batch.py checks the batch and
each record's envelope and calls these for the contents. Each check raises an ``Invalid``
(code ``bad_batch``) that names the field at fault; the one change made to what is checked
is made in place: a non-finite float becomes a "float" typed value.

Pure and on the ingest hot path (100k+ records a second): plain ``type(x) is`` tests, and
:class:`ValidKeys`, the cache of key names already seen to be valid, whose set the batch's
loops read directly.
"""

from __future__ import annotations

from typing import Any

from gradexp.protocol.names import SHA256_RE
from gradexp.protocol.values import encode_float
from gradexp.protocol.wire import (
    HISTOGRAM_STATS,
    MAX_GALLERY_IMAGES,
    MAX_HISTOGRAM_BINS,
    MAX_KEY_LENGTH,
    MAX_TABLE_BYTES,
    MAX_TABLE_COLUMNS,
    MAX_TABLE_ROWS,
    STAT_SEPARATOR,
    TABLE_COLUMN_TYPES,
)
from gradexp.server.domain.errors import Invalid

MAX_FILE_PATH = 512


def bad_batch(message: str) -> Invalid:
    """The refusal of a batch whose shape or types are wrong (``bad_batch``)."""
    return Invalid(message, code="bad_batch")


# --- names -------------------------------------------------------------------------------


class ValidKeys:
    """Metric key names already seen to be valid, so a name is checked once per process
    rather than once per record.

    Bounded: past ``max_names`` names, new ones are checked every time instead of
    remembered. The server holds one (``AppState.valid_keys``), each decode worker process
    its own. ``names`` is a plain set, read directly by the hot loops; adding to it from
    two threads at once (the event loop and a thread decoding a big batch) is safe under
    the GIL, and at worst lets the set pass its bound by a few names.
    """

    def __init__(self, max_names: int = 100_000) -> None:
        self.names: set[str] = set()
        self.max_names = max_names

    def add(self, key: str) -> None:
        """Remember a valid name (unless the set is full)."""
        if len(self.names) < self.max_names:
            self.names.add(key)


def check_key(key: Any, where: str, valid: ValidKeys) -> str:
    """A metric key: a non-empty string up to 256 characters, no control characters, no '#'."""
    if key in valid.names:
        return str(key)
    if type(key) is not str or not key:
        raise bad_batch(f"{where}: keys must be non-empty strings")
    if len(key) > MAX_KEY_LENGTH:
        raise bad_batch(f"{where}: key {key[:40]!r}... is over {MAX_KEY_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise bad_batch(f"{where}: key {key!r} contains a control character")
    if STAT_SEPARATOR in key:
        raise bad_batch(f"{where}: key {key!r} contains {STAT_SEPARATOR!r}, which is reserved")
    valid.add(key)
    return key


def check_file_path(path: Any, where: str) -> str:
    """A run file path: relative, '/'-separated, no '..', no NUL or control characters."""
    if type(path) is not str or not path or len(path) > MAX_FILE_PATH:
        raise bad_batch(
            f"{where}: path must be a non-empty string up to {MAX_FILE_PATH} characters"
        )
    if path.startswith("/") or "\\" in path or any(ord(c) < 32 for c in path):
        raise bad_batch(f"{where}: path {path!r} must be relative, with '/' separators")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise bad_batch(f"{where}: path {path!r} has an empty, '.' or '..' part")
    return path


def check_sha256(value: Any, where: str) -> str:
    """Lowercase hex SHA-256."""
    if type(value) is not str or not SHA256_RE.fullmatch(value):
        raise bad_batch(f"{where}: sha256 must be 64 lowercase hex characters")
    return value


# --- values ------------------------------------------------------------------------------


def is_int(x: Any) -> bool:
    """An ``int`` (not a bool) that a signed 64-bit column holds (orjson reads integers up
    to 2^64-1)."""
    return type(x) is int and -(2**63) <= x < 2**63


def _check_number(x: Any, where: str) -> Any:
    t = type(x)
    if t is int:
        return x
    if t is float:
        return x if x - x == 0.0 else encode_float(x)
    if t is dict and x.get("_type") == "float":
        return _check_encoded_float(x, where)
    raise bad_batch(f"{where} must be a number")


def _check_encoded_float(x: dict[str, Any], where: str) -> dict[str, Any]:
    if x.get("value") not in ("NaN", "Infinity", "-Infinity") or len(x) != 2:
        raise bad_batch(f'{where}: a "float" value must be "NaN", "Infinity" or "-Infinity"')
    return x


def _check_stats(value: dict[str, Any], where: str) -> None:
    for stat in HISTOGRAM_STATS:
        if stat in value:
            value[stat] = _check_number(value[stat], f"{where}.{stat}")


def _check_number_list(xs: Any, where: str) -> None:
    if type(xs) is not list:
        raise bad_batch(f"{where} must be a list of numbers")
    for i, x in enumerate(xs):
        t = type(x)
        if t is float:
            if x - x != 0.0:
                xs[i] = encode_float(x)
        elif t is not int:
            if t is dict and x.get("_type") == "float":
                _check_encoded_float(x, f"{where}[{i}]")
            else:
                raise bad_batch(f"{where}[{i}] must be a number")


# The fields of a typed value that may hold lists or objects; any other field holds a
# scalar (a newer SDK may add some), so a typed value is never a place for free-form JSON.
_CONTAINER_FIELDS = frozenset(("bins", "counts", "shape", "images", *HISTOGRAM_STATS))


def check_typed(value: dict[str, Any], where: str) -> dict[str, Any]:
    """A value with a ``_type``: float, histogram, tensor, image, gallery or table."""
    kind = value.get("_type")
    if kind == "table":
        return _check_table(value, where)
    for name, field in value.items():
        if (type(field) is dict or type(field) is list) and name not in _CONTAINER_FIELDS:
            raise bad_batch(f"{where}.{name}: a {kind} value holds no lists or objects there")
    if kind == "gallery":
        images = value.get("images")
        if type(images) is not list or not 0 < len(images) <= MAX_GALLERY_IMAGES:
            raise bad_batch(
                f"{where}.images must be a list of 1 to {MAX_GALLERY_IMAGES} image values"
            )
        for i, image in enumerate(images):
            if type(image) is not dict or image.get("_type") != "image":
                raise bad_batch(f"{where}.images[{i}] must be an image value")
            check_typed(image, f"{where}.images[{i}]")
        return value
    if kind == "float":
        return _check_encoded_float(value, where)
    if kind == "histogram":
        bins, counts = value.get("bins"), value.get("counts")
        _check_number_list(bins, f"{where}.bins")
        _check_number_list(counts, f"{where}.counts")
        assert isinstance(bins, list) and isinstance(counts, list)
        if len(counts) > MAX_HISTOGRAM_BINS or len(bins) != len(counts) + 1:
            raise bad_batch(
                f"{where}: a histogram needs n counts (n <= {MAX_HISTOGRAM_BINS}) and n+1 bin edges"
            )
        _check_stats(value, where)
        return value
    if kind in ("tensor", "image"):
        check_file_path(value.get("path"), f"{where}.path")
        check_sha256(value.get("sha256"), f"{where}.sha256")
        if not is_int(value.get("size")) or value["size"] < 0:
            raise bad_batch(f"{where}.size must be an integer >= 0")
        if kind == "tensor":
            shape = value.get("shape")
            if type(shape) is not list or not all(is_int(d) and d >= 0 for d in shape):
                raise bad_batch(f"{where}.shape must be a list of integers >= 0")
            if type(value.get("dtype")) is not str:
                raise bad_batch(f"{where}.dtype must be a string")
            _check_stats(value, where)
        else:
            for dim in ("width", "height", "channels"):
                if dim in value and not is_int(value[dim]):
                    raise bad_batch(f"{where}.{dim} must be an integer")
            caption = value.get("caption")
            if caption is not None and type(caption) is not str:
                raise bad_batch(f"{where}.caption must be a string or null")
        return value
    raise bad_batch(
        f'{where}: objects must be typed values with "_type" float, histogram, tensor, image, '
        "gallery or table (nested mappings are flattened to 'a/b' keys by the SDK)"
    )


def _check_table(value: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``table`` value: its file and its schema (the cells live in the file)."""
    check_file_path(value.get("path"), f"{where}.path")
    check_sha256(value.get("sha256"), f"{where}.sha256")
    size: Any = value.get("size")
    if not is_int(size) or not 0 <= size <= MAX_TABLE_BYTES:
        raise bad_batch(f"{where}.size must be an integer from 0 to {MAX_TABLE_BYTES}")
    rows: Any = value.get("rows")
    if not is_int(rows) or not 0 <= rows <= MAX_TABLE_ROWS:
        raise bad_batch(f"{where}.rows must be an integer from 0 to {MAX_TABLE_ROWS}")
    columns = value.get("columns")
    if type(columns) is not list or len(columns) > MAX_TABLE_COLUMNS:
        raise bad_batch(f"{where}.columns must be a list of at most {MAX_TABLE_COLUMNS} columns")
    for i, col in enumerate(columns):
        if (
            type(col) is not dict
            or len(col) != 2
            or type(col.get("name")) is not str
            or not 0 < len(col["name"]) <= MAX_KEY_LENGTH
            or col.get("type") not in TABLE_COLUMN_TYPES
        ):
            raise bad_batch(
                f'{where}.columns[{i}] must be {{"name": a string of 1 to {MAX_KEY_LENGTH} '
                f'characters, "type": one of {", ".join(TABLE_COLUMN_TYPES)}}}'
            )
    if len(value) != 6:
        raise bad_batch(f"{where}: a table value has exactly path, sha256, size, rows, columns")
    return value


def check_values(values: Any, where: str, valid: ValidKeys) -> dict[str, Any]:
    """A row's ``values``: key -> scalar or typed value. Returns it (normalised in place)."""
    if type(values) is not dict:
        raise bad_batch(f"{where}.values must be an object")
    for key, value in values.items():
        if key not in valid.names:
            check_key(key, where, valid)
        t = type(value)
        if t is float:
            if value - value != 0.0:
                values[key] = encode_float(value)
        elif t is int or t is str or t is bool or value is None:
            pass
        elif t is dict:
            check_typed(value, f"{where}.values[{key!r}]")
        else:
            raise bad_batch(
                f"{where}.values[{key!r}] must be a number, string, bool, null or typed value"
            )
    return values


def check_time(x: Any, where: str) -> float:
    """A record's time: finite Unix seconds, an int or a float, returned as a float."""
    t = type(x)
    if (t is float and x - x == 0.0) or t is int:
        return float(x)
    raise bad_batch(f"{where} must be a finite number (Unix seconds)")
