"""Admin operations behind the CLI: users, keys, exports. Raise ValueError with the
message a person should see."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gradexp.server import schema as s
from gradexp.server.auth import hash_key, key_prefix, new_api_key
from gradexp.server.db import Database

USER_NAME_MAX = 128


def _check_user_name(name: str) -> None:
    from gradexp.protocol.names import PROJECT_NAME_RE

    if not PROJECT_NAME_RE.fullmatch(name):
        raise ValueError(f"invalid user name {name!r}: use letters, digits, '.', '_' or '-'")


async def create_user(db: Database, name: str) -> int:
    """Add a user; ValueError if the name is taken."""
    _check_user_name(name)

    def add(conn: Connection) -> int:
        result = conn.execute(insert(s.users).values(name=name, created_at=time.time()))
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    try:
        return await db.write(add)
    except IntegrityError:
        raise ValueError(f"user {name!r} already exists") from None


async def user_id(db: Database, name: str) -> int:
    """A user's id; ValueError if there is no such user."""
    async with db.read() as conn:
        uid = (await conn.execute(select(s.users.c.id).where(s.users.c.name == name))).scalar()
    if uid is None:
        raise ValueError(f"no user {name!r}: create it with `gradexp server user add {name}`")
    return int(uid)


async def list_users(db: Database) -> list[dict[str, Any]]:
    """Every user."""
    async with db.read() as conn:
        rows = await conn.execute(
            select(s.users.c.name, s.users.c.created_at).order_by(s.users.c.id)
        )
        return [{str(k): v for k, v in r._asdict().items()} for r in rows]


async def create_key(db: Database, user: str, name: str = "default") -> str:
    """A new API key for ``user``; returns the key (only its hash is stored)."""
    uid = await user_id(db, user)
    key = new_api_key()

    def add(conn: Connection) -> None:
        conn.execute(
            insert(s.api_keys).values(
                user_id=uid,
                name=name[:128],
                prefix=key_prefix(key),
                key_hash=hash_key(key),
                created_at=time.time(),
            )
        )

    await db.write(add)
    return key


async def list_keys(db: Database, user: str) -> list[dict[str, Any]]:
    """A user's keys, without secrets."""
    uid = await user_id(db, user)
    k = s.api_keys
    async with db.read() as conn:
        rows = await conn.execute(
            select(k.c.name, k.c.prefix, k.c.created_at, k.c.last_used_at, k.c.revoked_at)
            .where(k.c.user_id == uid)
            .order_by(k.c.id)
        )
        return [{str(k): v for k, v in r._asdict().items()} for r in rows]


async def revoke_key(db: Database, prefix_or_key: str) -> int:
    """Revoke keys by whole key or by prefix; returns how many."""
    k = s.api_keys
    cond = (
        k.c.key_hash == hash_key(prefix_or_key)
        if len(prefix_or_key) > 20
        else k.c.prefix == prefix_or_key
    )

    def revoke(conn: Connection) -> int:
        result = conn.execute(
            update(k).where(cond, k.c.revoked_at.is_(None)).values(revoked_at=time.time())
        )
        return int(result.rowcount)

    return await db.write(revoke)


async def export_run(db: Database, run_id: str, path: Path) -> int:
    """Write a run's history to ``path`` as Parquet; returns the row count."""
    from gradexp.server.export import write_export_file

    async with db.read() as conn:
        pk = (await conn.execute(select(s.runs.c.pk).where(s.runs.c.id == run_id))).scalar()
        if pk is None:
            raise ValueError(f"no run {run_id!r} in this database")
        count = (
            await conn.execute(
                select(func.count()).select_from(s.history).where(s.history.c.run_pk == pk)
            )
        ).scalar_one()
    path.parent.mkdir(parents=True, exist_ok=True)
    await write_export_file(db, int(pk), path)
    return int(count)
