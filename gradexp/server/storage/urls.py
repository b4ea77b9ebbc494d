"""Database URLs: which database one names, which asyncio driver serves it, how to print it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


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
