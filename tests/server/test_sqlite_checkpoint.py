"""SQLite's WAL is checkpointed off the writer's commits, and stays bounded either way."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Connection

from gradexp.server.storage.db import Database


def _create(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE t (i INTEGER PRIMARY KEY, pad TEXT NOT NULL)")


def _insert(conn: Connection, first: int, n: int) -> None:
    conn.exec_driver_sql(
        "INSERT INTO t (i, pad) VALUES (?, ?)", [(first + i, "x" * 500) for i in range(n)]
    )


def _count(conn: Connection) -> int:
    return int(conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one())


def _eventually(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _wal_size(path: Path) -> int:
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


async def _write_batches(db: Database, batches: int, rows: int) -> list[int]:
    sizes = []
    for b in range(batches):
        await db.write(_insert, b * rows, rows)
        sizes.append(_wal_size(Path(db.checkpointer.path)))  # type: ignore[union-attr]
    return sizes


def test_the_checkpoint_thread_keeps_the_wal_small(tmp_path: Path) -> None:
    async def main() -> None:
        db = Database(f"sqlite:///{tmp_path}/gx.db")
        assert db.checkpointer is not None
        db.checkpointer.threshold = 256 * 1024
        db.checkpointer.writer_limit = 1024 * 1024
        await db.write(_create)
        sizes = await _write_batches(db, 60, 200)  # ~6 MB in 60 commits
        checkpointer = db.checkpointer
        assert await asyncio.to_thread(_eventually, lambda: checkpointer.checkpoints > 0)
        # Without checkpoints the WAL would hold every page written (> 6 MB); with them
        # SQLite rewinds it, so it stays within the writer's limit (plus one commit).
        assert max(sizes) < 1024 * 1024 + 300 * 1024
        await db.dispose()
        db = Database(f"sqlite:///{tmp_path}/gx.db")
        assert await db.write(_count) == 60 * 200
        await db.dispose()

    asyncio.run(main())


def test_the_writer_checkpoints_itself_past_the_hard_limit(tmp_path: Path) -> None:
    async def main() -> None:
        db = Database(f"sqlite:///{tmp_path}/gx.db")
        assert db.checkpointer is not None
        db.checkpointer.threshold = 1 << 40  # the thread never wakes
        db.checkpointer.writer_limit = 512 * 1024
        await db.write(_create)
        sizes = await _write_batches(db, 60, 200)
        assert db.checkpointer.checkpoints == 0 and db.checkpointer.writer_checkpoints > 0
        assert max(sizes) < 512 * 1024 + 300 * 1024
        assert await db.write(_count) == 60 * 200
        await db.dispose()

    asyncio.run(main())


def test_the_checkpoint_thread_runs_at_most_once_per_interval(tmp_path: Path) -> None:
    """Each pass syncs the database file: a steady stream of commits past the threshold
    wakes the thread once per ``min_interval``, not after every commit."""

    async def main() -> tuple[int, int]:
        db = Database(f"sqlite:///{tmp_path}/gx.db")
        checkpointer = db.checkpointer
        assert checkpointer is not None
        checkpointer.threshold = 1  # every commit is past it
        checkpointer.min_interval = 3600.0
        await db.write(_create)
        await _write_batches(db, 20, 50)
        assert await asyncio.to_thread(_eventually, lambda: checkpointer.checkpoints >= 1)
        await asyncio.sleep(0.3)  # a second pass, were one woken, would have run by now
        within = checkpointer.checkpoints
        checkpointer.min_interval = 0.0
        await db.write(_insert, 10_000, 50)
        assert await asyncio.to_thread(_eventually, lambda: checkpointer.checkpoints > within)
        after = checkpointer.checkpoints
        await db.dispose()
        return within, after

    within, after = asyncio.run(main())
    assert within == 1 and after == 2, (within, after)
