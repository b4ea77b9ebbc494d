"""Credentials that just died, told at once to whoever listens in this process.

Revoking a key, signing out and changing a password are rows changed in the database, so
every server process refuses the dead credential on its next request. Live streams are
different: they authenticated once, when they opened. The functions that kill a credential
(``revoke_user_key``, ``end_session``, ``set_password``) publish what died to the
process's :class:`Revocations` right after their commit, and the live hub
(``domain/live``), which listens, ends the streams opened with it. Other processes learn it
from the database, where the hub re-checks its streams' credentials every few seconds.

Everything runs on the server's event loop: listeners are plain functions, called in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("gradexp.server")

# Why a credential died: the reasons a live stream's last event gives.
KEY_REVOKED = "key_revoked"
SIGNED_OUT = "signed_out"
PASSWORD_CHANGED = "password_changed"
SESSION_EXPIRED = "session_expired"
# Not a credential: someone's access to some projects changed (a team member removed or
# demoted, a project made private, a share link revoked). The hub re-checks every open
# stream's reach at once; the streams that lost it end with ACCESS_REMOVED.
ACCESS_CHANGED = "access_changed"
ACCESS_REMOVED = "access_removed"


@dataclass(frozen=True)
class CredentialsEnded:
    """What died and why: some API keys, some sessions, or every session of one user."""

    reason: str
    key_ids: frozenset[int] = frozenset()
    session_ids: frozenset[int] = frozenset()
    user_id: int | None = None  # every session of this user (a password change)


class Revocations:
    """The process's listeners for dead credentials (``AppState.revocations``)."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[CredentialsEnded], None]] = []

    def listen(self, listener: Callable[[CredentialsEnded], None]) -> None:
        """Call ``listener`` with every :class:`CredentialsEnded` published from now on."""
        self._listeners.append(listener)

    def publish(self, ended: CredentialsEnded) -> None:
        """Tell every listener (after the change is committed)."""
        for listener in self._listeners:
            _tell(listener, ended)


def _tell(listener: Callable[[CredentialsEnded], None], ended: CredentialsEnded) -> None:
    try:
        listener(ended)
    except Exception:  # a listener's bug must not fail the sign-out that called it
        log.exception("a listener for ended credentials failed")
