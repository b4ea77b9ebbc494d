"""``gradexp server`` (run, migrate, users, keys, teams) and ``gradexp export``.

Every command takes the same storage options, so the admin commands work on the data a
server uses: ``--data DIR`` (default: a per-user data folder), ``--db URL`` and
``--store URL``, also read from ``GRADEXP_SERVER_DATA``, ``GRADEXP_SERVER_DB`` and
``GRADEXP_SERVER_STORE``.

This module holds ``gradexp server`` itself, ``migrate`` and ``export``; admin.py the
commands that manage users, keys, teams and storage (``gc``); shared.py the storage
options and the running of a command's coroutine, which they all use.
"""

from __future__ import annotations

from pathlib import Path

import click

from gradexp.server.cli.admin import gc_command, key_group, team_group, user_group
from gradexp.server.cli.shared import run_sync, settings_for, storage_options, with_db


@click.group(invoke_without_command=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="GRADEXP_SERVER_HOST",
    help="Interface to listen on (0.0.0.0 for all).",
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=int,
    envvar="GRADEXP_SERVER_PORT",
    help="TCP port.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="ADDRESS",
    envvar="GRADEXP_SERVER_TRUSTED_PROXIES",
    help="A reverse proxy (address or network, repeatable) whose X-Forwarded-For header "
    "names the client; sign-in limits count that address. Default: none, the header is "
    "ignored.",
)
@click.option(
    "--alert-webhook-url",
    default=None,
    metavar="URL",
    help="POST every alert runs send (gradexp.alert) to this URL as JSON; also "
    "GRADEXP_ALERT_WEBHOOK_URL. Default: alerts are only shown on the run page.",
)
@storage_options
@click.pass_context
def server(
    ctx: click.Context,
    host: str,
    port: int,
    trusted_proxies: tuple[str, ...],
    alert_webhook_url: str | None,
    data: str | None,
    db: str | None,
    store: str | None,
) -> None:
    """Run the gradexp server (or manage it: see the commands below).

    \b
    Examples:
      gradexp server                                  # SQLite + local folder in your data dir
      gradexp server --data ./gx --port 9000
      gradexp server --db postgresql://gx:secret@db/gradexp --store s3://bucket/gradexp
      gradexp server user add ada && gradexp server key create ada
    """
    ctx.ensure_object(dict)
    ctx.obj.update(data=data, db=db, store=store)
    if ctx.invoked_subcommand is not None:
        return
    from gradexp.server.app import run
    from gradexp.server.storage.migrate import MigrationError

    settings = settings_for(
        ctx,
        data,
        db,
        store,
        host=host,
        port=port,
        trusted_proxies=trusted_proxies,
        alert_webhook_url=alert_webhook_url,
    )
    try:
        run(settings)
    except (MigrationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None


@server.command("migrate")
@storage_options
@click.pass_context
def migrate_command(
    ctx: click.Context, data: str | None, db: str | None, store: str | None
) -> None:
    """Upgrade the database schema to this version (the server also does it at start)."""
    from gradexp.server.storage.db import Database
    from gradexp.server.storage.migrate import migrate

    settings = settings_for(ctx, data, db, store)

    async def go() -> tuple[str | None, str | None]:
        database = Database(settings.db_url)
        try:
            return await migrate(database)
        finally:
            await database.dispose()

    before, after = run_sync(go())
    if before == after:
        click.echo(f"database is up to date (schema revision {after})")
    else:
        click.echo(f"database upgraded from {before or 'empty'} to schema revision {after}")


# The commands that manage what a server holds (admin.py).
server.add_command(user_group)
server.add_command(key_group)
server.add_command(team_group)
server.add_command(gc_command)


@click.command("export")
@click.argument("run_id")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Output file (default: ./RUN_ID-history.parquet).",
)
@storage_options
@click.pass_context
def export(
    ctx: click.Context,
    run_id: str,
    out: str | None,
    data: str | None,
    db: str | None,
    store: str | None,
) -> None:
    """Write run RUN_ID's history as a Parquet file (also for a running run).

    Reads the server's storage directly, with the same --data/--db options as the server.
    """
    from gradexp.server.domain.export import export_run

    settings = settings_for(ctx, data, db, store)
    path = Path(out) if out else Path.cwd() / f"{run_id}-history.parquet"
    rows = run_sync(with_db(settings, lambda database: export_run(database, run_id, path)))
    click.echo(f"wrote {path} ({rows} rows)")


def main() -> None:
    """``python -m gradexp.server``."""
    server(prog_name="python -m gradexp.server")
