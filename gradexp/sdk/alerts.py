"""``alert()``: a message about the run, for people to see now.

An alert is an ``alert`` record (docs/protocol.md): written to the run file and uploaded
like everything else, shown on the run's page, and sent by the server to its webhook if
it has one (docs/server.md). ``wait_duration`` keeps a loop from repeating itself: an
alert with the same title sent again within that many seconds is skipped here, before
it is recorded.
"""

from __future__ import annotations

import time
from typing import Any

from gradexp.errors import GradexpError
from gradexp.protocol.wire import ALERT_LEVELS, MAX_ALERT_TEXT, MAX_ALERT_TITLE

__all__ = ["AlertGate", "alert_record"]

_LEVEL_NAMES = {"WARNING": "WARN", "CRITICAL": "ERROR", "FATAL": "ERROR"}


def _level(level: Any) -> str:
    """``"INFO"``, ``"WARN"`` or ``"ERROR"`` from a string or an enum member."""
    raw = getattr(level, "value", level)
    name = str(raw).strip().upper()
    name = _LEVEL_NAMES.get(name, name)
    if name not in ALERT_LEVELS:
        raise GradexpError(f"alert level {level!r}: use one of {', '.join(ALERT_LEVELS)}.")
    return name


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(wait: Any) -> float:
    seconds = wait.total_seconds() if hasattr(wait, "total_seconds") else wait
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise GradexpError(
            f"wait_duration={wait!r}: give seconds or a datetime.timedelta."
        ) from None
    if value < 0 or value != value:
        raise GradexpError(f"wait_duration={wait!r} must be 0 seconds or more.")
    return value


def alert_record(title: Any, text: Any, level: Any) -> dict[str, Any]:
    """The body of an ``alert`` record (title and text clipped to the protocol's limits)."""
    title_text = _clip(str(title), MAX_ALERT_TITLE)
    if not title_text.strip():
        raise GradexpError("an alert needs a title (a non-empty string).")
    return {
        "title": title_text,
        "text": _clip(str(text), MAX_ALERT_TEXT),
        "level": _level(level),
        "time": time.time(),
    }


class AlertGate:
    """Per run: when each title was last sent, for ``wait_duration`` (bounded)."""

    MAX_TITLES = 1000

    def __init__(self) -> None:
        self._sent: dict[str, float] = {}

    def allow(self, title: str, wait_duration: Any) -> bool:
        """Whether an alert titled ``title`` may go now; records that it does."""
        now = time.monotonic()
        if wait_duration is not None:
            wait = _seconds(wait_duration)
            last = self._sent.get(title)
            if last is not None and now - last < wait:
                return False
        if len(self._sent) >= self.MAX_TITLES and title not in self._sent:
            self._sent.pop(next(iter(self._sent)))
        self._sent[title] = now
        return True
