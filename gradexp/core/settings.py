"""Settings, credentials and the one-line messages gradexp prints.

Resolution order, for every setting: arguments > environment > the user's config dir.

- Environment: ``GRADEXP_MODE``, ``GRADEXP_BASE_URL``, ``GRADEXP_API_KEY``,
  ``GRADEXP_PROJECT``, ``GRADEXP_DIR``, ``GRADEXP_RUN_ID``, and for tuning
  ``GRADEXP_MEMORY_LIMIT`` (bytes, or with a suffix: ``64MiB``), ``GRADEXP_FINISH_TIMEOUT``
  (seconds), ``GRADEXP_QUIET`` (``1``: no informational lines, warnings still shown).
- Config dir: ``GRADEXP_CONFIG_DIR`` if set (tests use it so they never touch the real
  home), else platformdirs' ``user_config_dir("gradexp")``. It holds ``settings.json``
  (any :class:`Settings` field, e.g. ``{"base_url": "http://gpu-box:8080"}``) and
  ``credentials.json`` (mode 0600)::

      {"default_host": "http://gpu-box:8080",
       "hosts": {"http://gpu-box:8080": {"api_key": "gx_...", "user": "ada"}}}

This module is imported by ``init()``, so it stays light: no pathlib, no platformdirs
unless the config dir is not given, ``json`` only when a file exists.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from gradexp.errors import GradexpError, GradexpWarning

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Literal

    Mode = Literal["online", "offline", "disabled"]
MODES: tuple[str, ...] = ("online", "offline", "disabled")

ENV_MODE = "GRADEXP_MODE"
ENV_BASE_URL = "GRADEXP_BASE_URL"
ENV_API_KEY = "GRADEXP_API_KEY"
ENV_PROJECT = "GRADEXP_PROJECT"
ENV_DIR = "GRADEXP_DIR"
ENV_RUN_ID = "GRADEXP_RUN_ID"
ENV_CONFIG_DIR = "GRADEXP_CONFIG_DIR"
ENV_MEMORY_LIMIT = "GRADEXP_MEMORY_LIMIT"
ENV_FINISH_TIMEOUT = "GRADEXP_FINISH_TIMEOUT"
ENV_QUIET = "GRADEXP_QUIET"

SETTINGS_FILE = "settings.json"
CREDENTIALS_FILE = "credentials.json"
DEFAULT_PROJECT = "default"


# name -> default, in order. Settings is a plain class (not a dataclass) so that init()
# does not pay for importing dataclasses/inspect.
_DEFAULTS: dict[str, Any] = {
    "mode": "offline",
    "base_url": None,
    "api_key": None,
    "project": DEFAULT_PROJECT,
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
}


class Settings:
    """Everything a run needs to know about where and how to log (immutable).

    Build one with :func:`resolve_settings`; ``init(settings=...)`` also accepts a mapping
    of these fields. The tuning fields have defaults that suit a training job:

    - ``mode``: ``online``, ``offline`` or ``disabled``; ``base_url``, ``api_key``,
      ``project``, ``dir`` (runs go to ``<dir>/gradexp/``), ``run_id``.
    - ``memory_limit`` (256 MiB): bytes of logged-but-not-yet-written records the caller
      may queue before ``log()`` blocks (and ``alog()`` awaits) until the stream catches up.
    - ``batch_bytes`` (1 MiB), ``batch_records`` (20,000), ``batch_interval`` (1 s): a
      batch is sent once it holds this many bytes (before gzip) or records, or this many
      seconds after its first record was logged.
    - ``write_interval`` (0.1 s): records reach the OS at least this often while they
      arrive. ``fsync_interval`` (2 s): the run file is fsync'ed this often while it
      grows, and always at finish.
    - ``heartbeat_interval`` (30 s): silence after which the stream sends a heartbeat.
    - ``finish_timeout`` (60 s): how long ``finish()`` (and the exit hook) waits for the
      upload by default. ``retry_cap`` (60 s): the cap of the retry backoff.
    - ``quiet``: no informational lines (warnings are still shown).
    """

    __slots__ = tuple(_DEFAULTS)

    mode: Mode
    base_url: str | None
    api_key: str | None
    project: str
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


# --- the user's config dir ------------------------------------------------------------


def config_dir() -> str:
    """The directory holding settings.json and credentials.json (not created here)."""
    override = os.environ.get(ENV_CONFIG_DIR)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    import platformdirs  # only when needed: it costs milliseconds at import

    return platformdirs.user_config_dir("gradexp", appauthor=False)


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        warn(f"could not read {path} ({exc.strerror}); ignoring it.")
        return {}
    import json

    try:
        value = json.loads(data)
    except ValueError:
        warn(f"{path} is not valid JSON; ignoring it. Fix or delete the file.")
        return {}
    return value if isinstance(value, dict) else {}


def _write_private_json(path: str, value: Mapping[str, Any]) -> None:
    """Atomically replace ``path`` with ``value``, readable by its owner only.

    The temporary file is created with mode 0600 (``O_EXCL``), so the secret is never
    world-readable, not even for an instant; ``os.replace`` makes the switch atomic.
    """
    import json

    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_user_settings() -> dict[str, Any]:
    """The contents of ``settings.json`` in the config dir ({} if there is none)."""
    return _read_json(os.path.join(config_dir(), SETTINGS_FILE))


# --- credentials ------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """``HTTP://Host:8080/`` -> ``http://host:8080``: the form hosts are stored under."""
    url = url.strip()
    if "://" not in url:
        raise GradexpError(
            f"{url!r} is not a server URL; give it with its scheme, e.g. http://localhost:8080"
        )
    scheme, _, rest = url.partition("://")
    host, sep, path = rest.partition("/")
    if scheme.lower() not in ("http", "https") or not host:
        raise GradexpError(f"{url!r} is not an http(s) server URL, e.g. http://localhost:8080")
    path = path.rstrip("/")
    return f"{scheme.lower()}://{host.lower()}" + (f"/{path}" if sep and path else "")


def load_credentials() -> dict[str, Any]:
    """The credentials file: ``{"default_host": URL | None, "hosts": {URL: {...}}}``."""
    data = _read_json(os.path.join(config_dir(), CREDENTIALS_FILE))
    hosts = data.get("hosts")
    return {
        "default_host": data.get("default_host"),
        "hosts": dict(hosts) if isinstance(hosts, dict) else {},
    }


def save_credentials(host: str, api_key: str, user: str | None = None) -> None:
    """Store ``api_key`` for ``host`` and make ``host`` the default (file mode 0600)."""
    host = normalize_url(host)
    creds = load_credentials()
    creds["hosts"][host] = {"api_key": api_key, "user": user}
    creds["default_host"] = host
    _write_private_json(os.path.join(config_dir(), CREDENTIALS_FILE), creds)


def delete_credentials(host: str) -> bool:
    """Forget the key stored for ``host``; True if there was one."""
    host = normalize_url(host)
    creds = load_credentials()
    if creds["hosts"].pop(host, None) is None:
        return False
    if creds["default_host"] == host:
        creds["default_host"] = next(iter(creds["hosts"]), None)
    _write_private_json(os.path.join(config_dir(), CREDENTIALS_FILE), creds)
    return True


def mask_key(key: str | None) -> str:
    """A key as it may be shown: ``gx_AbCd…``. Never print a key in full."""
    if not key:
        return "(none)"
    return key[:7] + "…"


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
        "dir": env.get(ENV_DIR),
        "run_id": env.get(ENV_RUN_ID),
        "memory_limit": env.get(ENV_MEMORY_LIMIT),
        "finish_timeout": env.get(ENV_FINISH_TIMEOUT),
        "quiet": env.get(ENV_QUIET),
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
    if values.get("memory_limit", 1) <= 0:
        raise GradexpError("memory_limit must be a positive number of bytes.")
    values["dir"] = os.path.abspath(os.path.expanduser(values.get("dir") or "."))
    return Settings(**values)


# --- what gradexp prints ----------------------------------------------------------------

_quiet = bool(os.environ.get(ENV_QUIET, "").strip() not in ("", "0", "false"))


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) informational lines; warnings are always shown."""
    global _quiet
    _quiet = quiet


def say(message: str) -> None:
    """One informational line on stderr, prefixed ``gradexp:``."""
    if not _quiet:
        try:
            print(f"gradexp: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # a closed stderr must never break training
            pass


def warn(message: str, stacklevel: int = 2) -> None:
    """A warning the user should see once (the caller decides what "once" means)."""
    import warnings

    warnings.warn(f"gradexp: {message}", GradexpWarning, stacklevel=stacklevel + 1)
