"""Settings: where and how a run logs, resolved once at ``init()``.

Resolution order, for every setting: arguments > environment > the user's config dir.

- Environment: ``GRADEXP_MODE``, ``GRADEXP_BASE_URL``, ``GRADEXP_API_KEY``,
  ``GRADEXP_PROJECT``, ``GRADEXP_ENTITY`` (a team to log to), ``GRADEXP_DIR``,
  ``GRADEXP_RUN_ID``, and for tuning
  ``GRADEXP_MEMORY_LIMIT`` (bytes, or with a suffix: ``64MiB``), ``GRADEXP_FINISH_TIMEOUT``
  (seconds), ``GRADEXP_QUIET`` (``1``: no informational lines, warnings still shown);
  what the run records about its machine: ``GRADEXP_SYSTEM_METRICS_INTERVAL`` (seconds,
  ``0``: off), ``GRADEXP_CONSOLE`` (``auto`` or ``off``), ``GRADEXP_ENVIRONMENT``,
  ``GRADEXP_GIT``, ``GRADEXP_REQUIREMENTS`` (``0``: off).
- Config dir (``gradexp.core.credentials``): ``settings.json`` holds any
  :class:`Settings` field, e.g. ``{"base_url": "http://gpu-box:8080"}``; the API key for
  the resolved base URL comes from ``credentials.json``.

This module is imported by ``init()``, so it stays light (no ``typing`` at run time).
"""

from __future__ import annotations

import os

from gradexp.core.credentials import (
    SETTINGS_FILE,
    config_dir,
    load_credentials,
    mask_key,
    normalize_url,
    read_json,
)
from gradexp.core.output import ENV_QUIET
from gradexp.errors import GradexpError

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    from typing import Any, Literal

    Mode = Literal["online", "offline", "disabled"]
MODES: tuple[str, ...] = ("online", "offline", "disabled")

ENV_MODE = "GRADEXP_MODE"
ENV_BASE_URL = "GRADEXP_BASE_URL"
ENV_API_KEY = "GRADEXP_API_KEY"
ENV_PROJECT = "GRADEXP_PROJECT"
ENV_ENTITY = "GRADEXP_ENTITY"
ENV_DIR = "GRADEXP_DIR"
ENV_RUN_ID = "GRADEXP_RUN_ID"
ENV_MEMORY_LIMIT = "GRADEXP_MEMORY_LIMIT"
ENV_FINISH_TIMEOUT = "GRADEXP_FINISH_TIMEOUT"
ENV_SYSTEM_METRICS_INTERVAL = "GRADEXP_SYSTEM_METRICS_INTERVAL"
ENV_CONSOLE = "GRADEXP_CONSOLE"
ENV_ENVIRONMENT = "GRADEXP_ENVIRONMENT"
ENV_GIT = "GRADEXP_GIT"
ENV_REQUIREMENTS = "GRADEXP_REQUIREMENTS"
CONSOLE_MODES: tuple[str, ...] = ("auto", "off")

DEFAULT_PROJECT = "default"


# name -> default, in order. Settings is a plain class (not a dataclass) so that init()
# does not pay for importing dataclasses/inspect.
_DEFAULTS: dict[str, Any] = {
    "mode": "offline",
    "base_url": None,
    "api_key": None,
    "project": DEFAULT_PROJECT,
    "entity": None,  # the team (or user) whose project runs go to; None: the key's user
    "dir": ".",
    "run_id": None,
    "memory_limit": 256 * 1024 * 1024,
    "batch_bytes": 1024 * 1024,
    "batch_records": 20_000,
    "batch_interval": 1.0,
    "write_interval": 0.1,
    "fsync_interval": 2.0,
    "heartbeat_interval": 30.0,
    "finish_timeout": 60.0,
    "retry_cap": 60.0,
    "quiet": False,
    # What the run records about its machine (docs/sdk.md, "What a run records").
    "system_metrics_interval": 10.0,
    "console": "auto",
    "environment": True,
    "git": True,
    "requirements": True,
}
_TYPES: dict[str, type] = {
    "memory_limit": int,
    "batch_bytes": int,
    "batch_records": int,
    "batch_interval": float,
    "write_interval": float,
    "fsync_interval": float,
    "heartbeat_interval": float,
    "finish_timeout": float,
    "retry_cap": float,
    "quiet": bool,
    "system_metrics_interval": float,
    "environment": bool,
    "git": bool,
    "requirements": bool,
}


class Settings:
    """Everything a run needs to know about where and how to log (immutable).

    Build one with :func:`resolve_settings`; ``init(settings=...)`` also accepts a mapping
    of these fields. The tuning fields have defaults that suit a training job:

    - ``mode``: ``online``, ``offline`` or ``disabled``; ``base_url``, ``api_key``,
      ``project``, ``entity`` (a team whose project runs go to; None: the key's user),
      ``dir`` (runs go to ``<dir>/gradexp/``), ``run_id``.
    - ``memory_limit`` (256 MiB): bytes of logged-but-not-yet-written records the caller
      may queue before ``log()`` blocks (and ``alog()`` awaits) until the stream catches up.
    - ``batch_bytes`` (1 MiB), ``batch_records`` (20,000), ``batch_interval`` (1 s): a
      batch is sent once it holds this many bytes (before gzip) or records, or this many
      seconds after its first record was logged. The server's replies adjust the interval:
      0.1 s while someone watches the run live, twice ``batch_interval`` while nobody
      does, and never less than a busy server asks for (at most 30 s).
    - ``write_interval`` (0.1 s): records reach the OS at least this often while they
      arrive. ``fsync_interval`` (2 s): the run file is fsync'ed this often while it
      grows, and always at finish.
    - ``heartbeat_interval`` (30 s): silence after which the stream sends a heartbeat.
    - ``finish_timeout`` (60 s): how long ``finish()`` (and the exit hook) waits for the
      upload by default. ``retry_cap`` (60 s): the cap of the retry backoff.
    - ``quiet``: no informational lines (warnings are still shown).
    - ``system_metrics_interval`` (10 s; 0: off): how often CPU, memory, disk, network and
      GPU figures are sampled (on the stream thread) into the run's system series.
    - ``console`` (``"auto"``; ``"off"``): whether stdout and stderr are teed into the run.
    - ``environment``, ``git``, ``requirements`` (all True): record the program, Python,
      OS and hardware; the git state and a ``diff.patch``; the installed packages as
      ``requirements.txt``.
    """

    __slots__ = tuple(_DEFAULTS)

    mode: Mode
    base_url: str | None
    api_key: str | None
    project: str
    entity: str | None
    dir: str
    run_id: str | None
    memory_limit: int
    batch_bytes: int
    batch_records: int
    batch_interval: float
    write_interval: float
    fsync_interval: float
    heartbeat_interval: float
    finish_timeout: float
    retry_cap: float
    quiet: bool
    system_metrics_interval: float
    console: str
    environment: bool
    git: bool
    requirements: bool

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown gradexp settings: {', '.join(sorted(unknown))}")
        for name, default in _DEFAULTS.items():
            object.__setattr__(self, name, values.get(name, default))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are immutable; use settings.with_(name=value)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.as_dict().items()))

    def __repr__(self) -> str:  # the key is masked: a repr ends up in logs
        fields = ", ".join(
            f"{name}={mask_key(self.api_key) if name == 'api_key' else getattr(self, name)!r}"
            for name in _DEFAULTS
        )
        return f"Settings({fields})"

    def as_dict(self) -> dict[str, Any]:
        """Every field, by name."""
        return {name: getattr(self, name) for name in _DEFAULTS}

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return Settings(**{**self.as_dict(), **changes})


def load_user_settings() -> dict[str, Any]:
    """The contents of ``settings.json`` in the config dir ({} if there is none)."""
    return read_json(os.path.join(config_dir(), SETTINGS_FILE))


# --- resolution ---------------------------------------------------------------------------


def parse_bytes(text: str | int) -> int:
    """``"64MiB"`` -> 67108864; plain integers are bytes."""
    if isinstance(text, int):
        return text
    units = {"k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}
    s = text.strip().lower().removesuffix("b")
    for suffix in ("ki", "mi", "gi", "k", "m", "g"):
        if s.endswith(suffix):
            return int(float(s[: -len(suffix)]) * units[suffix])
    return int(s)


def _coerce(name: str, value: Any) -> Any:
    """Turn a setting from the environment or a file into the field's type."""
    if value is None:
        return None
    if name == "memory_limit":
        return parse_bytes(value)
    kind = _TYPES.get(name)
    if kind is bool:
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if kind is not None:
        return kind(value)
    return value


def resolve_settings(**overrides: Any) -> Settings:
    """Resolve every setting: ``overrides`` (None means unset) > environment > config dir.

    ``mode`` defaults to ``online`` when both a base URL and an API key are known, else
    ``offline``. The key is looked up for the resolved base URL in the credentials file.
    """
    unknown = set(overrides) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown gradexp settings: {', '.join(sorted(unknown))}")
    env = os.environ
    from_env: dict[str, Any] = {
        "mode": env.get(ENV_MODE),
        "base_url": env.get(ENV_BASE_URL),
        "api_key": env.get(ENV_API_KEY),
        "project": env.get(ENV_PROJECT),
        "entity": env.get(ENV_ENTITY),
        "dir": env.get(ENV_DIR),
        "run_id": env.get(ENV_RUN_ID),
        "memory_limit": env.get(ENV_MEMORY_LIMIT),
        "finish_timeout": env.get(ENV_FINISH_TIMEOUT),
        "quiet": env.get(ENV_QUIET),
        "system_metrics_interval": env.get(ENV_SYSTEM_METRICS_INTERVAL),
        "console": env.get(ENV_CONSOLE),
        "environment": env.get(ENV_ENVIRONMENT),
        "git": env.get(ENV_GIT),
        "requirements": env.get(ENV_REQUIREMENTS),
    }
    file_settings = load_user_settings()
    values: dict[str, Any] = {}
    for name in _DEFAULTS:
        for source in (overrides, from_env, file_settings):
            value = source.get(name)
            if value not in (None, ""):
                try:
                    values[name] = _coerce(name, value)
                except (TypeError, ValueError):
                    raise GradexpError(
                        f"gradexp setting {name}={value!r} is not valid; expected a "
                        f"{_TYPES.get(name, str).__name__}."
                    ) from None
                break
    creds: dict[str, Any] | None = None
    if "api_key" not in values or "base_url" not in values:
        creds = load_credentials()
        if "base_url" not in values and creds["default_host"]:
            values["base_url"] = creds["default_host"]
    if values.get("base_url"):
        values["base_url"] = normalize_url(values["base_url"])
        if "api_key" not in values:
            creds = creds if creds is not None else load_credentials()
            entry = creds["hosts"].get(values["base_url"]) or {}
            if entry.get("api_key"):
                values["api_key"] = entry["api_key"]
    mode = values.get("mode")
    if mode is None:
        values["mode"] = "online" if values.get("base_url") and values.get("api_key") else "offline"
    elif mode not in MODES:
        raise GradexpError(f"mode {mode!r} is not one of online, offline, disabled.")
    if values["mode"] == "online" and not values.get("base_url"):
        raise GradexpError(
            "mode is online but no server is known: pass base_url=, set GRADEXP_BASE_URL, "
            "or run `gradexp login URL` (or use mode='offline')."
        )
    if values["mode"] == "online" and not values.get("api_key"):
        raise GradexpError(
            f"mode is online but no API key is known for {values['base_url']}: run "
            "`gradexp login` or set GRADEXP_API_KEY (or use mode='offline')."
        )
    interval = values.get("system_metrics_interval", 10.0)
    if not interval >= 0 or interval == float("inf"):
        raise GradexpError(
            "system_metrics_interval must be a number of seconds >= 0 (0 turns it off)."
        )
    console = str(values.get("console", "auto")).lower()
    if console in ("0", "false", "no", "none"):
        console = "off"
    if console not in CONSOLE_MODES:
        raise GradexpError(f"console={console!r}: use 'auto' or 'off'.")
    values["console"] = console
    if values.get("memory_limit", 1) <= 0:
        raise GradexpError("memory_limit must be a positive number of bytes.")
    values["dir"] = os.path.abspath(os.path.expanduser(values.get("dir") or "."))
    return Settings(**values)
