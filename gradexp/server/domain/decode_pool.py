"""Decoding ingest batches in worker processes, so one server process uses more than a core.

A batch's decoding (gunzip, JSON parse, validation, columns: see batch.py) is pure
Python-level work that holds the GIL: in one process it competed with the event loop
and with the SQLite writer thread's Python, and measured about half of a step's server
CPU. Here it runs in a few worker processes (``spawn``ed, so nothing of the server's
threads or sockets is inherited) and only the finished columns come back: int and
float columns as arrays and the rows' JSON as one string (``HistoryColumns.__getstate__``),
far cheaper to unpickle than the JSON was to parse.

The pool never makes a request fail: until the workers have started, for small bodies,
and when a worker dies (the pool is then replaced), batches are decoded in the server
process as before. Refusals (domain errors) cross back pickled and are raised here, so a bad
batch gets exactly the error the in-process path gives.

The server's settings give the number of workers (``GRADEXP_INGEST_WORKERS``; default:
CPUs - 1, at most 4; 0 decodes everything in the server process). The server holds its
pool in its state and closes it at cleanup.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import multiprocessing
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from gradexp.server.domain.batch import Batch, decode_body
from gradexp.server.domain.errors import DomainError
from gradexp.server.domain.value_checks import ValidKeys

log = logging.getLogger("gradexp.server")

#: Bodies smaller than this (as sent) are decoded in the server process: for them the
#: round trip to a worker costs about what it saves.
MIN_WORKER_BODY = 16 * 1024
#: Workers that die this often (deaths within DEATH_WINDOW_S seconds) are given up on:
#: the server decodes in its own process from then on rather than respawn them forever.
MAX_DEATHS = 3
DEATH_WINDOW_S = 60.0


def _init_worker() -> None:
    # Ctrl+C in the server's terminal reaches the whole process group: the server shuts
    # down its pool itself, so a worker must not die printing a KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The worker lives to decode batches: freeze its imports and let each batch's
    # objects die young (see ingest.tune_gc for the numbers).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 50)
    global _worker_keys
    _worker_keys = ValidKeys()


# A worker process's own cache of valid key names (made by _init_worker): a worker is a
# process of its own, with no AppState, and lives only to decode batches.
_worker_keys: ValidKeys | None = None


def _decode_in_worker(body: bytes, gzip: bool) -> tuple[Any, ...]:
    """In a worker: ("ok", batch without its records) or ("refused", the DomainError)."""
    try:
        batch = decode_body(body, gzip, _worker_keys)
    except DomainError as exc:  # pickled whole: the server process raises it unchanged
        return ("refused", exc)
    batch.records = None  # the columns are what the writer needs; they pickle compactly
    return ("ok", batch)


def _ready() -> bool:
    return True


#: A body decoding to more than this is "large" (SDK batches are about 1 MiB).
LARGE_BODY = 8 * 1024 * 1024
#: Large bodies decoded at once, per server process (the others wait their turn).
MAX_LARGE_DECODES = 2


def _decoded_size(body: bytes, gzip: bool) -> int:
    """The size ``body`` decodes to: gzip's trailer (the size modulo 2^32, which the
    256 MiB limit makes exact for any body that decodes at all), else its own length."""
    if gzip and len(body) >= 18:
        return int.from_bytes(body[-4:], "little")
    return len(body)


class DecodePool:
    """Worker processes decoding big ingest bodies; used from the event loop only."""

    def __init__(self, workers: int, valid_keys: ValidKeys | None = None) -> None:
        self.workers = workers
        # The server process's cache of valid key names, for the batches decoded here.
        self.valid_keys = valid_keys or ValidKeys()
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._warm: concurrent.futures.Future[bool] | None = None
        self._deaths: list[float] = []  # when workers died (monotonic), within the window
        self.decoded_in_workers = 0  # batches (for tests and curiosity)
        self._large: asyncio.Semaphore | None = None  # made on the event loop, when first needed

    def _start(self) -> bool:
        """Start the workers; False (and no workers from now on) if they cannot start."""
        try:
            # spawn, not fork: the server has threads (the SQLite writer, aiosqlite's)
            # and a fork would copy their locks mid-use.
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
            )
            # Workers import numpy and the decoder (a second or two): until one answers
            # this, batches are decoded in-process rather than waiting.
            self._warm = self._executor.submit(_ready)
        except Exception as exc:  # no processes left, no semaphores (some containers) ...
            log.warning(
                "could not start ingest decode workers (%s): batches are decoded in the "
                "server process",
                exc,
            )
            self.close()
            self.workers = 0
            return False
        return True

    async def decode(self, body: bytes, gzip: bool) -> Batch:
        """Decode a request body (as received): in a worker when that pays, else here.

        Bodies that decode to more than :data:`LARGE_BODY` bytes (gzip's own record of the
        size, else the body's) are decoded at most :data:`MAX_LARGE_DECODES` at a time:
        each may cost a few hundred MiB while it is parsed, and many at once would add up.
        """
        if _decoded_size(body, gzip) <= LARGE_BODY:
            return await self._decode(body, gzip)
        if self._large is None:
            self._large = asyncio.Semaphore(MAX_LARGE_DECODES)
        async with self._large:
            return await self._decode(body, gzip)

    async def _decode(self, body: bytes, gzip: bool) -> Batch:
        if self.workers <= 0 or len(body) < MIN_WORKER_BODY:
            return await self._decode_here(body, gzip)
        if self._executor is None and not self._start():
            return await self._decode_here(body, gzip)
        assert self._warm is not None
        if not self._warm.done():
            return await self._decode_here(body, gzip)
        executor = self._executor
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                executor, _decode_in_worker, body, gzip
            )
        except BrokenProcessPool:
            # A worker died (killed, out of memory): start a new pool, decode this one here.
            self._replace(executor)
            now = time.monotonic()
            self._deaths = [t for t in self._deaths if now - t < DEATH_WINDOW_S] + [now]
            if len(self._deaths) >= MAX_DEATHS:
                log.warning(
                    "ingest decode workers died %d times in %d s: batches are decoded in "
                    "the server process from now on",
                    len(self._deaths),
                    DEATH_WINDOW_S,
                )
                self.workers = 0
            else:
                log.warning("an ingest decode worker died; starting new ones")
            return await self._decode_here(body, gzip)
        if result[0] == "refused":
            raise result[1]
        batch: Batch = result[1]
        batch.body, batch.gzip = body, gzip  # for Batch.all_records (partial replays)
        self.decoded_in_workers += 1
        return batch

    async def _decode_here(self, body: bytes, gzip: bool) -> Batch:
        if len(body) < MIN_WORKER_BODY:
            return decode_body(body, gzip, self.valid_keys)
        # Off the event loop (so it keeps serving), though the GIL still serialises it.
        return await asyncio.to_thread(decode_body, body, gzip, self.valid_keys)

    def _replace(self, broken: concurrent.futures.ProcessPoolExecutor | None) -> None:
        if broken is not None and self._executor is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            self._warm = None

    def close(self) -> None:
        """Stop the workers (batches being decoded are abandoned)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            self._warm = None
