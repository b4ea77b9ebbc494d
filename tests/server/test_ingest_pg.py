"""PostgreSQL's one-statement path for the usual batch (``domain/ingest_pg.py``).

It must store exactly what the full path (``ingest_batch``) stores, and write nothing when
the run's row is not as expected, so that the full path decides (and refuses) instead.
"""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest

from tests.helpers import run_async

from .helpers import batch, history, new_id, post, put_run, steps_batch

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _values(i: int) -> dict[str, Any]:
    """Every kind of plain value, and ones that stress the rollups and the key index."""
    return {
        "loss": 1.0 / (i + 1) + 0.1 + 0.2,  # digits that must come back bit for bit
        "acc": i % 7,  # integers
        "tiny": 5e-324 * (i + 1),
        "big": 1.7976931348623157e308 if i % 2 else -1e300,
        # NaN and the infinities as the wire carries them (protocol/values.py)
        "odd": ([{"_type": "float", "value": v} for v in ("NaN", "Infinity", "-Infinity")] + [2.5])[
            i % 4
        ],
        "note": f"epoch {i}",  # a string
        "flag": i % 3 == 0,
        "maybe": None if i % 2 else 1.5,
    }


def _batch_doc(first: int, n: int) -> dict[str, Any]:
    return batch([history(first + i, first + i - 1, _values(first + i)) for i in range(n)])


async def _setup(db_url: str, runs: list[str]) -> tuple[Any, dict[str, tuple[int, int]]]:
    from sqlalchemy import text

    from gradexp.server.storage.db import Database

    db = Database(db_url)
    async with db.read() as conn:
        rows = await conn.execute(
            text("SELECT id, pk, project_id FROM runs WHERE id = ANY(:ids)"), {"ids": runs}
        )
        return db, {r.id: (int(r.pk), int(r.project_id)) for r in rows}


async def _key_ids(db: Any, run_pk: int) -> dict[str, int]:
    from sqlalchemy import text

    async with db.read() as conn:
        rows = await conn.execute(
            text("SELECT key_name, key_id FROM run_keys WHERE run_pk = :pk"), {"pk": run_pk}
        )
        return {r.key_name: int(r.key_id) for r in rows}


async def _stored(db: Any, run_pk: int) -> dict[str, Any]:
    """What the database holds for a run, without its pk."""
    from sqlalchemy import text

    out: dict[str, Any] = {}
    async with db.read() as conn:
        for table, order in (
            ("history", "seq"),
            ("rollups", "key_id, level, bucket"),
            ("run_keys", "key_id"),
        ):
            result = await conn.execute(
                text(f"SELECT * FROM {table} WHERE run_pk = :pk ORDER BY {order}"), {"pk": run_pk}
            )
            out[table] = [
                {k: v for k, v in row._mapping.items() if k != "run_pk"} for row in result
            ]
        run = await conn.execute(
            text(
                "SELECT acked_seq, last_step, pending_ranges, finish_seq FROM runs WHERE pk = :pk"
            ),
            {"pk": run_pk},
        )
        out["run"] = dict(run.one()._mapping)
    return out


def _decoded(doc: dict[str, Any]) -> Any:
    from gradexp.server.domain.batch import decode_body

    return decode_body(gzip.compress(orjson.dumps(doc)), True)


def test_the_one_statement_path_stores_what_the_full_path_stores(
    start_server: Any, db_url: str
) -> None:
    from gradexp.server.domain import ingest_pg
    from gradexp.server.domain.ingest import ingest_batch
    from gradexp.server.domain.run_lock import ProjectOwners

    srv = start_server(db_url=db_url)
    fast, full = new_id(), new_id()
    for run in (fast, full):
        assert put_run(srv, run)[0] == 201
        assert post(srv, run, _batch_doc(1, 8)) == (200, {"acked_seq": 8})  # keys made

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        db, runs = await _setup(srv.db_url, [fast, full])
        try:
            (fast_pk, project), (full_pk, _) = runs[fast], runs[full]
            key_ids = await _key_ids(db, fast_pk)
            assert key_ids == await _key_ids(db, full_pk)
            owners, user_id = ProjectOwners(), None
            async with db.read() as conn:
                from sqlalchemy import text

                user_id = (
                    await conn.execute(
                        text("SELECT owner_id FROM projects WHERE id = :p"), {"p": project}
                    )
                ).scalar_one()
            for first, n in ((9, 10), (19, 1), (20, 60), (80, 3)):
                doc = _batch_doc(first, n)
                assert ingest_pg.is_plain(_decoded(doc))
                result = await ingest_pg.try_ingest(
                    db, fast, project, _decoded(doc), dict(key_ids), None
                )
                assert result is not None
                assert (result.acked_seq, result.applied, result.run_pk) == (
                    first + n - 1,
                    n,
                    fast_pk,
                )
                await db.write(
                    ingest_batch,
                    db.kind,
                    user_id,
                    full,
                    _decoded(doc),
                    dict(key_ids),
                    owners,
                    None,
                    0,
                )
            return await _stored(db, fast_pk), await _stored(db, full_pk)
        finally:
            await db.dispose()

    got, want = run_async(go())
    assert (
        got["run"]
        == want["run"]
        == {
            "acked_seq": 82,
            "last_step": 81,
            "pending_ranges": "[]",
            "finish_seq": None,
        }
    )
    for table in ("history", "rollups", "run_keys"):
        assert got[table] == want[table], table
    assert len(got["history"]) == 82


def test_it_writes_nothing_unless_the_run_is_as_expected(start_server: Any, db_url: str) -> None:
    from gradexp.server.domain import ingest_pg

    srv = start_server(db_url=db_url)
    run, gap, other = new_id(), new_id(), new_id()
    for r in (run, gap, other):
        assert put_run(srv, r, project="guards")[0] == 201
        assert post(srv, r, steps_batch(1, 10)) == (200, {"acked_seq": 10})
    # Sequences 21..30 came before 11..20: pending ranges, which the full path handles.
    assert post(srv, gap, steps_batch(21, 10)) == (200, {"acked_seq": 10})

    async def go() -> None:
        db, runs = await _setup(srv.db_url, [run, gap, other])
        try:
            pk, project = runs[run]
            key_ids = await _key_ids(db, pk)
            before = await _stored(db, pk)

            async def attempt(run_id: str, first: int, **kw: Any) -> Any:
                return await ingest_pg.try_ingest(
                    db,
                    run_id,
                    kw.get("project", project),
                    _decoded(steps_batch(first, 5)),
                    dict(key_ids),
                    kw.get("key"),
                )

            assert await attempt(run, 1) is None  # a replay
            assert await attempt(run, 6) is None  # overlapping the ack
            assert await attempt(run, 12) is None  # past a gap
            assert await attempt(run, 11, project=project + 1000) is None  # another project
            assert await attempt(gap, 11) is None  # pending ranges
            assert await attempt("no-such-run", 1) is None
            assert await attempt(run, 11, key=2**31 - 1) is None  # no such API key
            assert await _stored(db, pk) == before
            assert await attempt(run, 11) is not None  # and as expected, it goes through
            assert (await _stored(db, pk))["run"]["acked_seq"] == 15
        finally:
            await db.dispose()

    run_async(go())
    # Through HTTP the full path decides each of these, with its usual answers.
    assert post(srv, run, steps_batch(11, 5)) == (200, {"acked_seq": 15})  # a replay
    assert post(srv, gap, steps_batch(11, 10)) == (200, {"acked_seq": 30})
    assert post(srv, run, steps_batch(21, 5)) == (200, {"acked_seq": 15})  # a gap
    assert post(srv, run, steps_batch(16, 5)) == (200, {"acked_seq": 25})


def test_batches_that_are_not_plain_take_the_full_path(start_server: Any, db_url: str) -> None:
    from gradexp.server.domain import ingest_pg

    assert ingest_pg.is_plain(_decoded(steps_batch(1, 3)))
    hist = {"_type": "histogram", "bins": [0.0, 1.0], "counts": [3]}
    assert not ingest_pg.is_plain(_decoded(batch([history(1, 0, {"loss": hist})])))
    config = {"seq": 2, "type": "config", "update": {"lr": 0.1}}
    assert not ingest_pg.is_plain(_decoded(batch([history(1, 0, {"loss": 1.0}), config])))

    # define_metric on a run: its summaries follow every batch, so the full path runs.
    srv = start_server(db_url=db_url)
    run = new_id()
    assert put_run(srv, run)[0] == 201
    assert post(srv, run, steps_batch(1, 5)) == (200, {"acked_seq": 5})
    metric = {
        "seq": 6,
        "type": "metric",
        "name": "loss",
        "step_metric": None,
        "summary": ["min"],
        "goal": None,
        "hidden": False,
    }
    assert post(srv, run, batch([metric])) == (200, {"acked_seq": 6})
    assert post(srv, run, steps_batch(7, 5, first_step=5)) == (200, {"acked_seq": 11})
    summary = srv.request("GET", f"/api/v1/runs/{run}")[1]["summary"]
    assert summary["loss"] == pytest.approx(1.0 / 10)  # the minimum, kept by the full path


def test_a_process_learns_a_run_it_has_not_written_to_in_one_read(
    start_server: Any, db_url: str
) -> None:
    from gradexp.server.domain import ingest_pg

    srv = start_server(db_url=db_url)
    new, used = new_id(), new_id()
    for run in (new, used):
        assert put_run(srv, run, project="primed")[0] == 201
    assert post(srv, used, steps_batch(1, 3, acc=0.5)) == (200, {"acked_seq": 3})

    async def go() -> None:
        db, runs = await _setup(srv.db_url, [new, used])
        try:
            project = runs[new][1]
            # A run with nothing committed: the ids the full path would give, in order.
            primed = await ingest_pg.prime(db, new, ["loss", "acc"])
            assert primed is not None and primed.project_id == project
            assert primed.key_ids == {"loss": 1, "acc": 2}
            # A run with keys: theirs (and none for a key it does not have).
            ids = await _key_ids(db, runs[used][0])
            primed = await ingest_pg.prime(db, used, ["acc", "loss", "other"])
            assert primed is not None and primed.key_ids == {"acc": ids["acc"], "loss": ids["loss"]}
            assert await ingest_pg.prime(db, "no-such-run", ["loss"]) is None
        finally:
            await db.dispose()

    run_async(go())
    # Another server process (no cache) takes the new run's first batch in one statement,
    # and a key the used run lacks sends its batch down the full path: both store it all.
    other = start_server(db_url=db_url, data_dir=srv.data_dir)
    assert post(other, new, steps_batch(1, 4, acc=1.0)) == (200, {"acked_seq": 4})
    assert post(other, used, steps_batch(4, 2, other=2.0)) == (200, {"acked_seq": 5})
    keys = srv.request("GET", f"/api/v1/runs/{new}/keys")[1]["keys"]
    assert [(k["key"], k["count"]) for k in keys] == [("loss", 4), ("acc", 4)]
    keys = srv.request("GET", f"/api/v1/runs/{used}/keys")[1]["keys"]
    assert {k["key"]: k["count"] for k in keys} == {"loss": 5, "acc": 3, "other": 2}


def test_connections_the_database_dropped_are_replaced(start_server: Any, db_url: str) -> None:
    """A PostgreSQL restart (here: every connection of the database terminated) costs at
    most a retry, answered 503: both paths drop a dead connection and open another."""
    import asyncpg

    from tests.services import PG_ADMIN_URL

    srv = start_server(db_url=db_url)
    run = new_id()
    assert put_run(srv, run)[0] == 201
    for first in (1, 11, 21):  # the run is known: batches take one statement
        assert post(srv, run, steps_batch(first, 10)) == (200, {"acked_seq": first + 9})
    name = db_url.rsplit("/", 1)[1]

    async def terminate() -> int:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    name,
                )
            )
        finally:
            await conn.close()

    assert run_async(terminate()) > 0
    first, statuses = 31, []
    while first <= 81:  # as the SDK would: a batch that failed is sent again
        status, body = post(srv, run, steps_batch(first, 10))
        statuses.append(status)
        assert status in (200, 503), body  # 503: sent again (the SDK does)
        if status == 200:
            assert body == {"acked_seq": first + 9}
            first += 10
        assert len(statuses) < 20, statuses
    assert statuses.count(200) == 6 and len(statuses) <= 8, statuses
    from .helpers import rows

    assert [r["_seq"] for r in rows(srv, run)] == list(range(1, 91))
