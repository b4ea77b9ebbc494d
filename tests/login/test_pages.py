"""The sign-in pages in a real browser: first-run setup from the link a fresh server prints,
the API-keys page (create, copy, revoke), and screenshots of each page for a person to look
at (tests/_output/login/pages/)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

from .conftest import PASSWORD, SHOTS, WebClient


class FreshServer:
    """``gradexp server`` on an empty data dir, with what it printed."""

    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRADEXP_")}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gradexp.server",
                    "--port",
                    str(self.port),
                    "--data",
                    str(data),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def printed(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Wait until the server's output matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log.read_text())
            if match:
                return match
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"the server never printed {pattern!r}:\n{self.log.read_text()}")

    def stop(self) -> None:
        """SIGTERM, and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[FreshServer]:
    """A server that has no user yet."""
    srv = FreshServer(tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A chromium page in a fresh context of the session's browser (tests/conftest.py)."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    try:
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())  # "Revoke ...?" confirmations
        yield tab
    finally:
        context.close()


def _shot(page: Any, name: str) -> None:
    folder = SHOTS / "pages"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_first_run_setup_link_then_keys_page(fresh_server: FreshServer, page: Any) -> None:
    match = fresh_server.printed(r"(http://127\.0\.0\.1:\d+/setup\?token=[A-Za-z0-9_-]+)")
    link = match.group(1)
    assert "no account yet" in fresh_server.log.read_text()

    # Before setup, nothing else gets in: the UI sends a visitor to sign in.
    page.goto(fresh_server.url + "/")
    assert "/login?next=" in page.url
    assert "This server has no account yet" in page.inner_text(".notice")
    _shot(page, "sign-in-no-account")

    page.goto(link)
    assert page.title() == "Set up · gradexp"
    _shot(page, "setup")

    # Mismatched passwords: a clear error, and the link still works.
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD + "?")
    page.evaluate("document.querySelector('form').noValidate = true")
    page.click("button[type=submit]")
    assert "The two passwords do not match." in page.inner_text(".notice")
    _shot(page, "setup-error")

    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/keys\?welcome=1$"))
    assert "Your account ada is ready." in page.inner_text("body")
    assert "No keys yet" in page.inner_text("body")
    _shot(page, "keys-empty")

    # Create a key: shown once, and it works.
    page.fill("input[name=name]", "laptop")
    page.click("form.create button")
    page.wait_for_selector("#new-key")
    key = page.inner_text("#new-key").strip()
    assert key.startswith("gx_") and len(key) == 43
    _shot(page, "keys-new")
    srv = WebClient(fresh_server.url)
    viewer = srv.request(
        "GET", "/api/v1/viewer", headers={"Authorization": f"Bearer {key}", "Accept": "*/*"}
    )
    assert viewer.status == 200 and viewer.json()["user"]["name"] == "ada"
    page.goto(fresh_server.url + "/keys")
    assert key not in page.content()  # never shown again
    assert key[:7] in page.inner_text("table.keys")

    # Revoke it from the page: refused at once.
    page.click("table.keys button:has-text('Revoke')")
    page.wait_for_url(re.compile(r".*/keys\?revoked=\d+$"))
    assert "revoked" in page.inner_text("table.keys")
    _shot(page, "keys-revoked")
    refused = srv.request(
        "GET", "/api/v1/viewer", headers={"Authorization": f"Bearer {key}", "Accept": "*/*"}
    )
    assert refused.status == 401

    # The setup link is dead now, for anyone.
    page.goto(link)
    assert "Setup link used" in page.inner_text("h1")
    _shot(page, "setup-used")

    # Sign out, and sign in again with the new account.
    page.goto(fresh_server.url + "/keys")
    page.click("header.topbar button:has-text('Sign out')")
    page.wait_for_url(re.compile(r".*/login\?signed_out=1$"))
    assert "You are signed out." in page.inner_text("body")
    _shot(page, "sign-in-signed-out")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(fresh_server.url + "/")


@pytest.mark.slow
def test_a_restarted_server_with_users_prints_no_setup_link(
    fresh_server: FreshServer, tmp_path: Path
) -> None:
    fresh_server.printed(r"/setup\?token=")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradexp.server",
            "user",
            "add",
            "ada",
            "--no-password",
            "--data",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    link = fresh_server.printed(r"(/setup\?token=[A-Za-z0-9_-]+)").group(1)
    # A user exists, so the link the server printed is dead...
    reply = WebClient(fresh_server.url).request("GET", link)
    assert reply.status == 410
    # ...and a restarted server prints none.
    fresh_server.stop()
    again = FreshServer(tmp_path)
    try:
        again.printed(r"stop with Ctrl\+C")
    finally:
        again.stop()  # its whole output is in the log once it has exited
    output = again.log.read_text()
    assert "is running" in output and "/setup?token=" not in output
