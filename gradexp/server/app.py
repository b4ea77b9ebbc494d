"""The aiohttp application, and running it.

``make_app`` builds the app; ``serve`` runs it until SIGINT or SIGTERM. Startup migrates
the database before the port is opened, so a client never meets an old schema.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gradexp.protocol.wire import MAX_BODY_BYTES, VERSION
from gradexp.server.domain.accounts.codes import setup_token_if_needed
from gradexp.server.domain.accounts.keys import KeyCache
from gradexp.server.domain.accounts.passwords import PasswordHasher
from gradexp.server.domain.accounts.revocations import Revocations
from gradexp.server.domain.accounts.signin import PasswordSignIn
from gradexp.server.domain.alerts import AlertSender
from gradexp.server.domain.decode_pool import DecodePool
from gradexp.server.domain.export import Exporter
from gradexp.server.domain.ingest import tune_gc
from gradexp.server.domain.live.hub import LiveHub
from gradexp.server.domain.pacing import Pacer
from gradexp.server.domain.reclaim import Reclaimer
from gradexp.server.domain.value_checks import ValidKeys
from gradexp.server.http import (
    artifacts,
    authorize,
    health,
    ingest,
    keys,
    live,
    machine,
    manage,
    read,
    signin,
    static,
    teams,
    ui,
    ui_api,
    uploads,
)
from gradexp.server.http.auth import auth_middleware
from gradexp.server.http.errors import error_middleware
from gradexp.server.http.headers import add_security_headers
from gradexp.server.http.slow_clients import body_deadline_middleware
from gradexp.server.http.state import STATE, AppState
from gradexp.server.settings import ServerSettings
from gradexp.server.storage.db import Database
from gradexp.server.storage.migrate import migrate
from gradexp.server.storage.objects import ObjectStore, describe_store, local_store_path
from gradexp.server.storage.private import exposure_warning, private_umask
from gradexp.server.storage.urls import mask_url, sqlite_path

log = logging.getLogger("gradexp.server")


async def open_state(settings: ServerSettings, *, run_migrations: bool = True) -> AppState:
    """Connect to the database (migrating it) and the object store."""
    db = Database(settings.db_url)
    try:
        if run_migrations:
            before, after = await migrate(db)
            if before != after:
                log.info("database schema upgraded from %s to %s", before or "empty", after)
        objects = ObjectStore(settings.store_url, settings.s3_endpoint, settings.s3_region)
    except BaseException:
        await db.dispose()
        raise
    valid_keys = ValidKeys()
    passwords = PasswordHasher()
    revocations = Revocations()
    live = LiveHub(
        db,
        poll_interval=settings.poll_interval,
        keepalive_interval=settings.keepalive_interval,
        crash_after=settings.crash_after,
        max_streams_per_user=settings.max_streams_per_user,
        policy=settings.policy,
        revocations=revocations,
    )
    api_keys = KeyCache()
    revocations.listen(api_keys.credentials_ended)  # a key revoked here leaves at once
    return AppState(
        api_keys=api_keys,
        settings=settings,
        db=db,
        objects=objects,
        live=live,
        revocations=revocations,
        exporter=Exporter(db, objects),
        reclaimer=Reclaimer(db, objects),
        decode_pool=DecodePool(settings.ingest_workers, valid_keys),
        passwords=passwords,
        sign_ins=PasswordSignIn(db, settings.policy, passwords),
        alerts=AlertSender(settings.alert_webhook_url),
        pacer=Pacer(
            db,
            live.follows,
            target=settings.ingest_target,
            max_in_flight=settings.max_ingest_in_flight,
        ),
        valid_keys=valid_keys,
    )


def make_app(state: AppState) -> web.Application:
    """The web application over an opened state."""
    app = web.Application(
        middlewares=[body_deadline_middleware, error_middleware, auth_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[STATE] = state
    modules = (
        health,
        ingest,
        read,
        live,
        machine,
        artifacts,
        manage,
        signin,
        authorize,
        keys,
        static,
        ui,
        ui_api,
        teams,
        uploads,
    )
    for module in modules:
        app.add_routes(module.routes)
    # Every response, pages and API alike: the CSP and friends (http/headers.py).
    app.on_response_prepare.append(add_security_headers)

    async def on_startup(_app: web.Application) -> None:
        state.exporter.start()
        state.reclaimer.start()  # also finishes what a previous life left half-reclaimed

    async def on_shutdown(_app: web.Application) -> None:
        await state.live.close()  # end live streams so shutdown need not wait for them

    async def on_cleanup(_app: web.Application) -> None:
        await state.pacer.close()
        await state.alerts.close()
        await state.exporter.close()
        await state.reclaimer.close()
        await state.db.dispose()
        state.decode_pool.close()  # the ingest decode workers, if any started
        state.passwords.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def banner(settings: ServerSettings, url: str) -> str:
    """What the server prints when it is ready."""
    lines = [
        f"gradexp server {VERSION} is running: open {url}",
        f"  data dir      {settings.data_dir}",
        f"  database      {mask_url(settings.db_url)}",
        f"  object store  {describe_store(settings.store_url, settings.s3_endpoint)}",
        *(
            [f"  alert webhook {mask_url(settings.alert_webhook_url)}"]
            if settings.alert_webhook_url
            else []
        ),
        "  stop with Ctrl+C",
    ]
    return "\n".join(lines)


async def first_run_banner(state: AppState, url: str) -> str | None:
    """What ``gradexp server`` prints on a database without users: a one-time setup link
    (like Jupyter's token link) that lets the first visitor create the first account."""
    token = await setup_token_if_needed(state.db, state.settings.policy)
    if token is None:
        return None
    url = state.settings.public_url or url  # behind a proxy: the address people use
    return (
        "  no account yet: create the first one here (the link works once):\n"
        f"    {url.rstrip('/')}/setup?{urlencode({'token': token})}"
    )


def storage_paths(settings: ServerSettings) -> list[Path]:
    """The folders and files of this server's data on this machine (those that exist)."""
    paths = [settings.data_dir]
    db_file = sqlite_path(settings.db_url) if settings.db_kind == "sqlite" else None
    if db_file is not None:
        paths += [db_file.parent, db_file]
    store = local_store_path(settings.store_url)
    if store is not None:
        paths.append(store)
    return [p for p in paths if p.exists()]


async def serve(settings: ServerSettings) -> None:
    """Run the server until SIGINT/SIGTERM, then shut down gracefully."""
    state = await open_state(settings)
    warning = exposure_warning(storage_paths(settings))
    if warning:
        log.warning(warning)
    app = make_app(state)
    tune_gc()  # after the startup allocations: see domain/ingest.py
    # auto_decompress=False: the ingest route gunzips itself, with limits (gzip bombs).
    runner = web.AppRunner(
        app,
        auto_decompress=False,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=10.0,
        keepalive_timeout=settings.read_timeout,  # a request head's deadline: slow_clients.py
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(
            f"error: cannot listen on {settings.host}:{settings.port} ({exc.strerror}); "
            "pick another --port or stop whatever uses it"
        ) from None
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    display = "127.0.0.1" if settings.host in ("0.0.0.0", "") else host
    print(banner(settings, f"http://{display}:{settings.port}"), flush=True)
    setup_line = await first_run_banner(state, f"http://{display}:{settings.port}")
    if setup_line:
        print(setup_line, flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("gradexp server: shutting down", file=sys.stderr, flush=True)
    # Close listeners, let in-flight requests finish (bounded), then close the database.
    await runner.shutdown()
    await runner.cleanup()


def run(settings: ServerSettings) -> None:
    """Blocking entry point for the CLI."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # we log upgrades ourselves
    try:
        with private_umask():  # everything the server creates is 0600/0700 (private.py)
            asyncio.run(serve(settings))
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl+C
        pass


__all__: list[Any] = ["make_app", "open_state", "run", "serve"]
