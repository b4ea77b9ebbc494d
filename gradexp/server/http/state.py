"""What one server process holds (:class:`AppState`), and how a request reaches it.

Every per-process object lives here, made once by ``app.open_state`` and each bounded:
no module of the server keeps state of its own in globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from gradexp.server.domain.accounts.keys import KeyCache
from gradexp.server.domain.accounts.passwords import PasswordHasher
from gradexp.server.domain.accounts.revocations import Revocations
from gradexp.server.domain.accounts.signin import PasswordSignIn
from gradexp.server.domain.alerts import AlertSender
from gradexp.server.domain.decode_pool import DecodePool
from gradexp.server.domain.export import Exporter
from gradexp.server.domain.ingest import KeyIdCache
from gradexp.server.domain.live.cursor_store import CursorStore
from gradexp.server.domain.live.hub import LiveHub
from gradexp.server.domain.pacing import Pacer
from gradexp.server.domain.reclaim import Reclaimer
from gradexp.server.domain.run_lock import ProjectOwners
from gradexp.server.domain.tensors import ArrayCache
from gradexp.server.domain.value_checks import ValidKeys
from gradexp.server.http.shell import Shell
from gradexp.server.settings import ServerSettings
from gradexp.server.storage.db import Database
from gradexp.server.storage.objects import ObjectStore


@dataclass
class AppState:
    """The process's shared objects (``request.app[STATE]``), with the bound of each cache."""

    settings: ServerSettings
    db: Database
    objects: ObjectStore
    live: LiveHub  # the live streams: one poll per interval, a mailbox per stream (4 MiB)
    revocations: Revocations  # told when a key or session dies, so its streams end
    exporter: Exporter  # Parquet exports of finished runs, one task per run at most
    reclaimer: Reclaimer  # deleted runs' storage, one task (one process at a time: a lease)
    decode_pool: DecodePool  # ingest decode workers: settings.ingest_workers processes
    passwords: PasswordHasher  # scrypt, at most SCRYPT_CONCURRENCY (2) threads
    sign_ins: PasswordSignIn  # its buckets (10,000 addresses), queue (16), unknown names
    alerts: AlertSender  # the alert webhook: a queue of 1,000, one delivery task
    pacer: Pacer  # how often writers should send: load and watched runs (domain/pacing.py)
    key_ids: KeyIdCache = field(default_factory=KeyIdCache)  # 10,000 runs, 500,000 ids
    project_owners: ProjectOwners = field(default_factory=ProjectOwners)  # LRU, 10,000
    valid_keys: ValidKeys = field(default_factory=ValidKeys)  # up to 100,000 key names
    arrays: ArrayCache = field(default_factory=ArrayCache)  # parsed tensors, 256 MiB
    api_keys: KeyCache = field(default_factory=KeyCache)  # keys valid lately, 10,000, 60 s
    cursors: CursorStore = field(default_factory=CursorStore)  # big stream cursors, 64 MiB
    _shell: Shell | None = field(default=None, init=False, repr=False)  # see shell

    @property
    def shell(self) -> Shell:
        """The web UI's page shell, read from ``static/`` the first time a page needs it
        (so making the app touches no files)."""
        if self._shell is None:
            self._shell = Shell()
        return self._shell


STATE = web.AppKey("gradexp_state", AppState)


def app_state(request: web.Request) -> AppState:
    """The state of the app serving ``request``."""
    return request.app[STATE]


def public_url(request: web.Request) -> str:
    """The URL users open: ``GRADEXP_PUBLIC_URL`` if set (behind a proxy), else this
    request's origin."""
    return app_state(request).settings.public_url or str(request.url.origin())
