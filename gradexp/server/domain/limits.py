"""Bounds on what one request may hold, beyond its size in bytes.

- **Nesting.** A run's config and host, and every record but history rows (whose values
  are checked field by field), may nest objects and lists at most :data:`MAX_NESTING`
  deep. orjson reads 1,024 levels but writes only 254, so a deeper document used to be
  accepted and then fail when stored.
- **Counters.** Telemetry counters are numbers within +-:data:`MAX_COUNTER` (2^53, the
  largest integer a float holds exactly); sums past it stay at it, so adding up can never
  overflow what the database and JSON can hold.
"""

from __future__ import annotations

from typing import Any

MAX_NESTING = 64
MAX_COUNTER = 2**53
#: Telemetry names kept per run (per object of counters too); more are ignored.
MAX_TELEMETRY_NAMES = 256


def deeper_than(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests objects or lists more than ``limit`` levels deep.

    Iterative (no recursion limit to hit) and linear in the size of ``value``.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is dict:
            children: Any = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if type(c) is dict or type(c) is list)
    return False


def counter_ok(value: Any) -> bool:
    """Whether ``value`` is a finite number a telemetry counter may hold."""
    return (
        type(value) in (int, float) and value - value == 0 and -MAX_COUNTER <= value <= MAX_COUNTER
    )


def saturating_add(old: Any, value: int | float) -> int | float:
    """``old + value`` kept within +-:data:`MAX_COUNTER` (``old`` 0 unless a number)."""
    if type(old) not in (int, float) or old - old != 0:
        old = 0
    return max(-MAX_COUNTER, min(MAX_COUNTER, old + value))
