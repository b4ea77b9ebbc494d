"""Run ids and display names, made on the client (``init()`` never waits for a server).

Ids are 10 random lowercase base36 characters (about 52 bits): safe in a path and a URL,
and within the protocol's run-id rule (``gradexp.protocol.names``).
"""

from __future__ import annotations

import os

__all__ = ["random_id", "random_name"]

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def random_id(n: int = 10) -> str:
    """``n`` random lowercase base36 characters (protocol: run ids made on the client)."""
    raw = int.from_bytes(os.urandom(16), "big")
    chars = []
    for _ in range(n):
        raw, r = divmod(raw, 36)
        chars.append(_BASE36[r])
    return "".join(chars)


_ADJECTIVES = (
    "amber", "bold", "bright", "calm", "clever", "crisp", "dark", "eager", "fair", "fast",
    "gentle", "golden", "green", "happy", "jolly", "keen", "lively", "lucky", "misty", "noble",
    "proud", "quiet", "rapid", "royal", "silent", "silver", "smooth", "steady", "sunny", "swift",
    "tidy", "vivid", "warm", "wild", "wise", "young",
)  # fmt: skip
_NOUNS = (
    "badger", "bird", "brook", "cloud", "comet", "dawn", "dew", "dream", "field", "fire",
    "flower", "fog", "forest", "fox", "frost", "glade", "hill", "lake", "leaf", "meadow",
    "moon", "mountain", "night", "ocean", "owl", "pine", "rain", "river", "sea", "shadow",
    "sky", "snow", "star", "sun", "thunder", "tree", "wave", "wind", "wolf",
)  # fmt: skip


def random_name() -> str:
    """A readable display name, ``bright-fox-12``, for a run not given one."""
    r = int.from_bytes(os.urandom(4), "big")
    return f"{_ADJECTIVES[r % len(_ADJECTIVES)]}-{_NOUNS[(r >> 8) % len(_NOUNS)]}-{r % 97 + 1}"
