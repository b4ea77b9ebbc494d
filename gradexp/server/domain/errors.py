"""What the domain refuses, and why: one exception class per kind of refusal, no HTTP.

Domain code raises these; the HTTP layer maps each class to a status and renders the
protocol's JSON error body in one place (``gradexp.server.http.errors``); the CLI prints
the message. Each error carries:

- ``message``: one line for a person: what happened and what to do;
- ``code``: the machine-readable code clients see in the error body (``run_not_found``,
  ``bad_batch``...), defaulting to the class's own;
- ``extra``: more fields for the error body (the ``sha256`` list of missing blobs).

They pickle whole, so a decode worker process can hand a refusal back unchanged.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal: a message for a person, a code for programs, and optional extra fields."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.code, self.extra))


def _rebuild(cls: type[DomainError], message: str, code: str, extra: dict[str, Any]) -> Any:
    return cls(message, code=code, **extra)


class Invalid(DomainError):
    """The input is malformed or breaks a rule (a bad batch, a bad name, a bad parameter)."""

    code = "bad_request"


class Unauthorized(DomainError):
    """The credentials given are wrong (a wrong user name or password)."""

    code = "unauthorized"


class Forbidden(DomainError):
    """The caller may not do this (another user's run id)."""

    code = "forbidden"


class NotFound(DomainError):
    """No such thing, or not the caller's (the two read the same, so ids cannot be probed)."""

    code = "not_found"


class Conflict(DomainError):
    """The request contradicts what is stored (a run that exists, a user name taken)."""

    code = "conflict"


class Gone(DomainError):
    """A one-time thing that was used up or expired (a setup or sign-in link)."""

    code = "gone"


class TooLarge(DomainError):
    """Past a size limit (a body that inflates too far, a tensor too big to view)."""

    code = "payload_too_large"


class Unprocessable(DomainError):
    """Well-formed, but not something this can work with (a file that is not a ``.npy``)."""

    code = "unprocessable"


class RateLimited(DomainError):
    """Too many tries: wait before trying again (repeated wrong passwords)."""

    code = "rate_limited"
