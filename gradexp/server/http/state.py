"""What one server process holds: settings, database, object store and its helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from gradexp.server.domain.ingest import KeyIdCache
from gradexp.server.settings import ServerSettings
from gradexp.server.storage.db import Database
from gradexp.server.storage.objects import ObjectStore

if TYPE_CHECKING:
    from gradexp.server.domain.export import Exporter
    from gradexp.server.domain.notifier import Notifier


@dataclass
class AppState:
    """The process's shared objects (``request.app["state"]``)."""

    settings: ServerSettings
    db: Database
    objects: ObjectStore
    notifier: Notifier
    exporter: Exporter
    key_cache: KeyIdCache


def base_url(request: web.Request) -> str:
    """The URL users open: ``GRADEXP_PUBLIC_URL`` if set (behind a proxy), else this request's origin."""
    public = os.environ.get("GRADEXP_PUBLIC_URL")
    if public:
        return public.rstrip("/")
    return str(request.url.origin())
