"""``run.config`` and ``run.summary``, and how config values become JSON.

Both are mappings whose updates are recorded: a ``config`` or ``summary`` record queued
on the run's channel, numbered and written by the stream thread in queue order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from gradexp.core.output import warn
from gradexp.protocol.values import PLAIN_TYPES, decode_value
from gradexp.stream.channel import CONFIG, SUMMARY

# Imported by init(): annotations are strings (PEP 563), so typing is only needed by the
# type checker, and init() does not pay for importing it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from gradexp.stream.channel import Channel

__all__ = ["Config", "Summary", "as_config_dict", "jsonable"]


def jsonable(value: Any, where: str) -> Any:
    """A config value as JSON can hold it (numpy scalars, paths, enums, tuples ...)."""
    if type(value) in PLAIN_TYPES:
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, where) for v in value]
    from gradexp.sdk.values.normalize import BadValue, convert

    try:
        converted = convert(value)
    except BadValue:
        converted = None
    if type(converted) in PLAIN_TYPES and converted is not None:
        return converted
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    text = str(value)
    warn(f"config value {where} ({type(value).__name__}) is stored as its text {text[:60]!r}.")
    return text


def as_config_dict(config: Any) -> dict[str, Any]:
    """``init(config=...)``: a mapping, an argparse.Namespace or a dataclass instance."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        items = dict(config)
    elif hasattr(config, "__dataclass_fields__"):
        import dataclasses

        items = dataclasses.asdict(config)
    elif hasattr(config, "__dict__"):
        items = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    else:
        raise TypeError(
            f"config must be a mapping, a dataclass or a namespace, not {type(config).__name__}"
        )
    return {str(k): jsonable(v, str(k)) for k, v in items.items()}


class Config(MutableMapping["str", "Any"]):
    """``run.config``: a dict whose updates are recorded (as ``config`` records).

    Every way of setting a value records it: ``config["lr"] = v``, ``config.lr = v`` and
    ``config.update(...)`` (a mapping, an ``argparse.Namespace``, a dataclass, or any
    object with a ``__dict__``). Changing a value that is already there is allowed and
    recorded like any other: the server keeps the latest value of each top-level key.
    ``record(kind, body)`` queues a record on the run (``Run._control``).
    """

    def __init__(self, record: Callable[[int, Any], None], initial: dict[str, Any]) -> None:
        # object.__setattr__: __setattr__ below records attribute assignments as config.
        object.__setattr__(self, "_record", record)
        object.__setattr__(self, "_data", dict(initial))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        raise TypeError("config keys cannot be deleted once recorded; set a new value instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:  # run.config.lr, as wandb users write it
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        """``run.config.lr = 0.1`` records ``lr`` like ``run.config["lr"] = 0.1``."""
        if name.startswith("_"):
            raise AttributeError(f"config keys cannot start with '_' ({name!r})")
        self.update({name: value})

    def __delattr__(self, name: str) -> None:
        raise TypeError("config keys cannot be deleted once recorded; set a new value instead")

    def update(
        self, other: Any = (), /, *, allow_val_change: bool | None = None, **kwargs: Any
    ) -> None:
        """Merge and record in one ``config`` record.

        ``other``: a mapping, an ``argparse.Namespace``, a dataclass instance or any object
        with a ``__dict__`` (its public attributes), or key/value pairs. Values already
        there may change: every change is recorded. ``allow_val_change`` is accepted and
        ignored, since changes are always allowed (scripts written for wandb pass it).
        """
        if isinstance(other, Mapping) or not hasattr(other, "__dict__"):
            items = dict(other, **kwargs)
        else:
            items = {**as_config_dict(other), **kwargs}
        changes = as_config_dict(items)
        if changes:
            self._data.update(changes)
            self._record(CONFIG, changes)

    def as_dict(self) -> dict[str, Any]:
        """A plain copy."""
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Config({self._data!r})"


class Summary(MutableMapping["str", "Any"]):
    """``run.summary``: the last value of every key, unless set explicitly.

    Reading waits (briefly) for the stream thread to take what was logged so far, so a
    value logged just before is seen. Setting a key records a ``summary`` record; explicit
    values win over "last value" on the server too. ``barrier()`` waits until the stream
    has taken what was queued (``Run._barrier``); ``record(kind, body)`` queues a record.
    """

    def __init__(
        self,
        channel: Channel,
        barrier: Callable[[], None],
        record: Callable[[int, Any], None],
    ) -> None:
        self._channel = channel
        self._barrier = barrier
        self._record = record
        self._explicit: dict[str, Any] = {}

    def _merged(self) -> dict[str, Any]:
        self._barrier()
        channel = self._channel
        with channel.summary_lock:
            merged = {k: decode_value(v) for k, v in channel.last_values.items()}
        merged.update(self._explicit)
        return merged

    def __getitem__(self, key: str) -> Any:
        return self._merged()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        raise TypeError("summary keys cannot be deleted; set a new value instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set explicit summary values (one ``summary`` record)."""
        bad: list[tuple[str, str]] = []
        from gradexp.sdk.values.normalize import normalize

        values = normalize(dict(other, **kwargs), set(), bad)
        for key, reason in bad:
            warn(f"summary value {key!r} dropped: {reason}.")
        if values:
            self._explicit.update(values)
            self._record(SUMMARY, values)

    def __repr__(self) -> str:
        return f"Summary({self._merged()!r})"
