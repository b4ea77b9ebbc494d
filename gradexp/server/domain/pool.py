"""A small, bounded pool of threads for CPU-heavy reads (downsampling, Parquet, raw rows).

The event loop serves every client of a server process; work that costs it more than a
few milliseconds (parsing thousands of JSON rows, merging rollup pieces with numpy,
writing Parquet) goes here instead. The pool has :data:`READ_THREADS` threads, so however
many such reads arrive at once, they queue here rather than take every thread of the
process (asyncio's default executor also serves the database drivers and file I/O).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

READ_THREADS = 2
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=READ_THREADS, thread_name_prefix="gradexp-read"
        )
    return _pool


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the read pool; the caller's event loop keeps serving meanwhile."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)
