"""The HTTP client of the transport: one aiohttp session to one server, with the
protocol's retry policy (``docs/protocol.md``).

Connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and
jitter (cap ``Settings.retry_cap``), honouring ``Retry-After``; any other reply is final
and handed back to the caller, which decides what a 404 or a 409 means.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from gradexp.core.output import say
from gradexp.core.settings import Settings
from gradexp.protocol.wire import VERSION

__all__ = ["Reply", "ServerClient"]


@dataclass
class Reply:
    """A server reply: status, JSON body (or {}), and the Retry-After delay if any."""

    status: int
    body: dict[str, Any]
    retry_after: float | None = None

    @property
    def code(self) -> str:
        """The protocol's machine error code (``run_not_found`` ...), or ''."""
        err = self.body.get("error")
        return str(err.get("code", "")) if isinstance(err, dict) else ""

    @property
    def message(self) -> str:
        """The server's one-line error message, or ''."""
        err = self.body.get("error")
        return str(err.get("message", "")) if isinstance(err, dict) else ""


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


class ServerClient:
    """The aiohttp session to one server, with the protocol's retry policy.

    Lives on one event loop (the stream thread's, or ``gradexp sync``'s); not thread-safe.
    ``on_trouble``/``on_recovered`` print one line when the server becomes unreachable and
    one when it answers again, not one per retry.
    """

    def __init__(self, settings: Settings, *, run_dir: str | None = None) -> None:
        assert settings.base_url is not None
        self.base_url = settings.base_url.rstrip("/")
        self.api_key = settings.api_key or ""
        self.retry_cap = settings.retry_cap
        self.run_dir = run_dir
        self._session: aiohttp.ClientSession | None = None
        self._in_trouble = False
        self.quiet_trouble = False
        #: Bound on retrying one request (None: retry for as long as the run lives).
        self.give_up_after: float | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={
                    "Authorization": f"Bearer {self.api_key}",
                    "User-Agent": f"gradexp/{VERSION}",
                },
                timeout=aiohttp.ClientTimeout(total=300, connect=10, sock_read=120),
                connector=aiohttp.TCPConnector(limit=8, ttl_dns_cache=300),
            )
        return self._session

    async def close(self) -> None:
        """Close the session (idempotent)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def request_once(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One HTTP request; raises aiohttp/OS/timeout errors as they come."""
        body = orjson.dumps(json) if json is not None else data
        hdrs = dict(headers or {})
        if json is not None:
            hdrs["Content-Type"] = "application/json"
        async with self._get_session().request(
            method, self.base_url + path, data=body, headers=hdrs
        ) as resp:
            raw = await resp.read()
            try:
                parsed = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                parsed = {}
            retry_after = None
            header = resp.headers.get("Retry-After")
            if header:
                with contextlib.suppress(ValueError):
                    retry_after = max(0.0, float(header))
            return Reply(resp.status, parsed if isinstance(parsed, dict) else {}, retry_after)

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        data: bytes | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        give_up_after: float | None = None,
    ) -> Reply:
        """A request retried per the protocol until it gets a final answer.

        Returns any 2xx/3xx/4xx reply that is not retryable (the caller decides what a
        404 or 409 means). ``give_up_after`` (seconds) bounds the retrying: after it, the
        last error is raised as ``TimeoutError``.
        """
        attempt = 0
        started = time.monotonic()
        if give_up_after is None:
            give_up_after = self.give_up_after
        while True:
            problem: str
            delay: float | None = None
            paced = False
            try:
                reply = await self.request_once(method, path, data=data, json=json, headers=headers)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                problem = _describe(exc)
            else:
                if not _retryable(reply.status):
                    if self._in_trouble:
                        self._in_trouble = False
                        if not self.quiet_trouble:
                            say(f"{self.base_url} answers again; uploading.")
                    return reply
                problem = f"HTTP {reply.status} {reply.code or ''}".strip()
                delay = reply.retry_after
                # A busy server pacing its writers: nothing is wrong, say nothing.
                paced = reply.code == "slow_down" and delay is not None
            if not self._in_trouble and not paced:
                self._in_trouble = True
                if not self.quiet_trouble:
                    where = f" are kept in {self.run_dir}" if self.run_dir else " are kept on disk"
                    say(f"cannot {what} ({problem}); retrying until it works. Records{where}.")
            if give_up_after is not None and time.monotonic() - started >= give_up_after:
                raise TimeoutError(f"cannot {what}: {problem}")
            if delay is None:
                # Exponential backoff with "equal jitter": half fixed, half random.
                ceiling = min(self.retry_cap, 0.25 * 2**attempt)
                delay = ceiling / 2 + random.uniform(0, ceiling / 2)
            else:
                # Up to a quarter more than asked: writers refused together (a busy
                # server's 429s) come back spread out, not all at once.
                delay = min(delay, self.retry_cap) * random.uniform(1.0, 1.25)
            if give_up_after is not None:
                delay = min(delay, max(0.0, started + give_up_after - time.monotonic()))
            attempt += 1
            await asyncio.sleep(delay)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed: {exc.os_error.strerror or exc.os_error}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
