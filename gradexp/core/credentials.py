"""The user's config dir and the credentials file in it.

The config dir is ``GRADEXP_CONFIG_DIR`` if set (tests use it so they never touch the
real home), else platformdirs' ``user_config_dir("gradexp")``. It holds ``settings.json``
(read by ``gradexp.core.settings``) and ``credentials.json``, mode 0600, one API key per
server, written by ``gradexp login``::

    {"default_host": "http://gpu-box:8080",
     "hosts": {"http://gpu-box:8080": {"api_key": "gx_...", "user": "ada"}}}

Imported by ``init()``, so it stays light: no pathlib, no platformdirs unless the config
dir is not given, ``json`` only when a file exists.
"""

from __future__ import annotations

import os
import threading

from gradexp.core.output import warn
from gradexp.errors import GradexpError

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

ENV_CONFIG_DIR = "GRADEXP_CONFIG_DIR"
SETTINGS_FILE = "settings.json"
CREDENTIALS_FILE = "credentials.json"


def config_dir() -> str:
    """The directory holding settings.json and credentials.json (not created here)."""
    override = os.environ.get(ENV_CONFIG_DIR)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    import platformdirs  # only when needed: it costs milliseconds at import

    return platformdirs.user_config_dir("gradexp", appauthor=False)


def read_json(path: str) -> dict[str, Any]:
    """A JSON object from ``path``: {} (with a warning if unreadable) when there is none."""
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


def write_private_json(path: str, value: Mapping[str, Any]) -> None:
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
        try:  # not contextlib.suppress: init() imports this module, and contextlib costs ms
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
    data = read_json(os.path.join(config_dir(), CREDENTIALS_FILE))
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
    write_private_json(os.path.join(config_dir(), CREDENTIALS_FILE), creds)


def delete_credentials(host: str) -> bool:
    """Forget the key stored for ``host``; True if there was one."""
    host = normalize_url(host)
    creds = load_credentials()
    if creds["hosts"].pop(host, None) is None:
        return False
    if creds["default_host"] == host:
        creds["default_host"] = next(iter(creds["hosts"]), None)
    write_private_json(os.path.join(config_dir(), CREDENTIALS_FILE), creds)
    return True


def mask_key(key: str | None) -> str:
    """A key as it may be shown: ``gx_AbCd…``. Never print a key in full."""
    if not key:
        return "(none)"
    return key[:7] + "…"
