"""SQLite's group commit (``storage/db.py``'s ``GroupCommit``): the writes that queue while
the writer thread is busy commit together, each still all-or-nothing and answered only
once its group has committed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from gradexp.server.storage.db import Database


def _create(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.exec_driver_sql(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER "
        "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )


def _insert(conn: Connection, i: int, pause: float = 0.0) -> int:
    conn.exec_driver_sql("INSERT INTO parent (id) VALUES (?)", (i,))
    time.sleep(pause)  # the writer thread is busy: the writes behind this one queue up
    return i * 10


def _insert_then_fail(conn: Connection, i: int) -> None:
    conn.exec_driver_sql("INSERT INTO parent (id) VALUES (?)", (i,))
    raise ValueError(f"write {i} refused")


def _orphan(conn: Connection, i: int) -> None:
    # Checked only at COMMIT (deferred): the statement succeeds, the commit fails.
    conn.exec_driver_sql("INSERT INTO child (id, parent_id) VALUES (?, ?)", (i, 10_000 + i))


def _ids(conn: Connection) -> list[int]:
    return [int(r[0]) for r in conn.exec_driver_sql("SELECT id FROM parent ORDER BY id")]


async def _behind_a_busy_write(db: Database, *writes: tuple[Any, ...]) -> list[Any]:
    """Write 0 (holding the writer thread for 0.2 s), then ``writes`` (``(fn, *args)``)
    queued behind it, so they commit as one group: each one's result or error."""
    first = asyncio.ensure_future(db.write(_insert, 0, 0.2))
    await asyncio.sleep(0.05)  # the writer thread is in write 0
    rest = (db.write(fn, *args) for fn, *args in writes)
    return list(await asyncio.gather(first, *rest, return_exceptions=True))


async def _open(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path}/gx.db")
    await db.write(_create)

    def foreign_keys_on(conn: Connection) -> None:
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]

    await db.run_with_connection(foreign_keys_on)
    return db


def test_writes_that_queue_commit_together_and_each_gets_its_own_result(tmp_path: Path) -> None:
    async def main() -> tuple[list[Any], list[int], Any]:
        db = await _open(tmp_path)
        group = db._group_commit
        assert group is not None
        before = (group.groups, group.writes)
        first = asyncio.ensure_future(db.write(_insert, 0, 0.2))
        await asyncio.sleep(0.05)  # the writer thread is in write 0: the others queue
        results = await asyncio.gather(first, *(db.write(_insert, i) for i in range(1, 80)))
        counts = (group.groups - before[0], group.writes - before[1])
        ids = await db.write(_ids)
        await db.dispose()
        return list(results), ids, counts

    results, ids, (groups, writes) = asyncio.run(main())
    assert results == [i * 10 for i in range(80)]
    assert ids == list(range(80))
    # The first write alone, then 79 queued ones in groups of at most 32.
    assert writes == 80 and groups == 4, (groups, writes)


def test_a_failing_write_in_a_group_rolls_back_only_itself(tmp_path: Path) -> None:
    from sqlalchemy.exc import IntegrityError

    async def main() -> tuple[list[Any], list[int]]:
        db = await _open(tmp_path)
        outcomes = await _behind_a_busy_write(
            db, (_insert, 1), (_insert_then_fail, 2), (_insert, 3), (_insert, 1)
        )
        ids = await db.write(_ids)
        await db.dispose()
        return outcomes, ids

    outcomes, ids = asyncio.run(main())
    assert outcomes[:2] == [0, 10] and outcomes[3] == 30, outcomes
    assert isinstance(outcomes[2], ValueError) and "write 2 refused" in str(outcomes[2])
    assert isinstance(outcomes[4], IntegrityError), outcomes  # a statement that failed
    assert ids == [0, 1, 3]  # write 2's insert was rolled back, its neighbours' were not


@pytest.mark.parametrize("alone", [True, False])
def test_a_failed_commit_writes_nothing_and_tells_every_caller(tmp_path: Path, alone: bool) -> None:
    from sqlalchemy.exc import IntegrityError

    async def main() -> tuple[list[Any], list[int], int]:
        db = await _open(tmp_path)
        if alone:
            outcomes = await asyncio.gather(db.write(_orphan, 1), return_exceptions=True)
        else:
            outcomes = await _behind_a_busy_write(db, (_insert, 1), (_orphan, 2), (_insert, 3))
        ids = await db.write(_ids)
        later = await db.write(_insert, 50)  # the connection is usable afterwards
        await db.dispose()
        return list(outcomes), ids, later

    outcomes, ids, later = asyncio.run(main())
    if alone:
        assert isinstance(outcomes[0], IntegrityError), outcomes
        assert ids == []
    else:
        assert outcomes[0] == 0, outcomes  # committed alone, before the others queued
        assert all(isinstance(o, IntegrityError) for o in outcomes[1:]), outcomes
        assert "FOREIGN KEY" in str(outcomes[2])
        assert ids == [0]  # nothing of the failed group
    assert later == 500


def test_a_write_cancelled_while_it_waits_is_not_run(tmp_path: Path) -> None:
    async def main() -> list[int]:
        db = await _open(tmp_path)
        first = asyncio.ensure_future(db.write(_insert, 0, 0.3))
        await asyncio.sleep(0.1)  # the writer thread is in write 0
        waiting = asyncio.ensure_future(db.write(_insert, 1))
        third = asyncio.ensure_future(db.write(_insert, 2))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(first, third)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        ids = await db.write(_ids)
        await db.dispose()
        return ids

    assert asyncio.run(main()) == [0, 2]
