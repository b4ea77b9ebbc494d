"""``gradexp sync`` and ``gradexp status``: the client side of the command line.

``sync`` uploads run files that the server has not (fully) acknowledged: offline runs,
runs whose upload was interrupted, runs of a process that was killed. It resumes each
from its ``ack.json`` and is idempotent: the server drops what it already has, and a
second ``sync`` finds nothing to send.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import click

from gradexp.core.credentials import config_dir, load_credentials, mask_key
from gradexp.core.settings import Settings, resolve_settings
from gradexp.errors import GradexpError
from gradexp.protocol.runfile import RunDir, RunFileError, find_run_dirs


def _runs_root(settings: Settings) -> str:
    return os.path.join(settings.dir, "gradexp")


def _settings_for(run: RunDir, base_url: str | None) -> Settings:
    """Where to upload ``run``: ``--base-url``, else the configured server, else run.json's."""
    try:
        settings = resolve_settings(base_url=base_url, mode="offline")
    except GradexpError as exc:
        raise click.ClickException(str(exc)) from None
    url = settings.base_url or run.meta.get("base_url")
    if not url:
        raise click.ClickException(
            "no server to sync to: pass --base-url, set GRADEXP_BASE_URL, or run `gradexp login URL`."
        )
    if url != settings.base_url:
        settings = resolve_settings(base_url=url, mode="offline")
    if not settings.api_key:
        raise click.ClickException(
            f"no API key for {url}: run `gradexp login {url}` or set GRADEXP_API_KEY."
        )
    return settings.with_(mode="online")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--base-url", help="Server to upload to (default: the configured one).")
@click.option(
    "--retry-for",
    type=float,
    default=120.0,
    show_default=True,
    help="Give up on a server that does not answer for this many seconds.",
)
def sync(paths: tuple[str, ...], base_url: str | None, retry_for: float) -> None:
    """Upload runs the server has not acknowledged yet (offline, interrupted or crashed).

    PATHS are run directories, or directories holding them (default: ./gradexp, or
    $GRADEXP_DIR/gradexp). Each run resumes from what the server acknowledged, so running
    sync twice sends nothing the second time.

    \b
    Examples:
      gradexp sync                                # every unsynced run under ./gradexp
      gradexp sync gradexp/latest-run             # one run
      gradexp sync --base-url http://gpu-box:8080 /data/gradexp
    """
    roots = paths or (_runs_root(resolve_settings(mode="offline")),)
    runs = find_run_dirs(*roots)
    if not runs:
        click.echo(f"No gradexp runs under {', '.join(roots)}.")
        return
    failed = 0
    for run in runs:
        try:
            pending = run.unsynced()
        except (OSError, RunFileError) as exc:
            click.echo(f"{os.path.basename(run.path)}: cannot read the run file ({exc}); skipped.")
            failed += 1
            continue
        label = f"{os.path.basename(run.path)}"
        if pending <= 0:
            click.echo(f"{label}: already synced.")
            continue
        settings = _settings_for(run, base_url)
        try:
            sent = asyncio.run(_sync_one(run, settings, pending, label, retry_for))
        except GradexpError as exc:
            click.echo(f"{label}: not synced: {exc}", err=True)
            failed += 1
            continue
        click.echo(f"{label}: synced {sent} records to {settings.base_url}/r/{run.run_id}")
    if failed:
        sys.exit(1)


async def _sync_one(
    run: RunDir, settings: Settings, pending: int, label: str, retry_for: float
) -> int:
    """Upload one run dir; returns how many records were sent."""
    from gradexp.transport.client import ServerClient
    from gradexp.transport.sources import FileSource
    from gradexp.transport.uploader import Uploader, UploadStopped

    meta = run.meta
    if not meta.get("id"):
        raise GradexpError(f"{run.path}/run.json is missing or damaged")
    meta.setdefault("first_seq", 1)
    client = ServerClient(settings, run_dir=run.path)
    client.give_up_after = retry_for
    acked, offset = run.read_ack()
    start = max(acked, int(meta["first_seq"]) - 1)
    with click.progressbar(length=pending, label=label, file=sys.stderr) as bar:
        shown = 0

        def progress(acked_seq: int) -> None:
            nonlocal shown
            done = min(pending, acked_seq - start)
            if done > shown:
                bar.update(done - shown)
                shown = done

        uploader = Uploader(
            client, run, meta, settings, progress=progress, file_progress=FileProgress(label)
        )
        uploader.acked_seq = start
        try:
            source = FileSource(run, offset if acked == start else None)
            await uploader.upload_file(source)
        except UploadStopped as exc:
            raise GradexpError(str(exc)) from None
        except TimeoutError as exc:
            raise GradexpError(f"{exc}; the run file is kept, try again later") from None
        finally:
            await client.close()
    if source.corrupt_frames or source.torn_tail_bytes:
        click.echo(
            f"{label}: the run file was damaged: {source.corrupt_frames} corrupt frames skipped, "
            f"{source.torn_tail_bytes} bytes of a torn tail ignored (the rest was uploaded).",
            err=True,
        )
    return uploader.sent_records


class FileProgress:
    """One updating line per large file ``gradexp sync`` uploads (on stderr)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = (0.0, "")

    def __call__(self, name: str, sent: int, size: int) -> None:
        mib = 1024 * 1024
        line = f"{self.label}: {name} {sent / mib:.0f}/{size / mib:.0f} MiB ({100 * sent // size}%)"
        now = time.monotonic()
        if sent < size and now - self.last[0] < 0.2 and self.last[1]:
            return  # at most five updates a second
        self.last = (now, line)
        if sys.stderr.isatty():
            click.echo(f"\r{line}\x1b[K", nl=sent >= size, err=True)
        elif sent >= size:  # a log, not a terminal: the line once, when the file is up
            click.echo(line, err=True)


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Directory holding gradexp/ (default: . or $GRADEXP_DIR).",
)
def status(directory: str | None) -> None:
    """Show the mode, the server, whether a key is known, and the runs not yet synced.

    \b
    Example:
      gradexp status
    """
    try:
        settings = resolve_settings(dir=directory)
    except GradexpError as exc:
        settings = None
        click.echo(f"settings problem: {exc}")
    creds = load_credentials()
    if settings is not None:
        click.echo(f"mode:        {settings.mode}")
        click.echo(f"server:      {settings.base_url or '(none configured)'}")
        source = _key_source(settings, creds)
        click.echo(f"API key:     {mask_key(settings.api_key)}{source}")
        if settings.mode != "disabled":
            from gradexp.cli.login import describe_login  # asks the server (GET /api/v1/viewer)

            click.echo(f"logged in:   {describe_login(settings.base_url, settings.api_key)}")
    click.echo(f"config dir:  {config_dir()}")
    root = (
        _runs_root(settings) if settings is not None else os.path.join(directory or ".", "gradexp")
    )
    runs = find_run_dirs(root)
    rows: list[tuple[str, int, Any]] = []
    for run in runs:
        try:
            pending = run.unsynced()
        except (OSError, RunFileError):
            pending = -1
        if pending != 0:
            rows.append((os.path.basename(run.path), pending, run.meta.get("mode", "?")))
    click.echo(f"runs:        {len(runs)} under {root}, {len(rows)} not synced")
    for name, pending, mode in rows:
        what = "unreadable" if pending < 0 else f"{pending} records not uploaded"
        click.echo(f"  {name}  {what} ({mode})")
    if rows:
        click.echo("Upload them with: gradexp sync")


def _key_source(settings: Settings, creds: dict[str, Any]) -> str:
    if not settings.api_key:
        return ""
    if os.environ.get("GRADEXP_API_KEY") == settings.api_key:
        return " (from GRADEXP_API_KEY)"
    host = creds["hosts"].get(settings.base_url or "") or {}
    if host.get("api_key") == settings.api_key:
        user = host.get("user")
        return f" (from the credentials file{', user ' + user if user else ''})"
    return ""
