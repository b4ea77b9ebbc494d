"""Fixtures for the login tests: password users, an isolated config dir, the ``gradexp``
command line in a subprocess, a browser stand-in (``browser.py``) and a small cookie-keeping
HTTP client that plays a browser for the form and CSRF tests.

The shared ``server`` (tests/conftest.py) serves most tests; each test makes its own users.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests._browser import browser as browser  # one chromium for this package's tests
from tests.services import require_chromium

HERE = Path(__file__).resolve().parent
SHOTS = HERE.parent / "_output" / "login"
BROWSER_SCRIPT = HERE / "browser.py"
PASSWORD = "correct horse battery"


def browser_command() -> str:
    """``BROWSER`` for Python's webbrowser: this interpreter running browser.py."""
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(BROWSER_SCRIPT))} %s"


def add_user(server: Any, name: str | None = None, password: str | None = PASSWORD) -> str:
    """A new user on ``server`` with a password (``--password-stdin``)."""
    name = name or f"u{uuid.uuid4().hex[:10]}"
    args = ["user", "add", name, *server.storage_args]
    if password is None:
        args.append("--no-password")
    else:
        args.append("--password-stdin")
    proc = subprocess.run(
        [sys.executable, "-m", "gradexp.server", *args],
        input=(password or "") + "\n",
        capture_output=True,
        text=True,
        env=server.env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return name


def admin(server: Any, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
    """``gradexp server ARGS`` on this server's storage (not checked)."""
    return subprocess.run(
        [sys.executable, "-m", "gradexp.server", *args, *server.storage_args],
        input=input,
        capture_output=True,
        text=True,
        env=server.env,
        timeout=120,
    )


@dataclass
class Cli:
    """The ``gradexp`` command line with its own config dir and a browser stand-in."""

    config_dir: Path
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def credentials_path(self) -> Path:
        """Where keys are stored."""
        return self.config_dir / "credentials.json"

    def credentials(self) -> dict[str, Any]:
        """The credentials file's contents ({} when there is none)."""
        if not self.credentials_path.exists():
            return {}
        return dict(json.loads(self.credentials_path.read_text()))

    def stored_key(self, host: str) -> str | None:
        """The key stored for ``host``."""
        entry = self.credentials().get("hosts", {}).get(host) or {}
        return entry.get("api_key")

    def browser(
        self, mode: str = "authorize", user: str = "", password: str = PASSWORD, shots: str = ""
    ) -> dict[str, str]:
        """Environment for browser.py: what it does, as whom, where it writes.

        Every mode but ``fail`` and ``hang`` drives chromium: those skip without it.
        """
        if mode not in ("fail", "hang"):
            require_chromium()
        log = self.tmp / f"browser-{uuid.uuid4().hex[:6]}.json"
        env = {
            "BROWSER": browser_command(),
            "GX_BROWSER_MODE": mode,
            "GX_TEST_USER": user,
            "GX_TEST_PASSWORD": password,
            "GX_BROWSER_LOG": str(log),
        }
        if shots:
            env["GX_BROWSER_SHOTS"] = str(SHOTS / shots)
        return env

    def run(
        self,
        *args: str,
        input: str = "",
        env: dict[str, str] | None = None,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        """``gradexp ARGS`` in a subprocess: its own session (no controlling terminal, so
        prompts read the piped ``input``), this config dir, no inherited GRADEXP_*."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GRADEXP_", "GX_")) and k not in ("BROWSER", "DISPLAY")
        }
        full = {**base, "GRADEXP_CONFIG_DIR": str(self.config_dir), **self.env, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "gradexp.cli", *args],
            input=input,
            capture_output=True,
            text=True,
            env=full,
            timeout=timeout,
            start_new_session=True,
        )

    def python(
        self, code: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a Python script with this config dir (a user's training script)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GRADEXP_", "GX_"))}
        return subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={
                **base,
                "GRADEXP_CONFIG_DIR": str(self.config_dir),
                "GRADEXP_DIR": str(self.tmp),
                **(env or {}),
            },
            cwd=self.tmp,
            timeout=180,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A fresh config dir and the command line that uses it."""
    return Cli(config_dir=tmp_path / "config", tmp=tmp_path)


@pytest.fixture
def user(server: Any) -> str:
    """A new user with password ``PASSWORD`` on the shared server."""
    return add_user(server)


def wait_for_log(path: str | Path, timeout: float = 60.0) -> dict[str, Any]:
    """The browser stand-in's log, once it has written it (it may outlive the CLI)."""
    deadline = time.monotonic() + timeout
    p = Path(path)
    while time.monotonic() < deadline:
        if p.exists() and p.stat().st_size:
            try:
                return dict(json.loads(p.read_text()))
            except ValueError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"the browser stand-in wrote no log at {p}")


def file_mode(path: Path) -> int:
    """Permission bits of a file."""
    return stat.S_IMODE(path.stat().st_mode)


# --- a browser without a browser: cookies, forms, no redirects followed ---------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Reply:
    """One HTTP reply."""

    status: int
    headers: Any
    body: bytes

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def location(self) -> str:
        """The redirect target."""
        return str(self.headers.get("Location", ""))

    def cookies(self) -> list[str]:
        """Every Set-Cookie header."""
        return list(self.headers.get_all("Set-Cookie") or [])


class WebClient:
    """A cookie jar and urllib: enough of a browser to post forms and read what comes back."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar),
            _NoRedirect,
            urllib.request.ProxyHandler({}),
        )

    def cookie(self, name: str) -> str | None:
        """A cookie's current value."""
        return next((c.value for c in self.jar if c.name == name), None)

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request; redirects are returned, not followed."""
        data = None
        hdrs = {"Accept": "text/html", "Origin": self.base, **(headers or {})}
        if form is not None:
            data = urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
            hdrs["Accept"] = "application/json"
        if method in ("GET", "HEAD"):
            hdrs.pop("Origin", None)
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with self.opener.open(req, timeout=60) as resp:
                return Reply(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, err.headers, err.read())

    def form_token(self, html: str, name: str = "csrf") -> str:
        """A hidden field's value in a page."""
        match = re.search(rf'name="{name}" value="([^"]*)"', html)
        assert match, f"no {name} field in:\n{html[:2000]}"
        return match.group(1)

    def sign_in(self, user: str, password: str = PASSWORD, next_path: str = "/") -> Reply:
        """Open the sign-in page and post the form, as a person would."""
        page = self.request("GET", "/login?" + urlencode({"next": next_path}))
        assert page.status == 200, page.text
        return self.request(
            "POST",
            "/login",
            form={
                "csrf": self.form_token(page.text),
                "next": next_path,
                "username": user,
                "password": password,
            },
        )


@pytest.fixture
def web(server: Any) -> WebClient:
    """A cookie-keeping client of the shared server."""
    return WebClient(server.url)


@pytest.fixture
def shots() -> Iterator[Path]:
    """The folder for screenshots (kept after the run: tests/_output/login)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield SHOTS
