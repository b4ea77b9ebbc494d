"""Server settings: where the database and the objects live, and how to describe them.

The same options serve ``gradexp server``, its admin subcommands and ``gradexp export``, so
they are resolved here once: ``--data`` names a folder that holds the default SQLite
database (``gradexp.db``) and the default local object store (``objects/``); ``--db`` and
``--store`` override either one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DB_FILENAME = "gradexp.db"
OBJECTS_DIRNAME = "objects"


def default_data_dir() -> Path:
    """The per-user data folder used when ``--data`` is not given."""
    import platformdirs

    return Path(platformdirs.user_data_dir("gradexp", appauthor=False)) / "server"


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
    crash_after: float = 300.0  # a running run silent this long reads as "crashed"
    extra: dict[str, str] = field(default_factory=dict)

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
) -> ServerSettings:
    """Fill in the defaults: SQLite and a local object folder under the data folder."""
    data_dir = Path(data).expanduser().resolve() if data else default_data_dir()
    db_url = db or f"sqlite:///{data_dir / DB_FILENAME}"
    store_url = store or str(data_dir / OBJECTS_DIRNAME)
    poll = float(os.environ.get("GRADEXP_SERVER_POLL_INTERVAL", "0.2"))
    keepalive = float(os.environ.get("GRADEXP_SERVER_KEEPALIVE", "15"))
    crash_after = float(os.environ.get("GRADEXP_SERVER_CRASH_AFTER", "300"))
    return ServerSettings(
        data_dir=data_dir,
        db_url=db_url,
        store_url=store_url,
        host=host,
        port=port,
        poll_interval=poll,
        keepalive_interval=keepalive,
        crash_after=crash_after,
    )


def db_kind(url: str) -> str:
    """Which database a URL names; raises ValueError for anything else."""
    scheme = url.split(":", 1)[0].lower()
    base = scheme.split("+", 1)[0]
    if base in ("sqlite",):
        return "sqlite"
    if base in ("postgresql", "postgres"):
        return "postgresql"
    if base in ("mysql", "mariadb"):
        return "mysql"
    raise ValueError(
        f"unsupported database URL {mask_url(url)!r}: use sqlite:///PATH, "
        "postgresql://USER@HOST/DB or mysql://USER@HOST/DB"
    )


def async_db_url(url: str) -> str:
    """Map a user's database URL onto the asyncio driver SQLAlchemy should use."""
    kind = db_kind(url)
    rest = url.split(":", 1)[1]
    driver = {
        "sqlite": "sqlite+aiosqlite",
        "postgresql": "postgresql+asyncpg",
        "mysql": "mysql+aiomysql",
    }
    return f"{driver[kind]}:{rest}"


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs and the start banner)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def sqlite_path(url: str) -> Path | None:
    """The file a ``sqlite:///`` URL points at (None for an in-memory database)."""
    rest = url.split(":", 1)[1]
    path = rest[3:] if rest.startswith("///") else rest.lstrip("/")
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)
