"""``wandb.util``: the helper scripts reach for (``generate_id`` for resumable runs)."""

from __future__ import annotations

__all__ = ["generate_id"]


def generate_id(length: int = 8) -> str:
    """A new random run id: ``length`` lowercase letters and digits (a valid run id)."""
    from gradexp.sdk.ids import random_id

    return random_id(max(1, min(int(length), 24)))
