"""Alerts: read back for the run page, and posted to the server's webhook.

A run's ``alert`` records are stored at ingest (``alerts`` table, see
``run_records.py``). When the server has a webhook (``--alert-webhook-url``,
``GRADEXP_ALERT_WEBHOOK_URL``), each committed alert is also POSTed there as JSON by
:class:`AlertSender`, off the request path:

- the ingest request only puts the alert in a bounded queue (at most
  ``QUEUE_SIZE``; past it, new alerts are dropped and logged, never waited for);
- one task per process delivers them in order: each POST has ``TIMEOUT`` seconds, and a
  connection error, a timeout, a 429 or a 5xx is retried ``TRIES - 1`` times with
  backoff; another status is logged and dropped;
- at most ``RATE`` alerts per run per minute are sent (a token bucket per run, bounded
  to ``MAX_RUNS`` runs); the rest are logged and stay on the run page.

Only the process that committed an alert sends it (a replayed batch commits nothing new),
so several server processes never send one alert twice. An alert still queued when the
process stops is not sent; it stays on the run page.

The body is ``{"text": ..., "alert": {...}, "run": {...}}``: ``text`` is one line for
chat tools that read that field (Slack and Mattermost incoming webhooks), the rest is
for programs (docs/server.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.server.storage import schema as s

log = logging.getLogger("gradexp.server")

__all__ = ["AlertSender", "list_alerts", "webhook_body"]

MAX_LISTED = 1000  # alerts the run page gets (the latest)


async def list_alerts(conn: AsyncConnection, run_pk: int) -> list[dict[str, Any]]:
    """The run's latest alerts (at most ``MAX_LISTED``), oldest first."""
    a = s.alerts
    rows = (
        await conn.execute(
            select(a.c.seq, a.c.time, a.c.level, a.c.title, a.c.text)
            .where(a.c.run_pk == run_pk)
            .order_by(a.c.seq.desc())
            .limit(MAX_LISTED)
        )
    ).all()
    return [
        {"seq": r.seq, "time": r.time, "level": r.level, "title": r.title, "text": r.text}
        for r in reversed(rows)
    ]


def webhook_body(alert: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """What the webhook receives for one alert of ``run`` (a run object's id, name,
    project, owner and url)."""
    line = f"[{alert['level']}] {alert['title']}: {alert['text']}".strip().rstrip(":")
    return {
        "text": f"{line} (run {run['name']}, {run['owner']}/{run['project']}: {run['url']})",
        "alert": {k: alert[k] for k in ("title", "text", "level", "time")},
        "run": {k: run[k] for k in ("id", "name", "project", "owner", "url")},
    }


class _Buckets:
    """Per-run token buckets: ``rate`` alerts a minute, bursts up to ``rate``."""

    def __init__(self, rate: int, max_runs: int) -> None:
        self.rate = rate
        self.max_runs = max_runs
        self._runs: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, time

    def take(self, run_id: str, now: float) -> bool:
        tokens, then = self._runs.pop(run_id, (float(self.rate), now))
        tokens = min(float(self.rate), tokens + (now - then) * self.rate / 60.0)
        ok = tokens >= 1.0
        self._runs[run_id] = (tokens - 1.0 if ok else tokens, now)
        if len(self._runs) > self.max_runs:
            self._runs.popitem(last=False)
        return ok


class AlertSender:
    """Delivers alerts to one webhook URL (see the module docstring); a no-op without one.

    Lives in the app's state; ``close()`` stops the delivery task at shutdown. Used only
    on the event loop's thread.
    """

    QUEUE_SIZE = 1000
    TIMEOUT = 10.0
    TRIES = 4
    BACKOFF = 1.0  # seconds before the first retry; doubled for each one after
    RATE = 10  # per run per minute
    MAX_RUNS = 10_000

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._buckets = _Buckets(self.RATE, self.MAX_RUNS)
        self.sent = 0  # delivered (for tests and logs)
        self.failed = 0

    def send(self, body: dict[str, Any]) -> None:
        """Queue one webhook body (never waits); starts the delivery task on first use."""
        if not self.url:
            return
        run_id = str(body["run"]["id"])
        if not self._buckets.take(run_id, time.monotonic()):
            log.warning(
                "alert of run %s not sent to the webhook: over %d a minute", run_id, self.RATE
            )
            return
        if self._queue is None:
            self._queue = asyncio.Queue(self.QUEUE_SIZE)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._deliver(), name="alerts")
        try:
            self._queue.put_nowait(body)
        except asyncio.QueueFull:
            log.warning("alert of run %s not sent: %d alerts wait already", run_id, self.QUEUE_SIZE)

    async def _deliver(self) -> None:
        import aiohttp

        assert self._queue is not None and self.url is not None
        timeout = aiohttp.ClientTimeout(total=self.TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                body = await self._queue.get()
                try:
                    await self._post(session, body)
                finally:
                    self._queue.task_done()

    async def _post(self, session: Any, body: dict[str, Any]) -> None:
        import aiohttp

        assert self.url is not None
        delay = self.BACKOFF
        for attempt in range(1, self.TRIES + 1):
            try:
                async with session.post(self.url, json=body) as resp:
                    await resp.read()
                    if resp.status < 300:
                        self.sent += 1
                        return
                    if resp.status != 429 and resp.status < 500:
                        self.failed += 1
                        log.warning("alert webhook refused an alert: HTTP %d", resp.status)
                        return
                    reason = f"HTTP {resp.status}"
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                reason = type(exc).__name__
            if attempt == self.TRIES:
                break
            await asyncio.sleep(delay)
            delay *= 2
        self.failed += 1
        log.warning(
            "alert webhook unreachable after %d tries (%s): alert dropped", self.TRIES, reason
        )

    async def join(self) -> None:
        """Wait until every queued alert was delivered or given up (tests)."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        """Stop delivering (alerts still queued stay on the run pages only)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
