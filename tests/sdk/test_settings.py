"""Settings resolution and the credentials file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import gradexp
from gradexp.core.credentials import (
    config_dir,
    delete_credentials,
    load_credentials,
    mask_key,
    save_credentials,
)
from gradexp.core.settings import resolve_settings
from gradexp.errors import GradexpError

KEY = "gx_" + "A" * 40


def test_config_dir_override_is_honoured(gx_env: Path) -> None:
    assert config_dir() == str(gx_env / "config")


def test_defaults_are_offline_without_a_server() -> None:
    s = resolve_settings()
    assert s.mode == "offline" and s.base_url is None and s.api_key is None
    assert s.project == "default"


def test_credentials_file_is_private_and_round_trips(gx_env: Path) -> None:
    old_umask = os.umask(0)  # even a permissive umask must not make it readable
    try:
        save_credentials("HTTP://Box:8080/", KEY, "ada")
    finally:
        os.umask(old_umask)
    path = gx_env / "config" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "default_host": "http://box:8080",
        "hosts": {"http://box:8080": {"api_key": KEY, "user": "ada"}},
    }
    assert load_credentials()["default_host"] == "http://box:8080"
    # The stored host and key make online the default.
    s = resolve_settings()
    assert (s.mode, s.base_url, s.api_key) == ("online", "http://box:8080", KEY)
    assert delete_credentials("http://box:8080") is True
    assert delete_credentials("http://box:8080") is False
    assert load_credentials() == {"default_host": None, "hosts": {}}
    assert not [p for p in os.listdir(gx_env / "config") if p.endswith(".tmp")]


def test_resolution_order(gx_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (gx_env / "config").mkdir()
    (gx_env / "config" / "settings.json").write_text(
        json.dumps({"base_url": "http://from-file:1", "project": "file-project"})
    )
    save_credentials("http://from-env:2", KEY, "ada")
    s = resolve_settings()
    assert s.base_url == "http://from-file:1" and s.project == "file-project"
    assert s.api_key is None and s.mode == "offline"  # no key stored for that host
    monkeypatch.setenv("GRADEXP_BASE_URL", "http://from-env:2")
    monkeypatch.setenv("GRADEXP_PROJECT", "env-project")
    s = resolve_settings()
    assert (s.base_url, s.project, s.api_key, s.mode) == (
        "http://from-env:2",
        "env-project",
        KEY,
        "online",
    )
    s = resolve_settings(project="arg-project", mode="offline", memory_limit="1MiB")
    assert (s.project, s.mode, s.memory_limit) == ("arg-project", "offline", 1024 * 1024)


def test_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GradexpError, match="no server is known"):
        resolve_settings(mode="online")
    with pytest.raises(GradexpError, match="no API key"):
        resolve_settings(mode="online", base_url="http://x:1")
    with pytest.raises(GradexpError, match="not one of online, offline, disabled"):
        resolve_settings(mode="sometimes")
    with pytest.raises(GradexpError, match="not a server URL"):
        resolve_settings(base_url="localhost:8080")
    monkeypatch.setenv("GRADEXP_MEMORY_LIMIT", "lots")
    with pytest.raises(GradexpError, match="memory_limit"):
        resolve_settings()


def test_keys_are_never_shown_in_full() -> None:
    assert mask_key(KEY) == "gx_AAAA…"
    s = resolve_settings(base_url="http://x:1", api_key=KEY)
    assert KEY not in repr(s) and "gx_AAAA…" in repr(s)


def test_quiet_is_each_runs_own(capsys: pytest.CaptureFixture[str]) -> None:
    """A quiet run does not silence the runs that come after it in the same process."""
    gradexp.init(project="q", mode="offline", settings={"quiet": True})
    gradexp.finish()
    capsys.readouterr()
    gradexp.init(project="q", mode="offline")
    assert "gradexp: logging offline" in capsys.readouterr().err
    gradexp.finish()
