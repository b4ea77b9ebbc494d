"""Uploading a run: batches read back from the run file, gzip'ed, POSTed with retries.

Used in two places, both on an asyncio loop that owns it:

- the stream thread, live (:class:`LiveSource`: frames appear as the stream writes them);
- ``gradexp sync`` (:class:`FileSource`: a finished or crashed run file, read once).

The records are never re-encoded: a batch body is the records' payload bytes, joined
between ``{"first_seq":..,"last_seq":..,"records":[`` and ``]}``. Batches are read back
from the run file (from the OS page cache while the run is live), so the stream holds no
second copy of what it has written, however long the server is away.

Retries follow ``docs/protocol.md``: connection errors, timeouts, 408, 429 and 5xx are
retried with exponential backoff and jitter (cap ``Settings.retry_cap``), honouring
``Retry-After``, for as long as the run lives; any other 4xx stops the upload with one
clear message (the run file stays for ``gradexp sync``). The server deduplicates by
sequence number, so a retry can never duplicate a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from gradexp.core.credentials import mask_key
from gradexp.core.output import say
from gradexp.core.settings import Settings
from gradexp.protocol.runfile import (
    FRAME,
    FRAME_SIZE,
    HEADER_SIZE,
    RunDir,
    RunFile,
    payload_seq,
)
from gradexp.protocol.wire import API_PREFIX, FILES_DIR, RECORD_TYPES, VERSION

_FILE = RECORD_TYPES["file"]
#: The most sequence numbers a damaged file's gap is filled with (see ``_filler``).
_MAX_GAP = 1_000_000
#: Batches in flight at once: one being committed while the next is compressed and sent.
MAX_IN_FLIGHT = 2


class UploadStopped(Exception):
    """The server refused the run for good (a 4xx other than 408/429): upload stopped."""


# --- HTTP ---------------------------------------------------------------------------------


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
            if not self._in_trouble:
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
                delay = min(delay, self.retry_cap)
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


# --- batches ----------------------------------------------------------------------------


@dataclass
class Frame:
    """One record as read back from the run file."""

    seq: int
    rtype: int
    payload: bytes
    offset: int  # where the frame starts
    end: int  # where the next frame starts


@dataclass
class Batch:
    """A contiguous run of records ``first_seq..last_seq`` to POST together."""

    first_seq: int
    last_seq: int
    payloads: list[Any]  # bytes-like: bytes, or memoryviews into a read of the run file
    files: list[dict[str, Any]] = field(default_factory=list)
    end_offset: int | None = None  # where the frame after last_seq starts (ack hint)
    raw_bytes: int = 0

    def body(self) -> bytes:
        """The JSON body, built by joining the stored payloads (no re-encoding)."""
        return b"".join(
            (
                b'{"first_seq":%d,"last_seq":%d,"records":[' % (self.first_seq, self.last_seq),
                b",".join(self.payloads),
                b"]}",
            )
        )


def _filler(seq: int) -> bytes:
    """A stand-in for a record lost to a damaged run file.

    The server acknowledges only contiguous sequences, so a hole would stall the run for
    ever. The stand-in is a telemetry record counting the loss (counts add up).
    """
    return b'{"seq":%d,"type":"telemetry","lost_records":1}' % seq


class _Source:
    """Where batches come from: frames in sequence order, with one frame of lookahead."""

    def peek(self) -> Frame | None:  # pragma: no cover - interface
        raise NotImplementedError

    def pop(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def rewind(self) -> None:  # pragma: no cover - interface
        """Start again from the first frame (the server knows less than we thought)."""
        raise NotImplementedError


def build_batch(source: _Source, expected: int, max_bytes: int, max_records: int) -> Batch | None:
    """Cut the next batch from ``source``, starting at sequence ``expected``.

    Frames below ``expected`` are skipped (already acknowledged, or duplicates); a hole
    in the sequence (a frame lost to damage) is filled with :func:`_filler` records.
    """
    payloads: list[bytes] = []
    files: list[dict[str, Any]] = []
    size = 0
    first = expected
    end_offset: int | None = None
    while len(payloads) < max_records and size < max_bytes:
        frame = source.peek()
        if frame is None:
            break
        if frame.seq < expected:
            source.pop()
            continue
        if frame.seq > expected:
            if frame.seq - expected > _MAX_GAP:  # not a plausible hole: a bogus frame
                source.pop()
                continue
            payloads.append(_filler(expected))
            expected += 1
            end_offset = frame.offset
            continue
        payloads.append(frame.payload)
        size += len(frame.payload) + 1
        if frame.rtype == _FILE:
            with contextlib.suppress(orjson.JSONDecodeError):
                files.append(orjson.loads(frame.payload))
        expected += 1
        end_offset = frame.end
        source.pop()
    if not payloads:
        return None
    return Batch(first, expected - 1, payloads, files, end_offset, size)


class LiveSource:
    """Frames of the run file that this process's stream is writing.

    The stream calls :meth:`on_written` after each write-through; batches are read back
    with ``os.pread`` (normally from the page cache) up to that offset, never beyond, so
    a half-written frame is never read. The file was written by this process moments ago
    and its frames are contiguous, so a batch is cut by reading frame headers only: the
    sequence numbers are counted, not parsed, and the payloads are sliced, not copied.
    """

    def __init__(self, path: str, start_offset: int, first_seq: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._start = (start_offset, first_seq)
        self.offset = start_offset  # where the next unbatched frame starts
        self.next_seq = first_seq  # ... and its sequence number
        self.written = start_offset  # bytes the writer has handed to the OS
        self.last_seq = first_seq - 1  # the last sequence written
        self._times: deque[tuple[int, float]] = deque()  # (last seq of a write, when)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def on_written(self, written: int, last_seq: int) -> None:
        if last_seq > self.last_seq:
            self._times.append((last_seq, time.monotonic()))
        self.written = written
        self.last_seq = last_seq

    def unsent_records(self) -> int:
        return self.last_seq - self.next_seq + 1

    def unsent_bytes(self) -> int:
        return self.written - self.offset

    def oldest_unsent_at(self) -> float | None:
        """When the oldest record not yet batched was written."""
        times = self._times
        while times and times[0][0] < self.next_seq:
            times.popleft()
        return times[0][1] if times else None

    def rewind(self) -> None:
        """Start again from the first frame of this attempt."""
        self.offset, self.next_seq = self._start

    def next_batch(self, expected: int, max_bytes: int, max_records: int) -> Batch | None:
        """The next batch, from sequence ``expected`` on (earlier frames are skipped)."""
        unpack = FRAME.unpack_from
        while self.next_seq < expected and self.offset < self.written:  # after a rewind
            head = os.pread(self._fd, FRAME_SIZE, self.offset)
            self.offset += FRAME_SIZE + unpack(head, 0)[0]
            self.next_seq += 1
        available = self.written - self.offset
        if available <= 0:
            return None
        data = os.pread(
            self._fd, min(available, max(max_bytes, 64 * 1024) + 64 * 1024), self.offset
        )
        if len(data) < FRAME_SIZE:
            return None
        if FRAME_SIZE + unpack(data, 0)[0] > len(data):  # one frame larger than the read
            data = os.pread(self._fd, FRAME_SIZE + unpack(data, 0)[0], self.offset)
        view = memoryview(data)
        payloads: list[Any] = []
        files: list[dict[str, Any]] = []
        pos = size = 0
        end = len(data)
        while pos + FRAME_SIZE <= end and len(payloads) < max_records and size < max_bytes:
            length, _crc, rtype = unpack(data, pos)
            stop = pos + FRAME_SIZE + length
            if stop > end:
                break
            payload = view[pos + FRAME_SIZE : stop]
            payloads.append(payload)
            if rtype == _FILE:
                with contextlib.suppress(orjson.JSONDecodeError):
                    files.append(orjson.loads(payload))
            size += length + 1
            pos = stop
        if not payloads:
            return None
        first = self.next_seq
        self.next_seq += len(payloads)
        self.offset += pos
        return Batch(first, self.next_seq - 1, payloads, files, self.offset, size)


class FileSource(_Source):
    """Frames of a complete run file (``gradexp sync``), from the ack hint onwards."""

    def __init__(self, run_dir: RunDir, start_offset: int | None = None) -> None:
        self._run_dir = run_dir
        start_offset = HEADER_SIZE if start_offset is None else start_offset
        self._reader = RunFile(run_dir.path)
        self._frames = self._iterate(start_offset)
        self._next: Frame | None = None
        self._done = False

    @property
    def corrupt_frames(self) -> int:
        return self._reader.corrupt_frames

    @property
    def torn_tail_bytes(self) -> int:
        return self._reader.torn_tail_bytes

    def _iterate(self, start: int) -> Iterator[Frame]:
        for offset, rtype, payload, nxt in self._reader.frames(start):
            seq = payload_seq(payload)
            if seq is not None:
                yield Frame(seq, rtype, payload, offset, nxt)

    def peek(self) -> Frame | None:
        if self._next is None and not self._done:
            self._next = next(self._frames, None)
            self._done = self._next is None
        return self._next

    def pop(self) -> None:
        self._next = None

    def rewind(self) -> None:
        self._frames = self._iterate(HEADER_SIZE)
        self._next = None
        self._done = False

    def next_batch(self, expected: int, max_bytes: int, max_records: int) -> Batch | None:
        """The next batch from sequence ``expected`` (see :func:`build_batch`)."""
        return build_batch(self, expected, max_bytes, max_records)


# --- the uploader -----------------------------------------------------------------------


class Uploader:
    """Creates the run on the server and sends its records, in order, until told to stop.

    Runs on one event loop. ``channel`` (live runs only) is where the acknowledged
    sequence is published for the caller's thread; ``progress`` (sync only) is called
    with the acknowledged sequence after each batch.
    """

    def __init__(
        self,
        client: ServerClient,
        run_dir: RunDir,
        meta: dict[str, Any],
        settings: Settings,
        *,
        channel: Any = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.run_dir = run_dir
        self.meta = meta
        self.settings = settings
        self.channel = channel
        self.progress = progress
        self.run_id = str(meta["id"])
        self.source: Any = None
        self.acked_seq = int(meta.get("first_seq", 1)) - 1
        self.ack_offset: int | None = None
        self.stopped: str | None = None  # why the upload stopped for good
        self.sent_records = 0
        self.sent_batches = 0
        self._created = False
        # Two batches in flight that both meet a 404 must not PUT the run concurrently.
        self._create_lock = asyncio.Lock()
        self._data = asyncio.Event()  # set by on_written/add_flush: re-check if a batch is due
        self._flushes: list[tuple[int, Any]] = []  # (target seq, Waiter)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._batches: dict[int, Batch] = {}  # in flight, by first seq
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._uploaded_blobs: set[str] = set()
        self._last_request = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    # --- run creation ---

    def _run_body(self) -> dict[str, Any]:
        keys = ("project", "name", "config", "tags", "notes", "group", "attempt", "host")
        body = {k: self.meta.get(k) for k in keys}
        body["started_at"] = self.meta.get("started_at")
        body["resume"] = bool(self.meta.get("resume"))
        return body

    async def create_run(self, give_up_after: float | None = None) -> dict[str, Any]:
        """PUT the run (idempotent by attempt); returns the server's reply body."""
        async with self._create_lock:
            reply = await self.client.request(
                "PUT",
                f"{API_PREFIX}/runs/{self.run_id}",
                json=self._run_body(),
                what=f"create run {self.run_id} on {self.client.base_url}",
                give_up_after=give_up_after,
            )
            if reply.status not in (200, 201):
                if reply.code == "run_exists":
                    raise UploadStopped(
                        f"the server already has a run {self.run_id} with other records "
                        "(409 run_exists); log to a new id, or pass resume=True to continue it"
                    )
                raise UploadStopped(self._refusal(reply))
            self._created = True
            self._note_ack(int(reply.body.get("acked_seq", 0) or 0), None)
            return reply.body

    def _refusal(self, reply: Reply) -> str:
        detail = f"HTTP {reply.status} {reply.code}".strip()
        if reply.message:
            detail += f": {reply.message}"
        if reply.status == 401:
            detail += (
                f" (key {mask_key(self.client.api_key)}; run `gradexp login` or set "
                "GRADEXP_API_KEY)"
            )
        return f"the server refused run {self.run_id} ({detail})"

    # --- the live loop ---

    def on_written(self, written: int, last_seq: int) -> None:
        """The stream wrote more (stream thread, same loop): maybe a batch is due."""
        self.source.on_written(written, last_seq)
        self._data.set()

    def add_flush(self, target: int, waiter: Any) -> None:
        """Resolve ``waiter`` once ``target`` is acknowledged (False if the upload stops)."""
        if self.stopped is not None:
            waiter.resolve(False)
        elif self.acked_seq >= target:
            waiter.resolve(True)
        else:
            self._flushes.append((target, waiter))
            self._data.set()  # send now, do not wait for the batch interval

    async def run(self) -> None:
        """The live upload: create the run, then send batches as they become due."""
        self._task = asyncio.current_task()
        source: LiveSource = self.source
        try:
            if not self._created:
                await self.create_run()
            self._heartbeat = asyncio.ensure_future(self._heartbeats())
            while True:
                due, wait = self._due(source)
                if not due:
                    self._data.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._data.wait(), wait)
                    continue
                await self._slots.acquire()
                batch = source.next_batch(
                    max(source.next_seq, self.acked_seq + 1),
                    self.settings.batch_bytes,
                    self.settings.batch_records,
                )
                if batch is None:
                    self._slots.release()
                    continue
                self._launch(batch)
        except UploadStopped as exc:
            self._stop(str(exc))
        finally:
            if self._heartbeat is not None:
                self._heartbeat.cancel()

    def _due(self, source: LiveSource) -> tuple[bool, float | None]:
        """Is a batch due now? If not, how long until one is (None: until more is written)."""
        if source.unsent_records() <= 0:
            return False, None
        if self._flushes or (self.channel is not None and self.channel.release):
            return True, 0.0
        if source.unsent_bytes() >= self.settings.batch_bytes:
            return True, 0.0
        if source.unsent_records() >= self.settings.batch_records:
            return True, 0.0
        oldest = source.oldest_unsent_at()
        if oldest is None:
            return True, 0.0
        # The batch interval counts from when the record was logged; it was written up
        # to one write_interval later.
        linger = max(0.0, self.settings.batch_interval - self.settings.write_interval)
        wait = oldest + linger - time.monotonic()
        return (wait <= 0, max(wait, 0.0))

    def _launch(self, batch: Batch) -> None:
        self._batches[batch.first_seq] = batch
        task = asyncio.ensure_future(self._send_guarded(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _send_guarded(self, batch: Batch) -> None:
        try:
            await self.send_batch(batch)
        except UploadStopped as exc:
            self._stop(str(exc))
            if self._task is not None:
                self._task.cancel()
        finally:
            self._slots.release()
            self._batches.pop(batch.first_seq, None)

    # --- sending one batch ---

    async def send_batch(self, batch: Batch) -> None:
        """Upload the batch's blobs, then POST it, until the server commits it."""
        for info in batch.files:
            await self._upload_blob(info)
        loop = asyncio.get_running_loop()
        # gzip in the executor: zlib releases the GIL, and the loop keeps serving.
        body = await loop.run_in_executor(None, _gzip, batch.body())
        path = f"{API_PREFIX}/runs/{self.run_id}/records"
        repairs = 0
        while True:
            reply = await self.client.request(
                "POST",
                path,
                data=body,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                what=f"upload run {self.run_id} to {self.client.base_url}",
            )
            self._last_request = time.monotonic()
            if reply.status == 200:
                break
            repairs += 1  # a server that keeps asking for the same repair is refusing
            if reply.status == 404 and reply.code == "run_not_found" and repairs <= 3:
                self._created = False
                await self.create_run()  # the server lost the run (or never had it)
                continue
            if reply.status == 409 and reply.code == "blob_missing" and repairs <= 3:
                self._uploaded_blobs.clear()  # it lost a blob: HEAD and PUT them again
                for info in batch.files:
                    await self._upload_blob(info)
                continue
            raise UploadStopped(self._refusal(reply))
        self.sent_batches += 1
        self.sent_records += batch.last_seq - batch.first_seq + 1
        acked = int(reply.body.get("acked_seq", batch.last_seq) or 0)
        self._note_ack(acked, batch.end_offset if acked == batch.last_seq else None)
        earlier = [first for first in self._batches if first < batch.first_seq]
        if acked < batch.first_seq - 1 and not earlier and self.source is not None:
            # The server has less than this batch assumed, and no earlier batch is on
            # its way (a server restored from a backup?): send again from what it has.
            # It drops what it already holds, so nothing is duplicated.
            self.acked_seq = acked
            self.source.rewind()

    async def _upload_blob(self, info: dict[str, Any]) -> None:
        sha = str(info.get("sha256", ""))
        if not sha or sha in self._uploaded_blobs:
            return
        url = f"{API_PREFIX}/runs/{self.run_id}/blobs/{sha}"
        what = f"upload a file of run {self.run_id} to {self.client.base_url}"
        head = await self.client.request("HEAD", url, what=what)
        if head.status == 200:
            self._uploaded_blobs.add(sha)
            return
        if head.status == 404 and head.code == "run_not_found":
            await self.create_run()
        elif head.status not in (404, 405):
            raise UploadStopped(self._refusal(head))
        local = os.path.join(self.run_dir.path, FILES_DIR, os.path.basename(str(info["path"])))
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(None, _read_file, local)  # executor thread
        except OSError as exc:
            raise UploadStopped(
                f"file {local} of run {self.run_id} cannot be read ({exc.strerror})"
            ) from None
        content_type = str(info.get("content_type") or "application/octet-stream")
        put = await self.client.request(
            "PUT", url, data=data, headers={"Content-Type": content_type}, what=what
        )
        if put.status not in (200, 201):
            raise UploadStopped(self._refusal(put))
        self._uploaded_blobs.add(sha)

    # --- acknowledgements ---

    def _note_ack(self, acked: int, offset: int | None) -> None:
        if acked <= self.acked_seq and offset is None:
            return
        if acked > self.acked_seq:
            self.acked_seq = acked
            self.ack_offset = offset
        elif acked == self.acked_seq and offset is not None:
            self.ack_offset = offset
        if self.channel is not None:
            self.channel.acked_seq = max(self.channel.acked_seq, acked)
        try:
            self.run_dir.write_ack(self.acked_seq, self.ack_offset)
        except OSError as exc:  # the ack is an optimisation for sync; never fatal
            say(f"could not update {self.run_dir.path}/ack.json ({exc.strerror})")
        if self._flushes:
            keep = []
            for target, waiter in self._flushes:
                if target <= self.acked_seq:
                    waiter.resolve(True)
                else:
                    keep.append((target, waiter))
            self._flushes = keep
        if self.progress is not None:
            self.progress(self.acked_seq)

    def _stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
            if self.channel is not None:
                self.channel.upload_error = reason
                say(
                    f"upload stopped: {reason}. The run file stays in {self.run_dir.path}; "
                    f"fix this, then run: gradexp sync {self.run_dir.path}"
                )
        for _, waiter in self._flushes:
            waiter.resolve(False)
        self._flushes.clear()

    async def _heartbeats(self) -> None:
        interval = self.settings.heartbeat_interval
        while True:
            await asyncio.sleep(min(interval, 5.0))
            if time.monotonic() - self._last_request < interval or not self._created:
                continue
            self._last_request = time.monotonic()
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                reply = await self.client.request_once(
                    "POST", f"{API_PREFIX}/runs/{self.run_id}/heartbeat", json={}
                )
                if reply.status == 200:
                    self._note_ack(int(reply.body.get("acked_seq", 0) or 0), None)

    async def stop(self) -> None:
        """Stop sending (the stream is letting go of the run); persist the ack; close."""
        tasks = [t for t in (self._task, self._heartbeat, *self._in_flight) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for _, waiter in self._flushes:
            waiter.resolve(False)
        self._flushes.clear()
        if isinstance(self.source, LiveSource):
            self.source.close()
        await self.client.close()

    # --- sync: one complete file ---

    async def upload_file(self, source: FileSource) -> None:
        """Send every record of a complete run file (``gradexp sync``), in order."""
        self.source = source
        if not self._created:
            await self.create_run()
        failures: list[BaseException] = []

        async def send(batch: Batch) -> None:
            try:
                await self.send_batch(batch)
            except BaseException as exc:
                failures.append(exc)
            finally:
                self._slots.release()
                self._batches.pop(batch.first_seq, None)

        for _ in range(3):  # a rewind (the server knows less than we thought) restarts
            expected = self.acked_seq + 1
            while not failures:
                await self._slots.acquire()
                batch = source.next_batch(
                    expected, self.settings.batch_bytes, self.settings.batch_records
                )
                if batch is None:
                    self._slots.release()
                    break
                expected = batch.last_seq + 1
                self._batches[batch.first_seq] = batch
                task = asyncio.ensure_future(send(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if self._in_flight:
                await asyncio.gather(*list(self._in_flight))
            if failures:
                raise failures[0]
            if self.acked_seq >= expected - 1:
                return
            source.rewind()
        raise UploadStopped(
            f"the server does not acknowledge run {self.run_id} past {self.acked_seq}"
        )


def _gzip(data: bytes) -> bytes:
    """gzip at level 1: JSON shrinks ~5-10x even so, and it is several times faster than 6."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
