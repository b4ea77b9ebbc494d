"""Schema migrations: an old database is upgraded in place, never recreated."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
import sqlalchemy as sa

from .helpers import get, rows, run_async

HIST = {
    "_type": "histogram",
    "bins": [0.0, 1.0, 2.0],
    "counts": [4, 6],
    "min": 0.0,
    "max": 2.0,
    "mean": 1.1,
    "std": 0.5,
    "norm": 3.0,
    "count": 10,
    "nan": 0,
    "inf": 0,
    "ninf": 0,
    "zeros": 0,
}


async def _make_revision_1_database(db_url: str) -> str:
    """A database at revision 0001 holding a user, a key, a run with history: returns the key."""
    from gradexp.server.domain.accounts.keys import hash_key, key_prefix, new_api_key
    from gradexp.server.storage.db import Database
    from gradexp.server.storage.migrate import migrate

    db = Database(db_url)
    key = new_api_key()
    try:
        before, after = await migrate(db, "0001")
        assert (before, after) == (None, "0001")

        def fill(conn: sa.Connection) -> None:
            # Spelled out against the revision-1 tables, not today's schema module.
            md = sa.MetaData()
            t = {
                name: sa.Table(
                    name,
                    md,
                    *(
                        sa.Column(c, sa.Integer, primary_key=True) if c in ("id", "pk") and i == 0 else sa.Column(c)
                        for i, c in enumerate(cols)
                    ),
                )
                for name, cols in {
                    "users": ("id", "name", "created_at"),
                    "api_keys": ("id", "user_id", "name", "prefix", "key_hash", "created_at"),
                    "projects": ("id", "owner_id", "name", "created_at"),
                    "runs": (
                        "pk", "id", "project_id", "name", "state", "config", "summary", "telemetry",
                        "tags", "host", "started_at", "attempt_started_at", "attempt_seq",
                        "heartbeat_at", "updated_at", "last_step", "acked_seq", "pending_ranges",
                    ),
                    "history": ("run_pk", "seq", "step", "time", "row_values"),
                    "run_keys": (
                        "run_pk", "key_id", "key_name", "kind", "count", "first_step", "last_step",
                        "last_seq", "last_value",
                    ),
                    "rollups": (
                        "run_pk", "key_id", "level", "bucket", "vmin", "vmax", "vsum", "vcount",
                        "flags", "last", "last_code", "last_seq", "last_step", "last_time",
                    ),
                }.items()
            }  # fmt: skip
            # No explicit ids: PostgreSQL's sequences must stay in step for later inserts.
            uid = conn.execute(
                t["users"].insert().values(name="grace", created_at=1.0)
            ).inserted_primary_key[0]
            conn.execute(
                t["api_keys"]
                .insert()
                .values(
                    user_id=uid,
                    name="old",
                    prefix=key_prefix(key),
                    key_hash=hash_key(key),
                    created_at=1.0,
                )
            )
            pid = conn.execute(
                t["projects"].insert().values(owner_id=uid, name="legacy", created_at=1.0)
            ).inserted_primary_key[0]
            run_pk = conn.execute(
                t["runs"]
                .insert()
                .values(
                    id="oldrun", project_id=pid, name="old run", state="finished",
                    config='{"lr": 0.1}', summary="{}", telemetry="{}", tags='["v1"]', host="{}",
                    started_at=1.0, attempt_started_at=1.0, attempt_seq=0, heartbeat_at=2.0,
                    updated_at=2.0, last_step=2, acked_seq=3, pending_ranges="[]",
                )
            ).inserted_primary_key[0]  # fmt: skip
            conn.execute(
                t["history"].insert(),
                [
                    {"run_pk": run_pk, "seq": i + 1, "step": i, "time": 10.0 + i,
                     "row_values": orjson.dumps({"loss": 1.0 - i / 10, "w": {**HIST, "mean": i}}).decode()}
                    for i in range(3)
                ],
            )  # fmt: skip
            conn.execute(
                t["run_keys"].insert(),
                [
                    {"run_pk": run_pk, "key_id": 1, "key_name": "loss", "kind": "number", "count": 3,
                     "first_step": 0, "last_step": 2, "last_seq": 3, "last_value": "0.8"},
                    {"run_pk": run_pk, "key_id": 2, "key_name": "w", "kind": "histogram", "count": 3,
                     "first_step": 0, "last_step": 2, "last_seq": 3,
                     "last_value": orjson.dumps({**HIST, "mean": 2}).decode()},
                ],
            )  # fmt: skip
            # the coarsest rollup of "loss" (every point is in it)
            conn.execute(
                t["rollups"].insert().values(
                    run_pk=run_pk, key_id=1, level=7, bucket=0, vmin=0.8, vmax=1.0, vsum=2.7,
                    vcount=3, flags=0, last=0.8, last_code=0, last_seq=3, last_step=2,
                    last_time=12.0,
                )
            )  # fmt: skip

        await db.write(fill)
    finally:
        await db.dispose()
    return key


def test_old_database_is_upgraded_in_place(start_server, db_url):
    key = run_async(_make_revision_1_database(db_url))
    srv = start_server(db_url=db_url)  # migrates to head at start
    run = get(srv, "/api/v1/runs/oldrun", key=key)
    assert (run["name"], run["state"], run["config"], run["tags"]) == (
        "old run",
        "finished",
        {"lr": 0.1},
        ["v1"],
    )
    assert run["summary"]["loss"] == 0.8
    srv.api_key = key
    assert [r["loss"] for r in rows(srv, "oldrun")] == [1.0, 0.9, 0.8]
    # Revision 2 backfilled the typed-value index: old histograms serve like new ones.
    hist = get(srv, "/api/v1/runs/oldrun/histograms?key=w", key=key)
    assert hist["step"] == [0, 1, 2] and hist["counts"] == [[4, 6]] * 3
    assert get(srv, "/api/v1/viewer", key=key)["user"]["name"] == "grace"
    # Revision 7 backfilled each key's min, max, sum and count from the rollups: a
    # define_metric summary of an old run is right at once.
    assert run_async(_loss_aggregates(db_url)) == (0.8, 1.0, 2.7, 3)


async def _loss_aggregates(db_url: str) -> tuple:
    from gradexp.server.storage.db import Database

    db = Database(db_url)
    try:

        def read(conn: sa.Connection) -> tuple:
            query = "SELECT vmin, vmax, vsum, vcount FROM run_keys WHERE key_name = 'loss'"
            return tuple(conn.execute(sa.text(query)).one())

        return await db.run_with_connection(read)
    finally:
        await db.dispose()


def test_schema_matches_the_models(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from gradexp.server.storage.db import Database
    from gradexp.server.storage.migrate import head_revision, migrate
    from gradexp.server.storage.schema import metadata

    async def check() -> list:
        db = Database(db_url)
        try:
            before, after = await migrate(db)
            assert before is None and after == head_revision()

            def diff(conn: sa.Connection) -> list:
                ctx = MigrationContext.configure(conn, opts={"compare_type": False})
                return compare_metadata(ctx, metadata)

            return await db.run_with_connection(diff)
        finally:
            await db.dispose()

    assert run_async(check()) == []


@pytest.mark.slow
def test_migrate_command_and_a_database_from_the_future(tmp_path):
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "gradexp.server", "migrate", "--data", str(data)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "upgraded from empty" in out.stdout
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "up to date" in out.stdout
    engine = sa.create_engine(f"sqlite:///{data / 'gradexp.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'zz99'"))
    engine.dispose()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "newer gradexp" in out.stderr and "Traceback" not in out.stderr
