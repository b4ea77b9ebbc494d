"""What every ``gradexp server`` command shares: the storage options, the settings they
resolve to, and running a coroutine (with the database) from the command's thread.

Errors the user can act on (a domain refusal, a bad setting, an unreachable database or
store) come out of :func:`run_sync` as one-line ``click`` errors, never tracebacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from gradexp.server.settings import ServerSettings, resolve_settings

F = TypeVar("F", bound=Callable[..., Any])


def storage_options(func: F) -> F:
    """--data, --db and --store, on the group and on every subcommand."""
    func = click.option(
        "--store",
        envvar="GRADEXP_SERVER_STORE",
        default=None,
        metavar="URL",
        help="Object store: a folder path or s3://BUCKET/PREFIX (AWS_* environment variables "
        "give the endpoint, keys and region). Default: DATA/objects.",
    )(func)
    func = click.option(
        "--db",
        envvar="GRADEXP_SERVER_DB",
        default=None,
        metavar="URL",
        help="Database: sqlite:///PATH, postgresql://USER:PASS@HOST/DB or mysql://USER:PASS@HOST/DB. "
        "Default: SQLite at DATA/gradexp.db.",
    )(func)
    func = click.option(
        "--data",
        envvar="GRADEXP_SERVER_DATA",
        default=None,
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="Folder for the default SQLite database and object store.",
    )(func)
    return func


def settings_for(
    ctx: click.Context, data: str | None, db: str | None, store: str | None, **kw: Any
) -> ServerSettings:
    """The settings a command runs with: its own storage options, else the group's."""
    parent = (ctx.find_object(dict) or {}) if ctx else {}
    try:
        return resolve_settings(
            data=data or parent.get("data"),
            db=db or parent.get("db"),
            store=store or parent.get("store"),
            **kw,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a loop of its own; a domain refusal, a bad value or an unreachable
    database or store becomes a one-line error."""
    # The CLI owns its thread: no loop is running here, so asyncio.run is right.
    from gradexp.server.domain.errors import DomainError
    from gradexp.server.storage.migrate import MigrationError
    from gradexp.server.storage.private import private_umask

    try:
        with private_umask():  # a database or export this makes is private (storage/private.py)
            return asyncio.run(coro)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    except (ValueError, MigrationError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the database or store: {exc}") from None


async def with_db(settings: ServerSettings, action: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """``action(database)`` on the settings' database, migrated first, disposed of after."""
    from gradexp.server.storage.db import Database
    from gradexp.server.storage.migrate import migrate

    db = Database(settings.db_url)
    try:
        await migrate(db)
        return await action(db)
    finally:
        await db.dispose()
