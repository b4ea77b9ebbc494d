"""The run's row as ingest locks, reads and writes it, once per batch and heartbeat.

A batch looks its run up inside its write transaction (``lock_owned_run``): the row is
locked (``SELECT ... FOR UPDATE`` elsewhere than SQLite, whose single writer already
excludes everyone else), the API key the request came with is checked to be unrevoked in
the same statement (so a key from the process's cache costs no round trip and a
revocation is seen at once), and the caller's reach is checked through the access
resolver, with a per-process cache of project owners for the common case of one's own
run. The SQL is driver SQL, compiled here once per dialect (and per set of updated
columns), so a small batch pays no statement building.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict, namedtuple
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Dialect

from gradexp.server.domain.access import can_log, project_role_sync
from gradexp.server.domain.accounts.users import User
from gradexp.server.domain.errors import Unauthorized
from gradexp.server.domain.runs import run_not_found
from gradexp.server.domain.tombstones import deleted_refusal
from gradexp.server.domain.writers import writer_id
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import driver_execute, placeholders

__all__ = [
    "ProjectOwners",
    "key_refused",
    "lock_owned_run",
    "run_update_sql",
    "select_run",
    "update_run_row",
]


_RUN_COLUMNS = (
    "pk",
    "project_id",
    "acked_seq",
    "pending_ranges",
    "state",
    "finish_seq",
    "finish_exit_code",
    "finish_time",
    "last_step",
    "config",
    "summary",
    "telemetry",
    "metrics",
    "parent_pk",
    "rank",
    "world_size",
)


# The run's row is read and written once per batch: as driver SQL, compiled here once per
# dialect (and per set of updated columns), so a batch pays no statement building.
@functools.lru_cache(maxsize=8)
def _run_select_sql(dialect: Dialect, by: str, key_check: bool = False) -> str:
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(map(quote, _RUN_COLUMNS))
    if key_check:
        # Whether the request's API key is still valid, in the statement that locks the
        # run: a cached key costs no extra round trip and a revocation is still seen at
        # once (see KeyCache). The key's id is the first parameter.
        first, second = placeholders(dialect.name, 2).split(", ")
        sql = (
            f"SELECT {columns}, (SELECT COUNT(*) FROM api_keys WHERE id = {first} "
            f"AND revoked_at IS NULL) FROM runs WHERE {quote(by)} = {second}"
        )
    else:
        sql = f"SELECT {columns} FROM runs WHERE {quote(by)} = {placeholders(dialect.name, 1)}"
    # Elsewhere than SQLite, the row lock is the run's ingest lock, held until commit.
    return sql if dialect.name == "sqlite" else sql + " FOR UPDATE"


@functools.lru_cache(maxsize=256)
def run_update_sql(dialect: Dialect, columns: tuple[str, ...]) -> str:
    quote = dialect.identifier_preparer.quote
    marks = placeholders(dialect.name, len(columns) + 1).split(", ")
    sets = ", ".join(f"{quote(c)} = {m}" for c, m in zip(columns, marks, strict=False))
    return f"UPDATE runs SET {sets} WHERE pk = {marks[-1]}"


def update_run_row(conn: Connection, run_pk: int, values: dict[str, Any]) -> None:
    driver_execute(conn, run_update_sql(conn.dialect, tuple(values)), (*values.values(), run_pk))


_RunRow = namedtuple("_RunRow", _RUN_COLUMNS)  # type: ignore[misc]


def select_run(conn: Connection, by: str, value: Any) -> Any:
    """The run's row (locked elsewhere than SQLite) as a ``_RunRow``, or None."""
    row = driver_execute(conn, _run_select_sql(conn.dialect, by), (value,)).fetchone()
    return None if row is None else _RunRow(*row)


def _select_run_for_key(conn: Connection, run_id: str, api_key_id: int) -> Any:
    """Like ``_select_run`` by id, after checking that API key ``api_key_id`` is unrevoked
    (Unauthorized if not, whether or not the run exists)."""
    sql = _run_select_sql(conn.dialect, "id", key_check=True)
    row = driver_execute(conn, sql, (api_key_id, run_id)).fetchone()
    if row is None:
        # No such run: the key's validity, for the right refusal (401 before 404).
        if not _key_valid(conn, api_key_id):
            raise key_refused()
        return None
    if not row[-1]:
        raise key_refused()
    return _RunRow(*row[:-1])


def _key_valid(conn: Connection, api_key_id: int) -> bool:
    """Whether API key ``api_key_id`` is unrevoked."""
    return bool(
        driver_execute(
            conn,
            f"SELECT COUNT(*) FROM api_keys WHERE id = {placeholders(conn.dialect.name, 1)} "
            "AND revoked_at IS NULL",
            (api_key_id,),
        ).fetchone()[0]
    )


def key_refused() -> Unauthorized:
    """The refusal of a revoked (or deleted) API key, as the auth middleware words it."""
    return Unauthorized(
        "this API key is not valid (revoked or mistyped); create one with "
        "`gradexp server key create NAME`",
        code="unauthorized",
    )


class ProjectOwners:
    """Per-process map ``project id -> owner id``, for the access check of every batch.

    A project never changes owner, so an entry never goes stale. Bounded LRU over projects.
    Used inside write transactions, which run on the SQLite writer thread or on the event
    loop (PostgreSQL, MySQL), hence the lock (uncontended: one lookup per batch).
    """

    def __init__(self, max_projects: int = 10_000) -> None:
        self._owners: OrderedDict[int, int] = OrderedDict()
        self._max = max_projects
        self._lock = threading.Lock()

    def get(self, project_id: int) -> int | None:
        """The owner of a project, if known."""
        with self._lock:
            owner = self._owners.get(project_id)
            if owner is not None:
                self._owners.move_to_end(project_id)
            return owner

    def add(self, project_id: int, owner_id: int) -> None:
        """Remember a project's owner."""
        with self._lock:
            self._owners[project_id] = owner_id
            if len(self._owners) > self._max:
                self._owners.popitem(last=False)


def lock_owned_run(
    conn: Connection,
    user_id: int,
    run_id: str,
    owners: ProjectOwners,
    api_key_id: int | None,
    rank: int = 0,
) -> Any:
    """The caller's run (or its writer ``rank``), locked: NotFound if missing or out of
    their reach, Gone if they deleted it, Unauthorized if ``api_key_id`` was revoked."""
    if rank:
        if api_key_id is not None and not _key_valid(conn, api_key_id):
            raise key_refused()
        run = _select_writer(conn, run_id, rank)
    elif api_key_id is None:
        run = select_run(conn, "id", run_id)
    else:
        run = _select_run_for_key(conn, run_id, api_key_id)
    if run is not None:
        owner = owners.get(run.project_id)
        if owner is None:
            owner = conn.execute(
                select(s.projects.c.owner_id).where(s.projects.c.id == run.project_id)
            ).scalar_one()
            owners.add(run.project_id, owner)
        if owner != user_id and not can_log(
            project_role_sync(conn, User(id=user_id, name=""), run.project_id)
        ):
            run = None  # out of reach, or a team's viewer (or a removed member): no such run
    if run is None:
        raise deleted_refusal(conn, user_id, run_id) or run_not_found(run_id)
    return run


def _select_writer(conn: Connection, run_id: str, rank: int) -> Any:
    """The row of writer ``rank`` of run ``run_id`` (locked elsewhere than SQLite), or None
    (no such run, or the writer never created its row: it PUTs first)."""
    r = s.runs
    parent = conn.execute(select(r.c.pk).where(r.c.id == run_id, r.c.parent_pk.is_(None))).scalar()
    if parent is None:
        return None
    return select_run(conn, "id", writer_id(int(parent), rank))
