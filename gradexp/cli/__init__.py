"""The ``gradexp`` command line: the top layer of the client.

The client's commands live in this package (``client``: sync and status; ``login``:
login and logout; ``demo``), the server's in ``gradexp.server.cli``. This module only
assembles them, and it imports them lazily so that ``gradexp --help`` stays fast and a
missing server extra only affects the server commands.
"""

from __future__ import annotations

import importlib

import click

from gradexp.protocol.wire import VERSION

# command name -> "module:attribute". Commands are loaded when invoked (or listed by --help).
_COMMANDS: dict[str, str] = {
    # the client's
    "sync": "gradexp.cli.client:sync",
    "status": "gradexp.cli.client:status",
    "demo": "gradexp.cli.demo:demo",
    "login": "gradexp.cli.login:login_command",
    "logout": "gradexp.cli.login:logout_command",
    # the server's; they need the `server` extra
    "server": "gradexp.server.cli:server",
    "export": "gradexp.server.cli:export",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            return _unavailable(cmd_name, f"it needs a package that is not installed ({missing})")
        command: click.Command = getattr(module, attr)
        return command


def _unavailable(name: str, why: str) -> click.Command:
    hint = (
        ' Install the server extra: pip install "gradexp[server]".'
        if name
        in (
            "server",
            "export",
        )
        else ""
    )

    @click.command(
        name=name, help=f"(unavailable: {why})", context_settings={"ignore_unknown_options": True}
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"`gradexp {name}` is unavailable: {why}.{hint}")

    return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name="gradexp")
def main() -> None:
    """gradexp: experiment tracking for metrics, histograms and tensors."""
