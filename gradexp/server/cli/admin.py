"""``gradexp server user|key|team|gc``: accounts, API keys, teams, and reclaiming storage.

Each command works on the data a server uses, with the same storage options
(shared.py); the package's ``__init__`` adds these to the ``gradexp server`` group.
"""

from __future__ import annotations

import time
from typing import Any

import click

from gradexp.server.cli.shared import run_sync, settings_for, storage_options, with_db


@click.group("user")
def user_group() -> None:
    """Manage users."""


def _read_new_password(password_stdin: bool, what: str) -> str | None:
    """A new password: one line from stdin, or asked twice on a terminal (None: neither)."""
    import sys

    from gradexp.server.domain.accounts.passwords import check_new_password
    from gradexp.server.domain.errors import DomainError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
    elif sys.stdin.isatty() and sys.stdout.isatty():
        password = click.prompt(
            f"Password for {what}", hide_input=True, confirmation_prompt="Repeat the password"
        )
    else:
        return None
    try:
        check_new_password(password)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    return password


@user_group.command("add")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (one line) instead of asking for it.",
)
@click.option(
    "--no-password",
    is_flag=True,
    help="No password: the user cannot sign in to the web UI, only use API keys.",
)
@storage_options
@click.pass_context
def user_add(
    ctx: click.Context,
    name: str,
    password_stdin: bool,
    no_password: bool,
    data: str | None,
    db: str | None,
    store: str | None,
) -> None:
    """Create user NAME, asking for a password (twice) to sign in to the web UI.

    \b
    Examples:
      gradexp server user add ada
      echo "$ADA_PASSWORD" | gradexp server user add ada --password-stdin
    """
    from gradexp.server.domain.accounts.passwords import PasswordHasher
    from gradexp.server.domain.accounts.users import create_user

    if password_stdin and no_password:
        raise click.UsageError("--password-stdin and --no-password contradict each other")
    password = None if no_password else _read_new_password(password_stdin, name)
    settings = settings_for(ctx, data, db, store)

    async def add(database: Any) -> None:
        passwords = PasswordHasher()
        try:
            await create_user(database, name, password, passwords=passwords)
        finally:
            passwords.close()

    run_sync(with_db(settings, add))
    if password is None:
        click.echo(
            f"created user {name} without a password (API keys only): make a key with "
            f"`gradexp server key create {name}`, or set a password with "
            f"`gradexp server user passwd {name}`"
        )
    else:
        click.echo(f"created user {name}; sign in on the server's web page, or run `gradexp login`")


@user_group.command("passwd")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the new password from standard input (one line) instead of asking for it.",
)
@storage_options
@click.pass_context
def user_passwd(
    ctx: click.Context,
    name: str,
    password_stdin: bool,
    data: str | None,
    db: str | None,
    store: str | None,
) -> None:
    """Set user NAME's password; their browser sessions end (API keys keep working)."""
    from gradexp.server.domain.accounts.passwords import PasswordHasher
    from gradexp.server.domain.accounts.users import set_password

    password = _read_new_password(password_stdin, name)
    if password is None:
        raise click.ClickException(
            "no terminal to ask for the password on: pass it with --password-stdin"
        )
    settings = settings_for(ctx, data, db, store)

    async def change(database: Any) -> None:
        passwords = PasswordHasher()
        try:
            await set_password(database, name, password, passwords=passwords)
        finally:
            passwords.close()

    run_sync(with_db(settings, change))
    click.echo(f"password of {name} changed; their browser sessions were signed out")


@user_group.command("login-link")
@click.argument("name")
@click.option(
    "--url",
    default=None,
    help="The server's address as a browser reaches it. Default: GRADEXP_PUBLIC_URL, "
    "else http://127.0.0.1:8080.",
)
@click.option(
    "--next",
    "next_path",
    metavar="PATH",
    default=None,
    help="A page of the server to open once signed in, e.g. /r/RUN_ID.",
)
@storage_options
@click.pass_context
def user_login_link(
    ctx: click.Context,
    name: str,
    url: str | None,
    next_path: str | None,
    data: str | None,
    db: str | None,
    store: str | None,
) -> None:
    """Print a one-time link that signs NAME in to the web UI (valid for a day).

    For a user without a password, a demo, or someone who forgot theirs.
    """
    from gradexp.server.domain.accounts.codes import create_login_link

    settings = settings_for(ctx, data, db, store)
    token = run_sync(
        with_db(settings, lambda database: create_login_link(database, name, settings.policy))
    )
    from urllib.parse import urlencode

    base = url or settings.public_url or "http://127.0.0.1:8080"
    query = {"token": token, **({"next": next_path} if next_path else {})}
    click.echo(f"{base.rstrip('/')}/login/link?{urlencode(query)}")


@user_group.command("list")
@storage_options
@click.pass_context
def user_list(ctx: click.Context, data: str | None, db: str | None, store: str | None) -> None:
    """List users."""
    from gradexp.server.domain.accounts.users import list_users

    settings = settings_for(ctx, data, db, store)
    for row in run_sync(with_db(settings, list_users)):
        click.echo(
            f"{row['name']}\tcreated {time.strftime('%Y-%m-%d %H:%M', time.localtime(row['created_at']))}"
        )


@click.group("key")
def key_group() -> None:
    """Manage API keys."""


@key_group.command("create")
@click.argument("user")
@click.option(
    "--name", "key_name", default="default", show_default=True, help="A label to tell keys apart."
)
@storage_options
@click.pass_context
def key_create(
    ctx: click.Context,
    user: str,
    key_name: str,
    data: str | None,
    db: str | None,
    store: str | None,
) -> None:
    """Create an API key for USER and print it (shown once: store it now)."""
    from gradexp.server.domain.accounts.keys import create_key

    settings = settings_for(ctx, data, db, store)
    key = run_sync(with_db(settings, lambda database: create_key(database, user, key_name)))
    click.echo(key)
    click.echo(
        f"(API key {key_name!r} for {user}; it is shown only once. Use it as GRADEXP_API_KEY.)",
        err=True,
    )


@key_group.command("list")
@click.argument("user")
@storage_options
@click.pass_context
def key_list(
    ctx: click.Context, user: str, data: str | None, db: str | None, store: str | None
) -> None:
    """List USER's keys: prefix, name, state and id (keys themselves are stored hashed)."""
    from gradexp.server.domain.accounts.keys import list_user_keys
    from gradexp.server.domain.accounts.users import get_account

    async def listing(database: Any) -> list[dict[str, Any]]:
        account = await get_account(database, user)
        return await list_user_keys(database, account.id)

    settings = settings_for(ctx, data, db, store)
    for k in reversed(run_sync(with_db(settings, listing))):  # oldest first
        status = "revoked" if k["revoked_at"] else "active"
        click.echo(f"{k['prefix']}…\t{k['name']}\t{status}\tid {k['id']}")


@key_group.command("revoke")
@click.argument("key")
@click.option("--user", default=None, metavar="NAME", help="Only look among NAME's keys.")
@storage_options
@click.pass_context
def key_revoke(
    ctx: click.Context,
    key: str,
    user: str | None,
    data: str | None,
    db: str | None,
    store: str | None,
) -> None:
    """Revoke one API key, named by its id (from `key list`), its prefix or the whole key.

    A prefix that matches several keys revokes nothing: the error lists them by id.

    \b
    Examples:
      gradexp server key revoke 7
      gradexp server key revoke gx_AbCd --user ada
    """
    from gradexp.server.domain.accounts.keys import revoke_key

    settings = settings_for(ctx, data, db, store)
    revoked = run_sync(with_db(settings, lambda database: revoke_key(database, key, user=user)))
    click.echo(
        f"revoked 1 key: {revoked.prefix}… {revoked.name!r} of {revoked.user} (id {revoked.id})"
    )


@click.group("team")
def team_group() -> None:
    """Manage teams: entities that own projects, with members as viewer, member or admin."""


@team_group.command("create")
@click.argument("name")
@storage_options
@click.pass_context
def team_create(
    ctx: click.Context, name: str, data: str | None, db: str | None, store: str | None
) -> None:
    """Create team NAME (teams and users share names). Then add members with `team add`.

    \b
    Examples:
      gradexp server team create vision
      gradexp server team add vision ada --role admin
    """
    from gradexp.server.domain.teams import create_team

    settings = settings_for(ctx, data, db, store)
    run_sync(with_db(settings, lambda database: create_team(database, name)))
    click.echo(
        f"created team {name}; add members with `gradexp server team add {name} USER "
        "--role admin|member|viewer`"
    )


@team_group.command("add")
@click.argument("team")
@click.argument("user")
@click.option(
    "--role",
    type=click.Choice(["viewer", "member", "admin"]),
    default="member",
    show_default=True,
    help="viewer: reads; member: also logs runs and edits their own; admin: also edits any "
    "run, manages members and deletes projects.",
)
@storage_options
@click.pass_context
def team_add(
    ctx: click.Context,
    team: str,
    user: str,
    role: str,
    data: str | None,
    db: str | None,
    store: str | None,
) -> None:
    """Add USER to TEAM as ROLE, or change their role (at once, on every server process)."""
    from gradexp.server.domain.teams import set_member

    settings = settings_for(ctx, data, db, store)
    added = run_sync(with_db(settings, lambda database: set_member(database, team, user, role)))
    click.echo(f"{'added' if added else 'changed'} {user} in team {team}: {role}")


@team_group.command("remove")
@click.argument("team")
@click.argument("user")
@storage_options
@click.pass_context
def team_remove(
    ctx: click.Context,
    team: str,
    user: str,
    data: str | None,
    db: str | None,
    store: str | None,
) -> None:
    """Remove USER from TEAM: the team's projects are out of their reach at once (open live
    pages end within seconds)."""
    from gradexp.server.domain.teams import remove_member

    settings = settings_for(ctx, data, db, store)
    run_sync(with_db(settings, lambda database: remove_member(database, team, user)))
    click.echo(f"removed {user} from team {team}")


@team_group.command("list")
@storage_options
@click.pass_context
def team_list(ctx: click.Context, data: str | None, db: str | None, store: str | None) -> None:
    """List teams and their members with their roles."""
    from gradexp.server.domain.teams import list_teams

    settings = settings_for(ctx, data, db, store)
    for team in run_sync(with_db(settings, list_teams)):
        members = ", ".join(f"{m['name']} ({m['role']})" for m in team["members"])
        click.echo(f"{team['name']}\t{members or 'no members'}")


@click.command("gc")
@click.option(
    "--dry-run", is_flag=True, help="Only report what would be reclaimed; change nothing."
)
@storage_options
@click.pass_context
def gc_command(
    ctx: click.Context, dry_run: bool, data: str | None, db: str | None, store: str | None
) -> None:
    """Reclaim storage: deleted runs' and projects' rows and objects, orphan objects,
    and uploads abandoned for an hour.

    A running server reclaims deleted runs and projects by itself; gc also finds what
    nothing reclaims (objects no row names, an export made after its run was deleted,
    the parts of an upload nobody finished). It reads the whole object store, so it
    can take a while on a large one.

    \b
    Examples:
      gradexp server gc --dry-run
      gradexp server gc --db postgresql://gx@db/gradexp --store s3://bucket/gradexp
    """
    from gradexp.server.domain.gc import collect, survey
    from gradexp.server.domain.reclaim import Reclaimer
    from gradexp.server.storage.objects import ObjectStore

    settings = settings_for(ctx, data, db, store)

    async def go(database: Any) -> None:
        objects = ObjectStore(settings.store_url, settings.s3_endpoint, settings.s3_region)
        reclaimer = Reclaimer(database, objects)
        report = await survey(reclaimer)
        heading = "would reclaim (dry run):" if dry_run else "reclaiming:"
        click.echo(heading)
        for line in report.lines():
            click.echo(f"  {line}")
        if dry_run:
            return
        done = await collect(reclaimer, report)
        click.echo(
            f"done: {done.runs} deleted runs, {done.projects} deleted projects' artifacts "
            f"and {done.rows:,} rows reclaimed, {len(report.objects):,} orphan objects removed, "
            f"{len(report.uploads):,} abandoned uploads removed"
        )

    run_sync(with_db(settings, go))
