"""`gradexp login --key`, `gradexp logout`, `gradexp.login()`, and the command line's answers
to servers that are down, hosts that do not exist and servers that are not gradexp."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import free_port

from .conftest import Cli, file_mode


def _one_line_error(proc: Any) -> str:
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert lines and lines[-1].startswith("Error: "), proc.stderr
    return str(lines[-1])


def test_key_option_checks_and_stores_the_key(server: Any, cli: Cli) -> None:
    name, key = server.new_user()
    proc = cli.run("login", "--host", server.url, "--key", key)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"Logged in to {server.url} as {name}"
    assert cli.stored_key(server.url) == key
    assert cli.credentials()["hosts"][server.url]["user"] == name
    assert file_mode(cli.credentials_path) == 0o600
    assert file_mode(cli.config_dir) == 0o700
    assert key not in proc.stdout + proc.stderr


def test_key_from_stdin_and_url_argument(server: Any, cli: Cli) -> None:
    _name, key = server.new_user()
    proc = cli.run("login", server.url + "/", "--key", "-", input=key + "\n")
    assert proc.returncode == 0, proc.stderr
    assert cli.stored_key(server.url) == key  # stored under the normalized URL


def test_key_the_server_does_not_know(server: Any, cli: Cli) -> None:
    made_up = "gx_" + "A" * 40
    line = _one_line_error(cli.run("login", "--host", server.url, "--key", made_up))
    assert "refused the key gx_AAAA…" in line and "Nothing was stored." in line
    assert made_up not in line
    assert not cli.credentials_path.exists()


def test_something_that_is_not_a_key(server: Any, cli: Cli) -> None:
    line = _one_line_error(cli.run("login", "--host", server.url, "--key", "hunter2"))
    assert "that is not a gradexp API key" in line
    assert not cli.credentials_path.exists()


def test_server_down(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = _one_line_error(cli.run("login", "--host", url))
    assert line == (
        f"Error: cannot connect to {url}: nothing is listening there. Is `gradexp server` running?"
    )
    assert not cli.credentials_path.exists()


def test_unknown_host(cli: Cli) -> None:
    line = _one_line_error(cli.run("login", "--host", "http://no-such-host.invalid:8080"))
    assert "cannot find the server 'no-such-host.invalid'" in line
    assert "does not resolve" in line
    assert not cli.credentials_path.exists()


def test_not_a_url(cli: Cli) -> None:
    line = _one_line_error(cli.run("login", "--host", "gpu-box"))
    assert "is not a server URL" in line


@pytest.fixture
def not_gradexp() -> Iterator[str]:
    """Some other web server on a loopback port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_not_a_gradexp_server(cli: Cli, not_gradexp: str) -> None:
    line = _one_line_error(cli.run("login", "--host", not_gradexp, "--key", "gx_" + "B" * 40))
    assert "it is not a gradexp server" in line
    assert not cli.credentials_path.exists()


def test_logout_forgets_the_key(server: Any, cli: Cli) -> None:
    _name, key = server.new_user()
    assert cli.run("login", "--host", server.url, "--key", key).returncode == 0
    proc = cli.run("logout")  # the default host: the one logged in to last
    assert proc.returncode == 0, proc.stderr
    assert f"Logged out of {server.url}" in proc.stdout
    assert cli.stored_key(server.url) is None
    assert file_mode(cli.credentials_path) == 0o600
    again = cli.run("logout", "--host", server.url)
    assert again.returncode == 0
    assert "No key stored" in again.stdout
    # Scripts no longer find a key: they run offline, as documented.
    status = cli.run("status", "--dir", str(cli.tmp))
    assert "mode:        offline" in status.stdout


def test_environment_key_wins_over_the_stored_one(server: Any, cli: Cli) -> None:
    _stored_user, stored_key = server.new_user()
    env_user, env_key = server.new_user()
    assert cli.run("login", "--host", server.url, "--key", stored_key).returncode == 0
    env = {"GRADEXP_API_KEY": env_key}
    status = cli.run("status", "--dir", str(cli.tmp), env=env)
    assert "(from GRADEXP_API_KEY)" in status.stdout
    assert f"logged in:   {env_user} at {server.url}" in status.stdout
    # A script logs as the environment's user.
    script = cli.python(
        "import gradexp\n"
        "run = gradexp.init(project='env-wins')\n"
        "gradexp.log({'x': 1})\n"
        "print(run.id)\n"
        "gradexp.finish()\n",
        env=env,
    )
    assert script.returncode == 0, script.stderr
    run_id = script.stdout.strip().splitlines()[-1]
    status_code, run = server.request("GET", f"/api/v1/runs/{run_id}", key=env_key)
    assert status_code == 200 and run["owner"] == env_user
    # `gradexp login` says the environment's key is the one in use.
    again = cli.run("login", "--host", server.url, env=env)
    assert f"Already logged in to {server.url} as {env_user}" in again.stdout


def test_python_api(server: Any, cli: Cli) -> None:
    name, key = server.new_user()
    ok = cli.python(f"import gradexp\nprint(gradexp.login(key={key!r}, host={server.url!r}))\n")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "True"
    assert f"Logged in to {server.url} as {name}" in ok.stderr
    assert cli.stored_key(server.url) == key
    refused = cli.python(
        "import gradexp\n"
        "from gradexp.errors import GradexpError\n"
        "try:\n"
        f"    gradexp.login(key='gx_' + 'C' * 40, host={server.url!r})\n"
        "except GradexpError as exc:\n"
        "    print('refused:', exc)\n"
    )
    assert "refused: " in refused.stdout and "Nothing was stored." in refused.stdout
    assert cli.stored_key(server.url) == key  # the good key is still there


def test_status_with_a_revoked_key(server: Any, cli: Cli) -> None:
    _name, key = server.new_user()
    assert cli.run("login", "--host", server.url, "--key", key).returncode == 0
    status_code, keys = server.request("GET", "/api/v1/api-keys", key=key)
    (mine,) = keys["keys"]
    assert mine["current"] is True
    status_code, body = server.request("DELETE", f"/api/v1/api-keys/{mine['id']}", key=key)
    assert status_code == 200 and body["key"]["revoked_at"] is not None
    status = cli.run("status", "--dir", str(cli.tmp))
    assert "refused the key" in status.stdout
    # And `gradexp login` notices the stored key no longer works.
    proc = cli.run("login", "--host", server.url, "--no-browser", input="")
    assert proc.returncode == 1
    assert "no API key was given" in proc.stderr
