"""The errors and the warning gradexp raises at its users, in one place.

Every layer of the client may import this module: it imports nothing. Catch
:class:`GradexpError` to handle anything gradexp refuses; the subclasses say where it
came from::

    try:
        run = gradexp.init(project="mnist", mode="online")
    except gradexp.GradexpError as exc:
        print(f"not logging this run: {exc}")
"""

from __future__ import annotations

__all__ = ["ApiError", "GradexpError", "GradexpWarning", "LoginError"]


class GradexpError(Exception):
    """A problem the user must fix before gradexp can go on; the message says how."""


class LoginError(GradexpError):
    """Login failed; the message says why and what to do. Nothing was stored."""


class ApiError(GradexpError):
    """The server refused a request of :class:`gradexp.Api`; ``status`` and ``code`` say how."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class GradexpWarning(UserWarning):
    """A value, key or step gradexp had to drop or adjust; the message says which."""
