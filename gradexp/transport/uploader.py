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

Before a batch is POSTed, the files its records name (run files, artifact files) are
sent: :class:`~gradexp.transport.run_files.RunFileUploads`, a base class of
:class:`Uploader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import zlib
from collections.abc import Callable
from typing import Any

import aiohttp

from gradexp.core.credentials import mask_key
from gradexp.core.output import say
from gradexp.core.settings import Settings
from gradexp.protocol.runfile import RunDir
from gradexp.protocol.wire import API_PREFIX, RECORD_TYPES
from gradexp.transport.base import Batch, BatchSource, UploadListener
from gradexp.transport.client import Reply, ServerClient
from gradexp.transport.refusals import RUN_DELETED, UploadStopped
from gradexp.transport.run_files import RunFileUploads
from gradexp.transport.sources import FileSource, LiveSource

__all__ = ["LEGACY_RECORD_TYPES", "MAX_IN_FLIGHT", "UploadStopped", "Uploader"]

#: Batches in flight at once: one being committed while the next is compressed and sent.
MAX_IN_FLIGHT = 2
#: What a server that does not say what it accepts takes: the types every server knows.
LEGACY_RECORD_TYPES = frozenset(
    ("history", "config", "summary", "file", "finish", "telemetry", "metric", "alert")
)
#: Pacing (the ingest reply's ``watched`` and ``batch_interval``, docs/protocol.md): a
#: watched run sends this often, so a log() is drawn within ~300 ms of the call ...
WATCHED_INTERVAL = 0.1
#: ... a run nobody watches this many times its ``batch_interval`` ...
UNWATCHED_STRETCH = 2.0
#: ... and a busy server may ask for at most this many seconds between batches.
MAX_PACED_INTERVAL = 30.0


class Uploader(RunFileUploads):
    """Creates the run on the server and sends its records, in order, until told to stop.

    Runs on one event loop. ``listener`` (live runs only: the stream's channel) is where
    the acknowledged sequence is published for the caller's thread; ``progress`` (sync
    only) is called with the acknowledged sequence after each batch. ``source`` is the
    :class:`BatchSource` batches are cut from: a :class:`LiveSource` set by the stream
    once the run file exists, or the :class:`FileSource` given to :meth:`upload_file`.
    """

    def __init__(
        self,
        client: ServerClient,
        run_dir: RunDir,
        meta: dict[str, Any],
        settings: Settings,
        *,
        listener: UploadListener | None = None,
        progress: Callable[[int], None] | None = None,
        file_progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.client = client
        self.run_dir = run_dir
        self.meta = meta
        self.settings = settings
        self.listener = listener
        self.progress = progress
        self.file_progress = file_progress
        self.run_id = str(meta["id"])
        # A distributed run's other writers name their rank on every request (protocol.md,
        # "Writers"); rank 0 sends nothing, as every client did before writers.
        self.rank = int((meta.get("writer") or {}).get("rank", 0))
        self._writer_query = f"?writer={self.rank}" if self.rank else ""
        # Frame types the server does not accept (learnt from its reply to the PUT): kept
        # in the run file, sent as stand-ins (``base.skipped``), said once per type.
        self.skip: frozenset[int] = frozenset()
        self._said_skipped: set[str] = set()
        self.source: BatchSource | None = None
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
        #: Seconds a record may wait for its batch: ``batch_interval`` until the server
        #: says otherwise (``_pace``), then what its last reply asked for.
        self.interval = settings.batch_interval
        self.watched: bool | None = None  # as the last reply said (None: not told)

    # --- run creation ---

    def _run_body(self) -> dict[str, Any]:
        keys = (
            "project",
            "entity",
            "name",
            "config",
            "tags",
            "notes",
            "group",
            "job_type",
            "attempt",
            "host",
        )
        body = {k: self.meta.get(k) for k in keys}
        body["started_at"] = self.meta.get("started_at")
        body["resume"] = bool(self.meta.get("resume"))
        if self.meta.get("writer"):
            body["writer"] = self.meta["writer"]
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
            self._learn_accepts(reply.body.get("accepts"))
            self._created = True
            self._note_ack(int(reply.body.get("acked_seq", 0) or 0), None)
            return reply.body

    def _learn_accepts(self, accepts: Any) -> None:
        """What the server takes (absent: an older server, which knows the legacy types
        and one writer per run)."""
        accepts = accepts if isinstance(accepts, dict) else {}
        names = accepts.get("record_types")
        known = frozenset(names) if isinstance(names, list) else LEGACY_RECORD_TYPES
        self.skip = frozenset(code for name, code in RECORD_TYPES.items() if name not in known)
        if self.rank and accepts.get("writers") is not True:
            raise UploadStopped(
                f"the server at {self.client.base_url} keeps one writer per run, so rank "
                f"{self.rank} of run {self.run_id} is not uploaded (rank 0 is); upgrade the "
                "server, or log with init(ranks='zero')"
            )

    def _refusal(self, reply: Reply) -> str:
        if reply.code == "run_deleted":
            return RUN_DELETED
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
        source = self.source
        assert isinstance(source, LiveSource)  # a live upload reads a live source
        source.on_written(written, last_seq)
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
        source = self.source
        assert isinstance(source, LiveSource)  # set by the stream before run() starts
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
                    self.skip,
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
        if self._flushes or (self.listener is not None and self.listener.release):
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
        linger = max(0.0, self.interval - self.settings.write_interval)
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
        await self._upload_artifacts(batch)
        for name in batch.skipped:
            if name not in self._said_skipped:
                self._said_skipped.add(name)
                say(
                    f"the server at {self.client.base_url} does not take {name} records "
                    f"(an older server): they stay in {self.run_dir.path} and are not uploaded"
                )
        loop = asyncio.get_running_loop()
        # gzip in the executor: zlib releases the GIL, and the loop keeps serving.
        body = await loop.run_in_executor(None, _gzip, batch.body())
        path = f"{API_PREFIX}/runs/{self.run_id}/records{self._writer_query}"
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
                await self._upload_artifacts(batch)
                continue
            raise UploadStopped(self._refusal(reply))
        self.sent_batches += 1
        self.sent_records += batch.last_seq - batch.first_seq + 1
        self._pace(reply.body)
        acked = int(reply.body.get("acked_seq", batch.last_seq) or 0)
        self._note_ack(acked, batch.end_offset if acked == batch.last_seq else None)
        earlier = [first for first in self._batches if first < batch.first_seq]
        if acked < batch.first_seq - 1 and not earlier and self.source is not None:
            # The server has less than this batch assumed, and no earlier batch is on
            # its way (a server restored from a backup?): send again from what it has.
            # It drops what it already holds, so nothing is duplicated.
            self.acked_seq = acked
            self.source.rewind()

    def _pace(self, body: dict[str, Any]) -> None:
        """Follow the server's pacing: a watched run sends every ``WATCHED_INTERVAL``, one
        nobody watches ``UNWATCHED_STRETCH`` times less often than ``batch_interval``, and
        never more often than the server's ``batch_interval`` floor (a busy server's; at
        most ``MAX_PACED_INTERVAL``). A server that says nothing leaves the settings'."""
        watched = body.get("watched")
        if type(watched) is not bool:
            return
        own = self.settings.batch_interval
        interval = min(own, WATCHED_INTERVAL) if watched else own * UNWATCHED_STRETCH
        floor = body.get("batch_interval")
        if isinstance(floor, (int, float)) and floor > interval:
            # Up to a fifth more, at random: runs paced at once drift apart rather than
            # send in step.
            paced = min(float(floor), MAX_PACED_INTERVAL) * random.uniform(1.0, 1.2)
            interval = max(interval, paced)
        if interval < self.interval:
            self._data.set()  # a record already waiting may be due sooner now
        self.interval, self.watched = interval, watched

    # --- acknowledgements ---

    def _note_ack(self, acked: int, offset: int | None) -> None:
        if acked <= self.acked_seq and offset is None:
            return
        if acked > self.acked_seq:
            self.acked_seq = acked
            self.ack_offset = offset
        elif acked == self.acked_seq and offset is not None:
            self.ack_offset = offset
        if self.listener is not None:
            self.listener.acked_seq = max(self.listener.acked_seq, acked)
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
            if self.listener is not None:
                self.listener.upload_error = reason
                if reason == RUN_DELETED:  # syncing again cannot help: say so, nothing else
                    say(
                        f"run {self.run_id} was deleted on the server: nothing more of it is "
                        f"uploaded; its run file stays in {self.run_dir.path}"
                    )
                else:
                    say(
                        f"upload stopped: {reason}. The run file stays in "
                        f"{self.run_dir.path}; fix this, then run: "
                        f"gradexp sync {self.run_dir.path}"
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
                    "POST",
                    f"{API_PREFIX}/runs/{self.run_id}/heartbeat{self._writer_query}",
                    json={},
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
        if self.source is not None:
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
                    expected, self.settings.batch_bytes, self.settings.batch_records, self.skip
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
