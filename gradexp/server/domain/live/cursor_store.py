"""Project stream cursors too big for an event id, kept in the process's memory.

A project stream's event id is its cursor: every running run's position, packed
(``http/live.py``). With more than ~1,500 running runs a packed cursor passes what a
``Last-Event-ID`` header may hold (8 KB in aiohttp and in common proxies). Past
``GRADEXP_SERVER_MAX_EVENT_ID`` characters the stream keeps the cursor here and names it
in the id by a random token (``m`` + 22 characters). A stream that resumes in the same
process resumes exactly; one whose token this process does not know (another process
behind a load balancer, or a restart) starts from now and says so first
(``event: reset``), so the page reloads what it shows rather than miss rows.

Bounded: at most ``max_bytes`` of cursors (64 MiB: ~8,000 cursors of 2,000 runs), the
oldest dropped first, and none older than ``ttl`` (10 minutes; a browser resumes within
seconds). A token answers only for the project it was made for.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict

__all__ = ["TOKEN_PREFIX", "CursorStore"]

TOKEN_PREFIX = "m"


class CursorStore:
    """Big cursors by token (``AppState.cursors``). Used on the event loop only."""

    def __init__(self, max_bytes: int = 64 << 20, ttl: float = 600.0) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.bytes = 0
        self._items: OrderedDict[str, tuple[int, str, float]] = OrderedDict()

    def put(self, project_id: int, cursor: str) -> str:
        """Keep ``cursor`` (an encoded whole cursor of project ``project_id``); its token."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(16)
        now = time.monotonic()
        self._items[token] = (project_id, cursor, now)
        self.bytes += len(cursor)
        while self._items and (
            self.bytes > self.max_bytes or next(iter(self._items.values()))[2] < now - self.ttl
        ):
            _token, (_pid, old, _at) = self._items.popitem(last=False)
            self.bytes -= len(old)
        return token

    def get(self, project_id: int, token: str) -> str | None:
        """The cursor behind ``token`` if this process keeps it for this project."""
        item = self._items.get(token)
        if item is None or item[0] != project_id or item[2] < time.monotonic() - self.ttl:
            return None
        return item[1]

    def __len__(self) -> int:
        return len(self._items)
