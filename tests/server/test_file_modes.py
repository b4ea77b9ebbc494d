"""What the server stores on disk is private to the account that runs it: the data folder is
0700 and every file 0600 (the SQLite database and its -wal/-shm, every blob, the Parquet
exports, ``gradexp export``'s output), whatever the umask; an existing data folder that
others can open is warned about when the server starts."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.helpers import batch, history, new_id, post, put_run


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which files are created 0644 unless the server takes care:
    the server processes the test starts inherit it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            yield Path(folder) / name


@pytest.mark.slow
def test_data_folder_and_every_file_are_private_under_umask_022(
    start_server: Any, tmp_path: Path, umask_022: None
) -> None:
    data = tmp_path / "fresh" / "gx"  # the server makes it, and its missing parent
    cli = [sys.executable, "-m", "gradexp.server"]
    made = subprocess.run(
        [*cli, "user", "add", "owner", "--no-password", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert _mode(data) == 0o700 and _mode(data.parent) == 0o700
    srv = start_server(data_dir=data)
    run = new_id()
    assert put_run(srv, run)[0] in (200, 201)
    # A small blob (written whole) and a large one (streamed to a temporary object, renamed).
    for blob in (b"a small blob", os.urandom(9 * 1024 * 1024)):
        sha = hashlib.sha256(blob).hexdigest()
        status, _ = srv.request("PUT", f"/api/v1/runs/{run}/blobs/{sha}", raw=blob)
        assert status == 201
    records = [history(i + 1, i, {"loss": float(i)}) for i in range(20)]
    records.append({"seq": 21, "type": "finish", "exit_code": 0, "time": 1.7e9 + 30})
    assert post(srv, run, batch(records))[0] == 200
    deadline = time.monotonic() + 60
    while not [p for p in _walk(data / "objects") if p.name == "history.parquet"]:
        assert time.monotonic() < deadline, "the Parquet export never appeared"
        time.sleep(0.2)
    exported = data / "exports" / "run.parquet"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradexp.cli",
            "export",
            run,
            "--out",
            str(exported),
            *srv.storage_args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr

    paths = [p for p in _walk(data) if p != srv.log_path]  # the test's own log of the server
    names = {p.name for p in paths}
    assert {"gradexp.db", "gradexp.db-wal", "gradexp.db-shm", "history.parquet"} <= names
    assert len([p for p in paths if p.parent.name == "blobs"]) == 2
    assert exported in paths
    opened = {str(p.relative_to(data)): oct(_mode(p)) for p in paths if _mode(p) & 0o077}
    assert opened == {}, "others can open these"
    assert all(_mode(p) == 0o700 for p in paths if p.is_dir())
    assert all(_mode(p) == 0o600 for p in paths if p.is_file())


@pytest.mark.slow
def test_an_existing_data_folder_that_others_can_open_is_warned_about(
    start_server: Any, tmp_path: Path
) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o755)
    srv = start_server(data_dir=data)
    warnings = [line for line in srv.log_tail().splitlines() if "other users" in line]
    assert len(warnings) == 1, srv.log_tail()
    assert "WARNING" in warnings[0] and str(data) in warnings[0] and "chmod" in warnings[0]
    assert _mode(data) == 0o755  # the operator's folder keeps the mode they gave it
    srv.stop()
    data.chmod(0o700)
    srv.start()  # closed: no second warning
    assert len([line for line in srv.log_tail().splitlines() if "other users" in line]) == 1
