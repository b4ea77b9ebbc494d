"""The ``gradexp server`` command line: start banner, admin commands, errors, shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .helpers import new_id, put_run

GX = [sys.executable, "-m", "gradexp.cli"]


def run_cli(*args, **kw):
    return subprocess.run([*GX, *args], capture_output=True, text=True, timeout=120, **kw)


def test_banner_lists_every_setting_and_masks_passwords(start_server, db_url):
    srv = start_server(db_url=db_url)
    log = srv.log_path.read_text()
    assert f"open http://127.0.0.1:{srv.port}" in log
    assert f"data dir      {srv.data_dir}" in log
    assert "object store  local folder" in log
    assert "database" in log


def test_password_in_the_database_url_is_masked(tmp_path):
    from gradexp.server.app import banner
    from gradexp.server.settings import resolve_settings

    settings = resolve_settings(data=tmp_path, db="postgresql://gx:s3cret@db.example:5432/gradexp")
    text = banner(settings, "http://127.0.0.1:8080")
    assert "s3cret" not in text and "postgresql://gx:***@db.example:5432/gradexp" in text


@pytest.mark.slow
def test_user_and_key_commands(tmp_path):
    data = ["--data", str(tmp_path / "gx")]
    out = run_cli("server", "user", "add", "ada", "--no-password", *data)
    assert out.returncode == 0, out.stderr
    out = run_cli("server", "user", "add", "ada", "--no-password", *data)
    assert out.returncode != 0 and "already exists" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("server", "key", "create", "ada", "--name", "laptop", *data)
    assert out.returncode == 0
    key = out.stdout.strip()
    assert key.startswith("gx_") and len(key) == 43 and "shown only once" in out.stderr
    listed = run_cli("server", "key", "list", "ada", *data).stdout
    assert key[:7] in listed and "laptop" in listed and key not in listed
    out = run_cli("server", "key", "create", "nobody", *data)
    assert out.returncode != 0 and "no user 'nobody'" in out.stderr
    out = run_cli("server", "key", "revoke", key[:7], *data)
    assert "revoked 1 key" in out.stdout
    assert "revoked" in run_cli("server", "key", "list", "ada", *data).stdout


def test_storage_options_from_the_environment(tmp_path):
    env = {**os.environ, "GRADEXP_SERVER_DATA": str(tmp_path / "env-data")}
    out = run_cli("server", "migrate", env=env)
    assert out.returncode == 0 and (tmp_path / "env-data" / "gradexp.db").exists()


def test_bad_settings_fail_with_one_line(tmp_path):
    out = run_cli("server", "migrate", "--db", "oracle://x/y", "--data", str(tmp_path))
    assert out.returncode != 0 and "unsupported database URL" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli("server", "--port", "1", "--data", str(tmp_path), "--store", "s3://")
    assert out.returncode != 0 and "Traceback" not in out.stderr


def test_port_in_use(server, tmp_path):
    out = run_cli("server", "--port", str(server.port), "--data", str(tmp_path))
    assert out.returncode != 0
    assert (
        f"cannot listen on 127.0.0.1:{server.port}" in out.stderr and "Traceback" not in out.stderr
    )


@pytest.mark.slow
def test_sigint_shuts_down_cleanly(start_server):
    srv = start_server()
    put_run(srv, new_id())
    srv.proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    assert srv.proc.wait(20) == 0
    assert time.monotonic() - started < 15
    assert "shutting down" in srv.log_path.read_text()
    srv.start()  # same port and data: the run is still there
    assert srv.request("GET", "/api/v1/projects")[0] == 200
