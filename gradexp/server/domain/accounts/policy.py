"""How long sign-in things live, and how wrong passwords are limited."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    """Lifetimes and limits. Defaults suit a person; the server's settings override some
    from ``GRADEXP_SERVER_*`` environment variables (tests shorten them)."""

    session_idle: float = 7 * 86400.0  # a session unused this long ends
    session_max: float = 30 * 86400.0  # and none lives longer than this
    code_ttl: float = 300.0  # `gradexp login`'s one-time code
    setup_ttl: float = 7 * 86400.0  # the first-run setup link
    link_ttl: float = 86400.0  # a one-time sign-in link
    max_failures: int = 5  # wrong passwords (per user and address) before a lockout
    max_user_failures: int = 20  # wrong passwords for one user, from anywhere, before one
    failure_window: float = 900.0  # failures older than this are forgotten
    lockout_base: float = 30.0  # the first lockout; each later failure doubles it
    lockout_max: float = 900.0
    known_device_ttl: float = 365 * 86400.0  # the "known browser" cookie of sign-in
