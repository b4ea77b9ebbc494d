"""A load generator that speaks the wire protocol: many runs, each sending a small batch
every second, to any of several server processes, while a project live stream is open.

Used by ``benchmarks/bench_load.py`` (the table for several levels) and by
``tests/server/test_load_small.py`` (a small level, checked for exactness and pacing).

Each run produces ``rows_per_second`` history rows of 2 scalars, and sends what it has
produced once per interval (1 s, or the ``batch_interval`` the server's reply asks for:
then fewer, larger batches, as the SDK does), gzip'ed, to a server picked at random. A
refused batch (429 ``slow_down``) is sent again after ``Retry-After``, and a paced run
waits its interval, each with the SDK's jitter.
Exactness is checked in the database itself: every row exactly once, the run's ack at its
last sequence. The live stream (opened before the load, on one server) must have seen
every row exactly once.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson


@dataclass
class RunLoad:
    """One generated run: what it sent and what the server said."""

    run_id: str
    seq: int = 0  # the last sequence sent and acknowledged
    interval: float = 1.0
    latencies: list[float] = field(default_factory=list)  # accepted batches, seconds
    sent_at: list[float] = field(default_factory=list)  # when each of those was sent
    batches: int = 0
    refused: int = 0
    max_interval: float = 1.0
    errors: list[str] = field(default_factory=list)  # connection errors, each sent again


@dataclass
class LoadResult:
    """What one level of load did."""

    runs: list[RunLoad]
    seconds: float  # the level's length; runs whose last batch was refused go on past it
    live_rows: dict[str, list[int]]  # run id -> the sequences the live stream delivered
    exact: bool = False
    live_exact: bool = False
    problems: list[str] = field(default_factory=list)
    elapsed: float = 0.0  # until every run's last batch was accepted
    live_ends: list[str] = field(default_factory=list)  # the stream's ends, each resumed
    # How late the generator's own event loop woke from a 20 ms sleep, each time, in
    # seconds: part of every latency it measures (a busy generator inflates them).
    generator_lags: list[float] = field(default_factory=list)

    started: float = 0.0  # time.monotonic() when the first run started
    ramp: float = 1.0  # the runs started spread over this many seconds

    @property
    def latencies(self) -> list[float]:
        return sorted(t for r in self.runs for t in r.latencies)

    def percentile(self, p: float, steady: bool = False) -> float:
        """Of the accepted batches' latencies; ``steady``: only of those sent once every
        run had started (after the ramp), when the load is what the level says."""
        if steady:
            after = self.started + self.ramp
            lat = sorted(
                t
                for r in self.runs
                for t, at in zip(r.latencies, r.sent_at, strict=True)
                if at >= after
            )
        else:
            lat = self.latencies
        return _pick(lat, p)

    def generator_lag(self, p: float) -> float:
        """A percentile of the generator's loop lag (seconds)."""
        return _pick(sorted(self.generator_lags), p)

    @property
    def accepted(self) -> int:
        return sum(r.batches for r in self.runs)

    @property
    def refused(self) -> int:
        return sum(r.refused for r in self.runs)

    @property
    def due(self) -> int:
        """Batches due at one a second per run (what an unpaced load would send; a run
        starts on average half the ramp late)."""
        return int(len(self.runs) * (self.seconds - self.ramp / 2))

    @property
    def rows(self) -> int:
        return sum(r.seq for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(len(r.errors) for r in self.runs)

    @property
    def paced_runs(self) -> int:
        return sum(1 for r in self.runs if r.max_interval > 1.0)

    @property
    def max_interval(self) -> float:
        return max((r.max_interval for r in self.runs), default=1.0)


def _pick(ordered: list[float], p: float) -> float:
    """Percentile ``p`` of sorted values (NaN for none)."""
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


def _body(first: int, n: int, now: float) -> bytes:
    records = [
        {
            "seq": seq,
            "type": "history",
            "step": seq - 1,
            "time": now,
            "values": {"loss": 1.0 / seq, "acc": (seq % 100) / 100.0},
        }
        for seq in range(first, first + n)
    ]
    body = {"first_seq": first, "last_seq": first + n - 1, "records": records}
    return gzip.compress(orjson.dumps(body), compresslevel=1)


async def _send_run(
    session: aiohttp.ClientSession,
    urls: list[str],
    run: RunLoad,
    until: float,
    rows_per_second: int,
    ramp: float,
) -> None:
    await asyncio.sleep(random.random() * ramp)  # runs start spread over the ramp
    last = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= until:
            return
        wait = last + run.interval - now
        if wait > 0:
            await asyncio.sleep(wait)
        now = time.monotonic()
        n = max(1, round((now - last) * rows_per_second))  # what was produced meanwhile
        last = now
        body = _body(run.seq + 1, n, time.time())
        while True:
            url = random.choice(urls)
            started = time.monotonic()
            try:
                status, reply, retry_after = await _post(session, url, run.run_id, body)
            except (aiohttp.ClientError, OSError) as exc:
                # A kept-alive connection the server had just closed, say: send again, as
                # the SDK does (the server drops what it already has).
                run.errors.append(type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if status == 429:
                run.refused += 1
                await asyncio.sleep(retry_after * random.uniform(1.0, 1.25))  # as the SDK
                continue
            if status != 200:
                raise RuntimeError(f"run {run.run_id}: HTTP {status} {reply}")
            run.latencies.append(time.monotonic() - started)
            run.sent_at.append(started)
            run.batches += 1
            run.seq += n
            if reply["acked_seq"] != run.seq:
                raise RuntimeError(f"run {run.run_id}: acked {reply['acked_seq']}, sent {run.seq}")
            floor = float(reply.get("batch_interval") or 0.0)
            # As the SDK does (transport/uploader.py): a paced interval, up to a fifth more.
            run.interval = max(1.0, floor * random.uniform(1.0, 1.2))
            run.max_interval = max(run.max_interval, run.interval)
            break


async def _post(
    session: aiohttp.ClientSession, url: str, run_id: str, body: bytes
) -> tuple[int, Any, float]:
    """POST one batch: (status, reply, Retry-After seconds)."""
    async with session.post(
        f"{url}/api/v1/runs/{run_id}/records",
        data=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    ) as resp:
        reply = orjson.loads(await resp.read())
        return resp.status, reply, float(resp.headers.get("Retry-After", "1"))


async def _follow(
    session: aiohttp.ClientSession,
    url: str,
    owner: str,
    project: str,
    seen: dict[str, list[int]],
    ready: asyncio.Event,
    ends: list[str],
) -> None:
    """Read the project's live stream: every row's sequence, by run. As a browser does, a
    stream that ends (``event: end``, ``too_slow`` when this reader fell behind on a busy
    machine) or drops is opened again from the last event id; ``ends`` gets why."""
    last_id: str | None = None
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        async with session.get(
            f"{url}/api/v1/projects/{owner}/{project}/events",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"live stream: HTTP {resp.status}")
            event, data, event_id, reason = "", b"", None, "dropped"
            async for line in resp.content:
                line = line.rstrip(b"\n")
                if line.startswith(b": ready"):
                    ready.set()
                elif line.startswith(b"event: "):
                    event = line[7:].decode()
                elif line.startswith(b"data: "):
                    data += line[6:]
                elif line.startswith(b"id: "):
                    event_id = line[4:].decode()
                elif not line:
                    if event == "rows" and data:
                        doc = orjson.loads(data)
                        seen.setdefault(doc["run_id"], []).extend(r["_seq"] for r in doc["rows"])
                    elif event == "end" and data:
                        reason = str(orjson.loads(data).get("reason"))
                    if event_id is not None:
                        last_id = event_id
                    event, data, event_id = "", b"", None
        ends.append(reason)


async def _watch_lag(lags: list[float], period: float = 0.02) -> None:
    """Record how late this event loop wakes from ``period``-second sleeps."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(period)
        lags.append(max(0.0, time.monotonic() - before - period))


async def generate(
    urls: list[str],
    key: str,
    owner: str,
    project: str,
    runs: int,
    seconds: float,
    *,
    live_url: str | None = None,
    db_url: str | None = None,
    rows_per_second: int = 10,
    ramp: float = 1.0,
) -> LoadResult:
    """One level of load: ``runs`` runs for ``seconds`` seconds; then the checks.

    ``live_url``: the server whose project stream is followed (default: the last one);
    ``ramp``: the runs start spread over this many seconds (part of ``seconds``);
    ``db_url``: the PostgreSQL database to check exactness in (asyncpg), if any.
    """
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
    tag = f"{random.getrandbits(32):08x}"
    loads = [RunLoad(f"load{tag}{i:05d}") for i in range(runs)]
    seen: dict[str, list[int]] = {}
    ends: list[str] = []  # why the live stream ended, each time it was opened again
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        gate = asyncio.Semaphore(32)

        async def create(run: RunLoad) -> None:
            async with (
                gate,
                session.put(
                    f"{random.choice(urls)}/api/v1/runs/{run.run_id}",
                    json={"project": project, "name": run.run_id, "attempt": "a"},
                ) as resp,
            ):
                if resp.status not in (200, 201):
                    raise RuntimeError(f"create {run.run_id}: HTTP {resp.status}")

        await asyncio.gather(*(create(r) for r in loads))
        ready = asyncio.Event()
        follower = asyncio.ensure_future(
            _follow(session, live_url or urls[-1], owner, project, seen, ready, ends)
        )
        await asyncio.wait_for(ready.wait(), 60)
        started = time.monotonic()
        until = started + seconds
        lags: list[float] = []
        monitor = asyncio.ensure_future(_watch_lag(lags))
        await asyncio.gather(
            *(_send_run(session, urls, r, until, rows_per_second, ramp) for r in loads)
        )
        elapsed = time.monotonic() - started
        monitor.cancel()
        # The live stream catches up (it polls; other processes' rows come by the database).
        sent = sum(r.seq for r in loads)
        for _ in range(300):  # at most a minute
            if sum(map(len, seen.values())) >= sent:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # a duplicate would come now, if any
        follower.cancel()
        try:
            await follower
        except (asyncio.CancelledError, aiohttp.ClientError):
            pass
    result = LoadResult(
        runs=loads,
        seconds=seconds,
        live_rows=seen,
        elapsed=elapsed,
        started=started,
        ramp=ramp,
        live_ends=ends,
        generator_lags=lags,
    )
    result.live_exact = all(seen.get(r.run_id, []) == list(range(1, r.seq + 1)) for r in loads)
    if not result.live_exact:
        bad = [r for r in loads if seen.get(r.run_id, []) != list(range(1, r.seq + 1))]
        result.problems.append(
            f"live stream: {len(bad)} runs differ (e.g. {bad[0].run_id}: "
            f"{len(seen.get(bad[0].run_id, []))} rows seen, {bad[0].seq} sent)"
        )
    if db_url is not None:
        result.exact = await _check_database(db_url, loads, result.problems)
    return result


async def _check_database(db_url: str, loads: list[RunLoad], problems: list[str]) -> bool:
    """Every row exactly once, and each run's ack at its last sequence (PostgreSQL)."""
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        found: dict[str, Any] = {
            row["id"]: row
            for row in await conn.fetch(
                "SELECT r.id, r.acked_seq, COUNT(h.seq) AS n, COUNT(DISTINCT h.seq) AS d, "
                "COALESCE(MAX(h.seq), 0) AS top FROM runs r LEFT JOIN history h "
                "ON h.run_pk = r.pk WHERE r.id = ANY($1::text[]) GROUP BY r.id, r.acked_seq",
                [r.run_id for r in loads],
            )
        }
    finally:
        await conn.close()
    ok = True
    for run in loads:
        row = found.get(run.run_id)
        want = (run.seq, run.seq, run.seq, run.seq)
        got = None if row is None else (row["acked_seq"], row["n"], row["d"], row["top"])
        if got != want:
            ok = False
            problems.append(f"run {run.run_id}: (acked, rows, distinct, last) {got} != {want}")
            break
    return ok
