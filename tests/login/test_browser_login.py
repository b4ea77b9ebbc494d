"""`gradexp login` end to end in a real browser (Debian chromium driven by Playwright through
``BROWSER``), against a real ``gradexp server``: sign-in, Authorize, the stored key, and a
training script that logs with it. Also every way the browser side can go wrong."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from .conftest import Cli, add_user, file_mode, wait_for_log

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # chromium in a child process


def _no_secret_printed(proc: Any, key: str | None) -> None:
    if key:
        assert key not in proc.stdout and key not in proc.stderr


def test_login_in_the_browser_then_a_script_logs_as_that_user(
    server: Any, cli: Cli, user: str
) -> None:
    browser = cli.browser("authorize", user=user, shots="first-login")
    proc = cli.run("login", "--host", server.url, env=browser)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"Logged in to {server.url} as {user}"

    # The browser went through sign-in and Authorize and ended on the "logged in" page.
    log = wait_for_log(browser["GX_BROWSER_LOG"])
    assert [p["name"] for p in log["pages"]] == ["sign-in", "authorize", "done"]
    assert "Authorize gradexp login" in log["pages"][1]["text"]
    assert socket.gethostname() in log["pages"][1]["text"]
    assert f"logged in as {user}" in log["pages"][2]["text"]

    # The key is stored for that host, readable by its owner only, and never printed.
    key = cli.stored_key(server.url)
    assert key is not None and key.startswith("gx_")
    assert file_mode(cli.credentials_path) == 0o600
    assert cli.credentials()["default_host"] == server.url
    _no_secret_printed(proc, key)

    # It is a new key named after the machine, and it belongs to the user who authorized.
    status, body = server.request("GET", "/api/v1/viewer", key=key)
    assert status == 200
    assert body["user"]["name"] == user
    assert body["key"]["name"] == socket.gethostname()

    # A training script finds the key without being told, and its run is the user's.
    script = cli.python(
        "import gradexp\n"
        "run = gradexp.init(project='login-e2e')\n"
        "for step in range(5):\n"
        "    gradexp.log({'loss': 1.0 / (step + 1)})\n"
        "print(run.id)\n"
        "gradexp.finish()\n"
    )
    assert script.returncode == 0, script.stderr
    run_id = script.stdout.strip().splitlines()[-1]
    status, run = server.request("GET", f"/api/v1/runs/{run_id}", key=key)
    assert status == 200, run
    assert run["owner"] == user and run["project"] == "login-e2e"
    status, runs = server.request("GET", f"/api/v1/projects/{user}/login-e2e/runs", key=key)
    assert [r["id"] for r in runs["runs"]] == [run_id]
    status, rows = server.request("GET", f"/api/v1/runs/{run_id}/history/rows", key=key)
    assert [r["loss"] for r in rows["rows"]] == [1.0, 0.5, 1.0 / 3, 0.25, 0.2]

    # Logging in again finds the stored key still good and opens no browser ("fail" would
    # make the browser step fail loudly).
    again = cli.run("login", "--host", server.url, env=cli.browser("fail"))
    assert again.returncode == 0, again.stderr
    assert f"Already logged in to {server.url} as {user}" in again.stdout
    assert cli.stored_key(server.url) == key

    # --relogin goes through the browser again and stores a different, new key.
    relogin = cli.run(
        "login", "--host", server.url, "--relogin", env=cli.browser("authorize", user=user)
    )
    assert relogin.returncode == 0, relogin.stderr
    new_key = cli.stored_key(server.url)
    assert new_key not in (None, key)


def test_status_asks_the_server_who_we_are(server: Any, cli: Cli, user: str) -> None:
    proc = cli.run("login", "--host", server.url, env=cli.browser("authorize", user=user))
    assert proc.returncode == 0, proc.stderr
    status = cli.run("status", "--dir", str(cli.tmp))
    assert status.returncode == 0, status.stderr
    assert f"{user} at {server.url}" in status.stdout
    key = cli.stored_key(server.url)
    _no_secret_printed(status, key)


def test_cancel_in_the_browser_stores_nothing(server: Any, cli: Cli, user: str) -> None:
    browser = cli.browser("deny", user=user)
    proc = cli.run("login", "--host", server.url, env=browser)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "Error: login cancelled in the browser; nothing was stored."
    )
    assert not cli.credentials_path.exists()


def test_wrong_password_in_the_browser(server: Any, cli: Cli, user: str) -> None:
    browser = cli.browser("wrong-password", user=user, shots="wrong-password")
    proc = cli.run("login", "--host", server.url, "--timeout", "3", env=browser)
    log = wait_for_log(browser["GX_BROWSER_LOG"])
    assert "Wrong user name or password." in log["pages"][-1]["text"]
    # Nobody authorized: the CLI stops waiting, asks for a key, gets none, stores nothing.
    assert proc.returncode == 1
    assert "No answer from the browser within 3 s." in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: no API key was given")
    assert not cli.credentials_path.exists()


def test_wrong_state_is_refused(server: Any, cli: Cli, user: str) -> None:
    browser = cli.browser("wrong-state", user=user)
    proc = cli.run("login", "--host", server.url, env=browser)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "does not belong to this login (wrong state)" in last
    assert "nothing was stored" in last
    assert not cli.credentials_path.exists()


def test_expired_code_is_refused(start_server: Any, cli: Cli) -> None:
    srv = start_server(env={"GRADEXP_SERVER_LOGIN_CODE_TTL": "1"})
    name = add_user(srv)
    browser = cli.browser("delay:2.5", user=name)
    proc = cli.run("login", "--host", srv.url, env=browser)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "the server refused the login code" in last
    assert "expired or was already used" in last
    assert not cli.credentials_path.exists()


def test_reused_code_is_refused(server: Any, cli: Cli, tmp_path: Any, user: str) -> None:
    saved = tmp_path / "callback.txt"
    first = cli.run(
        "login",
        "--host",
        server.url,
        env={**cli.browser("authorize", user=user), "GX_BROWSER_SAVE": str(saved)},
    )
    assert first.returncode == 0, first.stderr
    assert "code=" in saved.read_text()

    # A second login on another machine's config, fed the first login's (spent) code.
    other = Cli(config_dir=tmp_path / "other-config", tmp=tmp_path)
    proc = other.run("login", "--host", server.url, env=other.browser(f"replay:{saved}"))
    assert proc.returncode == 1
    assert "expired or was already used" in proc.stderr.strip().splitlines()[-1]
    assert not other.credentials_path.exists()


def test_paste_fallback_when_the_browser_cannot_open(server: Any, cli: Cli) -> None:
    name, key = server.new_user()
    proc = cli.run("login", "--host", server.url, input=key + "\n", env=cli.browser("fail"))
    assert proc.returncode == 0, proc.stderr
    assert "Could not open a browser." in proc.stderr
    assert f"{server.url}/keys" in proc.stderr
    assert proc.stdout.strip() == f"Logged in to {server.url} as {name}"
    assert cli.stored_key(server.url) == key
    _no_secret_printed(proc, key)


def test_listener_timeout_falls_back_to_paste(server: Any, cli: Cli) -> None:
    _name, key = server.new_user()
    proc = cli.run(
        "login", "--host", server.url, "--timeout", "2", input=key + "\n", env=cli.browser("hang")
    )
    assert proc.returncode == 0, proc.stderr
    assert "No answer from the browser within 2 s." in proc.stderr
    assert cli.stored_key(server.url) == key


def test_no_display_asks_for_a_key_straight_away(server: Any, cli: Cli) -> None:
    _name, key = server.new_user()
    proc = cli.run("login", "--host", server.url, input=key + "\n")  # no BROWSER, no DISPLAY
    assert proc.returncode == 0, proc.stderr
    assert "No browser can open here" in proc.stderr
    assert "Opening a browser" not in proc.stderr
    assert cli.stored_key(server.url) == key


def test_pasted_key_that_the_server_refuses(server: Any, cli: Cli) -> None:
    _name, key = server.new_user()
    assert server.admin("key", "revoke", key[:7])
    proc = cli.run("login", "--host", server.url, "--no-browser", input=key + "\n")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "refused the key gx_" in last and "Nothing was stored." in last
    assert key not in proc.stderr
    assert not cli.credentials_path.exists()
