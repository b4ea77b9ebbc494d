"""User values -> record values: the interface rich values plug into, and the slow path.

Two halves, on two threads:

- :func:`normalize` runs on the caller's thread inside ``log()``, but only when the fast
  path sees something other than a plain ``int``/``float``/``bool``/``str``/``None`` under
  an already-validated key. It flattens nested mappings to ``a/b`` keys, turns numpy and
  torch scalars into Python scalars, takes a :class:`Captured` copy of rich values (the
  caller may mutate an array right after ``log()`` returns), and reports bad keys and
  values instead of raising.
- :func:`encode_values` runs on the stream thread: it finishes captured values (histograms
  are computed there, blobs written there) and encodes non-finite floats, which JSON cannot
  hold, as ``{"_type": "float", "value": "NaN"}`` (see ``gradexp.protocol.wire``).

The rich values themselves (``Histogram``, ``Tensor``, ``Image``, bare arrays) live in
``gradexp.sdk.values.base``, imported lazily because it imports numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from gradexp.protocol.wire import MAX_KEY_LENGTH, STAT_SEPARATOR, encode_float

#: The types that pass through ``log()`` untouched (exact types: a subclass such as
#: ``numpy.float64`` or ``IntEnum`` takes the slow path and is converted).
PLAIN_TYPES: frozenset[type] = frozenset({int, float, bool, str, type(None)})


@runtime_checkable
class Captured(Protocol):
    """Taken from the caller at ``log()`` time; finished on the stream thread.

    ``nbytes`` counts against the stream's memory bound while the value waits in the
    queue. ``encode`` runs on the stream thread and returns the JSON-ready typed value
    (protocol "Values"), e.g. ``{"_type": "histogram", ...}``; it may call
    ``sink.add_file`` to store a blob. It may raise ``TypeError``/``ValueError``: the value
    is then dropped, warned about once per key and counted, like any bad value.
    """

    nbytes: int

    def encode(self, sink: BlobSink) -> Any: ...


class BlobSink(Protocol):
    """Where :meth:`Captured.encode` puts the bytes of a blob (a tensor, an image).

    ``add_file`` writes ``data`` into the run's ``files/`` dir named by its sha256 (plus
    ``suffix``, e.g. ``".npy.gz"``), appends a ``file`` record (protocol "Records"),
    arranges for the blob to be uploaded before that record is sent, and returns
    ``{"path": ..., "sha256": ..., "size": ...}`` for the typed value to reference.
    Called on the stream thread only.
    """

    def add_file(self, data: bytes, *, suffix: str, content_type: str) -> dict[str, Any]: ...


class BadValue(Exception):
    """Why one key's value cannot be logged (carried to the once-per-key warning)."""


# --- keys ----------------------------------------------------------------------------------


def key_problem(key: object) -> str | None:
    """Why ``key`` cannot be a metric key, or None if it can."""
    if type(key) is not str:
        return f"keys must be strings, not {type(key).__name__}"
    if not key:
        return "keys must not be empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"keys are at most {MAX_KEY_LENGTH} characters"
    if STAT_SEPARATOR in key:
        return f"{STAT_SEPARATOR!r} is reserved for statistics series (e.g. 'grad#norm')"
    if not key.isprintable():
        return "keys must not contain control characters"
    return None


# --- the caller's slow path ----------------------------------------------------------------

_tensors_module: Any = None
_tensors_checked = False


def _tensors() -> Any:
    """``gradexp.sdk.values.base`` once it exists (the tensors issue), else None. Imported lazily."""
    global _tensors_module, _tensors_checked
    if not _tensors_checked:
        _tensors_checked = True
        import importlib.util

        if importlib.util.find_spec("gradexp.sdk.values.base") is not None:
            _tensors_module = importlib.import_module("gradexp.sdk.values.base")
    return _tensors_module


class _DeviceScalar:
    """A 0-d tensor on an accelerator: read on the stream thread, not the caller's.

    ``.item()`` on a CUDA tensor waits for the device; ``clone()`` only queues a copy on
    the device's stream (so a later in-place update by the caller cannot change it), and
    the stream thread pays the wait in :meth:`encode`.
    """

    nbytes = 64

    def __init__(self, tensor: Any) -> None:
        self._tensor = tensor.detach().clone()

    def encode(self, sink: BlobSink) -> Any:
        value = self._tensor.item()
        return encode_float(value) if type(value) is float else value


def _convert(value: Any) -> Any:
    """One non-plain, non-mapping value -> a plain scalar or a :class:`Captured`.

    Raises :class:`BadValue` with the reason when it cannot be logged.
    """
    capture: Callable[[], Any] | None = getattr(value, "_gradexp_capture", None)
    if capture is not None and not isinstance(value, type):
        try:
            return capture()
        except (TypeError, ValueError) as exc:
            raise BadValue(str(exc)) from None
    t = type(value)
    module = t.__module__
    # Subclasses of the plain types (numpy.float64 is a float, IntEnum an int, ...).
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    if module == "numpy" or module.startswith("numpy."):
        ndim = getattr(value, "ndim", None)
        if ndim == 0:  # numpy scalars and 0-d arrays
            item = value.item()
            if type(item) in PLAIN_TYPES:
                return item
            raise BadValue(f"numpy values of dtype {value.dtype} are not supported")
    elif (
        module.startswith("torch")  # duck typed: never import torch
        and hasattr(value, "detach")
        and getattr(value, "ndim", None) == 0
        and not getattr(value, "is_sparse", False)
    ):
        device = getattr(value, "device", None)
        if getattr(device, "type", "cpu") not in ("cpu", "meta"):
            return _DeviceScalar(value)
        item = value.detach().item()
        if type(item) in PLAIN_TYPES:
            return item
        raise BadValue(f"torch values of dtype {value.dtype} are not supported")
    tensors = _tensors()
    if tensors is not None:
        try:
            captured = tensors.capture(value)
        except (TypeError, ValueError) as exc:
            raise BadValue(str(exc)) from None
        if captured is not None:
            return captured
    elif hasattr(value, "shape") and hasattr(value, "dtype"):
        raise BadValue(
            f"{t.__name__} arrays are not supported yet (log a scalar, e.g. x.mean().item())"
        )
    raise BadValue(f"values of type {t.__module__}.{t.__qualname__} are not supported")


def normalize(
    data: Mapping[Any, Any],
    known_keys: set[str],
    bad: list[tuple[str, str]],
    prefix: str = "",
) -> dict[str, Any]:
    """The values of one ``log()`` call, flattened, converted and checked.

    Runs on the caller's thread. Keys that pass validation are added to ``known_keys``
    (the fast path skips them next time); every dropped key is appended to ``bad`` as
    ``(key, reason)``. Never raises for bad content.
    """
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = f"{prefix}{raw_key}" if prefix and type(raw_key) is str else raw_key
        if isinstance(value, Mapping):  # nested: {"val": {"loss": 1}} -> "val/loss"
            if type(raw_key) is not str:
                bad.append((str(key), f"keys must be strings, not {type(raw_key).__name__}"))
                continue
            out.update(normalize(value, known_keys, bad, f"{key}/"))
            continue
        if key not in known_keys:
            problem = key_problem(key)
            if problem is not None:
                bad.append((str(key)[:MAX_KEY_LENGTH], problem))
                continue
            if len(known_keys) < 100_000:  # a cache, not a registry: bounded
                known_keys.add(key)
        if type(value) not in PLAIN_TYPES:
            try:
                value = _convert(value)
            except BadValue as exc:
                bad.append((key, str(exc)))
                continue
        out[key] = value
    return out


# --- the stream thread's half -----------------------------------------------------------


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
