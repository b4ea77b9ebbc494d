"""``gradexp login`` and ``gradexp logout``: the commands around the login flow
(``gradexp.sdk.login``), and the login line of ``gradexp status``."""

from __future__ import annotations

import os
import sys

import click

from gradexp.core.credentials import delete_credentials, load_credentials, mask_key, normalize_url
from gradexp.core.settings import ENV_API_KEY
from gradexp.errors import GradexpError, LoginError
from gradexp.protocol.wire import KEYS_PAGE_PATH
from gradexp.sdk.login import BROWSER_TIMEOUT, login_flow, whoami

__all__ = ["describe_login", "login_command", "logout_command"]


@click.command("login")
@click.argument("url", required=False, metavar="[URL]")
@click.option("--host", "host_option", metavar="URL", help="The server (same as URL).")
@click.option("--relogin", is_flag=True, help="Log in again even if a stored key still works.")
@click.option(
    "--key",
    metavar="KEY",
    help="Store this API key (checked with the server first) instead of using the browser; "
    "'-' reads it from standard input.",
)
@click.option(
    "--no-browser",
    is_flag=True,
    help="Do not open a browser: paste a key made on the server's keys page.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=BROWSER_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the browser before asking for a key instead.",
)
def login_command(
    url: str | None,
    host_option: str | None,
    relogin: bool,
    key: str | None,
    no_browser: bool,
    timeout: float,
) -> None:
    """Log in to a gradexp server: sign in in the browser, and store a new API key.

    The server defaults to GRADEXP_BASE_URL, else the last server you logged in to, else
    http://127.0.0.1:8080. The key is stored (mode 0600) in the credentials file under
    your config dir, one per server; GRADEXP_API_KEY wins over it.

    \b
    Examples:
      gradexp login                                 # the default server
      gradexp login --host http://gpu-box:8080      # sign in in the browser that opens
      gradexp login --host http://gpu-box:8080 --no-browser   # over SSH: paste a key
      echo "$KEY" | gradexp login --host http://gpu-box:8080 --key -
    """
    if url and host_option and normalize_url(url) != normalize_url(host_option):
        raise click.UsageError("give the server once: as URL or as --host, not both")
    if key == "-":
        key = sys.stdin.readline().strip()
        if not key:
            raise click.ClickException("--key -: no key on standard input; nothing was stored.")
    try:
        identity, stored = login_flow(
            key=key,
            host=url or host_option,
            relogin=relogin,
            timeout=timeout,
            no_browser=no_browser,
        )
    except GradexpError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException("login cancelled; nothing was stored.") from None
    if stored:
        click.echo(f"Logged in to {identity.host} as {identity.user}")
    else:
        click.echo(
            f"Already logged in to {identity.host} as {identity.user} "
            "(use --relogin to log in again)"
        )


@click.command("logout")
@click.argument("url", required=False, metavar="[URL]")
@click.option("--host", "host_option", metavar="URL", help="The server (same as URL).")
def logout_command(url: str | None, host_option: str | None) -> None:
    """Forget the API key stored for a server (default: the one you logged in to last).

    The key stays valid on the server until you revoke it on the server's keys page.

    \b
    Example:
      gradexp logout --host http://gpu-box:8080
    """
    try:
        given = url or host_option
        server = normalize_url(given) if given else load_credentials()["default_host"]
    except GradexpError as exc:
        raise click.ClickException(str(exc)) from None
    if not server:
        click.echo("Not logged in to any server; nothing to forget.")
        return
    if delete_credentials(server):
        click.echo(f"Logged out of {server}: its key is no longer stored here.")
        click.echo(f"(The key still works until revoked at {server}{KEYS_PAGE_PATH}.)", err=True)
    else:
        click.echo(f"No key stored for {server}; nothing to forget.")
    if os.environ.get(ENV_API_KEY):
        click.echo(f"Note: {ENV_API_KEY} is still set in this environment.", err=True)


def describe_login(host: str | None, key: str | None) -> str:
    """One line for ``gradexp status``: who the server says we are (it is asked)."""
    if not host:
        return "not logged in (run `gradexp login`)"
    if not key:
        return f"not logged in to {host} (run `gradexp login --host {host}`)"
    try:
        identity = whoami(host, key, timeout=5.0)
    except LoginError as exc:
        return str(exc)
    return f"{identity.user} at {host} (key {identity.key_name or '?'}, {mask_key(key)})"
