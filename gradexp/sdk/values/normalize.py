"""``log()``'s slow path: user values -> record values, on the caller's thread.

:func:`normalize` runs inside ``log()`` only when the fast path sees something other than
a plain ``int``/``float``/``bool``/``str``/``None`` under an already-validated key. It
flattens nested mappings to ``a/b`` keys, turns numpy and torch scalars into Python
scalars, takes a ``Captured`` copy of rich values (the caller may mutate an array right
after ``log()`` returns; see ``gradexp.protocol.captured``), and reports bad keys and
values instead of raising. The stream thread finishes what was captured
(``gradexp.protocol.values.encode_values``).

The rich values themselves (``Histogram``, ``Tensor``, ``Image``, bare arrays) live beside
this module and are imported when the first one arrives: they import numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gradexp.protocol.names import key_problem
from gradexp.protocol.values import PLAIN_TYPES, encode_float
from gradexp.protocol.wire import MAX_KEY_LENGTH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from gradexp.protocol.captured import BlobSink


class BadValue(Exception):
    """Why one key's value cannot be logged (carried to the once-per-key warning)."""


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


def convert(value: Any) -> Any:
    """One non-plain, non-mapping value -> a plain scalar or a :class:`Captured`.

    Raises :class:`BadValue` with the reason when it cannot be logged.
    """
    capture_self: Callable[[], Any] | None = getattr(value, "_gradexp_capture", None)
    if capture_self is not None and not isinstance(value, type):
        try:
            return capture_self()
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
    from gradexp.sdk.values.capture import capture  # numpy: only once an array is logged

    try:
        captured = capture(value)
    except (TypeError, ValueError) as exc:
        raise BadValue(str(exc)) from None
    if captured is not None:
        return captured
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
                value = convert(value)
            except BadValue as exc:
                bad.append((key, str(exc)))
                continue
        out[key] = value
    return out
