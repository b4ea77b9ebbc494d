"""Server settings: where the database and the objects live, and every knob, read once.

The same options serve ``gradexp server``, its admin subcommands and ``gradexp export``, so
they are resolved here once: ``--data`` names a folder that holds the default SQLite
database (``gradexp.db``) and the default local object store (``objects/``); ``--db`` and
``--store`` override either one.

Every environment variable the server reads is read here, once, by
:func:`resolve_settings` (the command-line options' own variables, such as
``GRADEXP_SERVER_DB``, are read by click): nothing reads the environment while serving.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gradexp.server.domain.accounts.policy import Policy
from gradexp.server.storage.urls import db_kind

log = logging.getLogger("gradexp.server")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DB_FILENAME = "gradexp.db"
OBJECTS_DIRNAME = "objects"

# Where a notebook may embed the pages (``run.display()``): this origin and any local
# Jupyter. Operators widen or narrow it with GRADEXP_SERVER_FRAME_ANCESTORS.
DEFAULT_FRAME_ANCESTORS = "'self' http://localhost:* http://127.0.0.1:* https://localhost:*"


def default_data_dir() -> Path:
    """The per-user data folder used when ``--data`` is not given."""
    import platformdirs

    return Path(platformdirs.user_data_dir("gradexp", appauthor=False)) / "server"


def default_ingest_workers() -> int:
    """Decode workers when ``GRADEXP_INGEST_WORKERS`` is not set: CPUs - 1, 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class ServerSettings:
    """Resolved settings of one server process (or one admin command)."""

    data_dir: Path
    db_url: str
    store_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    # Extra knobs, mostly for tests and operators; see docs/server.md.
    poll_interval: float = 0.2  # SSE: seconds between database polls for new rows
    keepalive_interval: float = 15.0  # SSE: seconds between ": keepalive" comments
    read_timeout: float = 30.0  # seconds to send a request's head; a body's grace period
    max_streams_per_user: int = 32  # SSE: open live streams per user and process; then 429
    # SSE: the longest project stream event id (a cursor); a longer one is kept in memory
    # and named by a token (domain/live/cursor_store.py). Under the 8 KB header line of
    # aiohttp and common proxies, with room for the moves since the cursor.
    max_event_id: int = 6000
    crash_after: float = 300.0  # a running run silent this long reads as "crashed"
    # The address people open, behind a proxy (GRADEXP_PUBLIC_URL); None: the request's.
    public_url: str | None = None
    frame_ancestors: str = DEFAULT_FRAME_ANCESTORS  # the pages' CSP frame-ancestors
    ingest_workers: int = field(default_factory=default_ingest_workers)  # 0: none
    policy: Policy = field(default_factory=Policy)  # sessions, codes, lockouts
    # Reverse proxies whose X-Forwarded-For names the client (--trusted-proxy); none: the
    # header is ignored and the connection's address is the client's.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    s3_endpoint: str | None = None  # AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
    s3_region: str | None = None  # AWS_REGION / AWS_DEFAULT_REGION
    # Where alerts are POSTed (--alert-webhook-url / GRADEXP_ALERT_WEBHOOK_URL); None: nowhere.
    alert_webhook_url: str | None = None
    # Pacing (domain/pacing.py): the batch latency past which writers are asked to send
    # less often (GRADEXP_SERVER_INGEST_TARGET, seconds), and the batches handled at once
    # past which new ones get 429 (GRADEXP_SERVER_MAX_INGEST_IN_FLIGHT).
    ingest_target: float = 0.05
    max_ingest_in_flight: int = 64

    @property
    def db_kind(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql``."""
        return db_kind(self.db_url)


def resolve_settings(
    data: str | os.PathLike[str] | None = None,
    db: str | None = None,
    store: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    environ: Mapping[str, str] | None = None,
    trusted_proxies: Sequence[str] = (),
    alert_webhook_url: str | None = None,
) -> ServerSettings:
    """Fill in the defaults (SQLite and a local object folder under the data folder) and
    read the environment's knobs (``environ``, default ``os.environ``). ValueError for a
    trusted proxy that is not an address or network. ``alert_webhook_url`` (the command
    line's) wins over ``GRADEXP_ALERT_WEBHOOK_URL``."""
    env = os.environ if environ is None else environ
    data_dir = Path(data).expanduser().resolve() if data else default_data_dir()
    d = Policy()
    return ServerSettings(
        data_dir=data_dir,
        db_url=db or f"sqlite:///{data_dir / DB_FILENAME}",
        store_url=store or str(data_dir / OBJECTS_DIRNAME),
        host=host,
        port=port,
        poll_interval=float(env.get("GRADEXP_SERVER_POLL_INTERVAL", "0.2")),
        keepalive_interval=float(env.get("GRADEXP_SERVER_KEEPALIVE", "15")),
        read_timeout=_seconds(env, "GRADEXP_SERVER_READ_TIMEOUT", 30.0),
        max_streams_per_user=_count(env, "GRADEXP_SERVER_MAX_STREAMS_PER_USER", 32),
        max_event_id=_count(env, "GRADEXP_SERVER_MAX_EVENT_ID", 6000),
        crash_after=float(env.get("GRADEXP_SERVER_CRASH_AFTER", "300")),
        ingest_target=_seconds(env, "GRADEXP_SERVER_INGEST_TARGET", 0.05),
        max_ingest_in_flight=_count(env, "GRADEXP_SERVER_MAX_INGEST_IN_FLIGHT", 64),
        public_url=(env.get("GRADEXP_PUBLIC_URL") or "").rstrip("/") or None,
        frame_ancestors=env.get("GRADEXP_SERVER_FRAME_ANCESTORS", DEFAULT_FRAME_ANCESTORS).strip(),
        ingest_workers=_ingest_workers(env.get("GRADEXP_INGEST_WORKERS", "")),
        policy=Policy(
            session_idle=_seconds(env, "GRADEXP_SERVER_SESSION_IDLE", d.session_idle),
            session_max=_seconds(env, "GRADEXP_SERVER_SESSION_MAX", d.session_max),
            code_ttl=_seconds(env, "GRADEXP_SERVER_LOGIN_CODE_TTL", d.code_ttl),
            lockout_base=_seconds(env, "GRADEXP_SERVER_LOCKOUT_BASE", d.lockout_base),
        ),
        trusted_proxies=parse_trusted_proxies(trusted_proxies),
        s3_endpoint=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
        s3_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        alert_webhook_url=_webhook_url(
            alert_webhook_url or env.get("GRADEXP_ALERT_WEBHOOK_URL", "").strip() or None
        ),
    )


def parse_trusted_proxies(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Addresses and networks (``127.0.0.1``, ``10.0.0.0/8``, ``::1``), each value one or
    several separated by commas or spaces."""
    return tuple(_network(item) for value in values for item in value.replace(",", " ").split())


def _network(item: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(item, strict=False)
    except ValueError:
        raise ValueError(
            f"trusted proxy {item!r} is not an IP address or network "
            "(for example 127.0.0.1, 10.0.0.0/8 or ::1)"
        ) from None


def _webhook_url(url: str | None) -> str | None:
    """An http(s) URL, or ValueError naming the setting."""
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        raise ValueError(
            f"the alert webhook URL {url!r} must start with http:// or https:// "
            "(--alert-webhook-url, GRADEXP_ALERT_WEBHOOK_URL)"
        )
    return url


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name, "") or default)
    except ValueError:
        return default


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            log.warning("%s=%r is not a number: using the default (%d)", name, value, default)
    return default


def _ingest_workers(value: str) -> int:
    value = value.strip()
    if value:
        try:
            return max(0, int(value))
        except ValueError:
            log.warning("GRADEXP_INGEST_WORKERS=%r is not a number: using the default", value)
    return default_ingest_workers()
