"""save(): files become run files, online and offline + ``gradexp sync``; large files in
parts with bounded memory; an interrupted upload resumes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import gradexp
from gradexp.sdk.api import Api
from tests.conftest import ServerProcess

from .conftest import file_records, gradexp_cli


def _server_files(server: ServerProcess, run_id: str) -> dict[str, dict[str, Any]]:
    api = Api(base_url=server.url, api_key=server.api_key)
    return {f["path"]: f for f in api.run(run_id).files()}


def _download(server: ServerProcess, run_id: str, path: str, root: Path) -> bytes:
    api = Api(base_url=server.url, api_key=server.api_key)
    return api.run(run_id).download(path, root).read_bytes()


def _wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_save_online_now_live_and_end(online: ServerProcess, gx_env: Path) -> None:
    (gx_env / "ckpt").mkdir()
    (gx_env / "ckpt" / "a.pt").write_bytes(b"weights-a")
    (gx_env / "ckpt" / "b.pt").write_bytes(b"weights-b")
    (gx_env / "log.txt").write_text("epoch 1\n")
    run = gradexp.init(project="files")
    assert gradexp.save("ckpt/*.pt", policy="now") == ["ckpt/a.pt", "ckpt/b.pt"]
    assert run.save(gx_env / "log.txt") == ["log.txt"]  # an absolute path: named by its file
    assert gradexp.save("summary.json", policy="end") == []
    gradexp.log({"loss": 1.0})
    run.flush()
    _wait_for("the live file's first version", lambda: "log.txt" in _server_files(online, run.id))

    # A live file changes: the server gets the new content (after the settle time).
    (gx_env / "log.txt").write_text("epoch 1\nepoch 2\n")
    newest = hashlib.sha256(b"epoch 1\nepoch 2\n").hexdigest()

    def has_newest() -> bool:
        run.flush()
        return _server_files(online, run.id)["log.txt"]["sha256"] == newest

    _wait_for("the live file's second version", has_newest)
    (gx_env / "summary.json").write_text(json.dumps({"best": 0.1}))
    gradexp.finish()

    files = _server_files(online, run.id)
    assert {"ckpt/a.pt", "ckpt/b.pt", "log.txt", "summary.json"} <= set(files)
    assert files["ckpt/a.pt"]["size"] == len(b"weights-a")
    out = gx_env / "out"
    assert _download(online, run.id, "ckpt/b.pt", out) == b"weights-b"
    assert _download(online, run.id, "log.txt", out) == b"epoch 1\nepoch 2\n"
    assert json.loads(_download(online, run.id, "summary.json", out)) == {"best": 0.1}
    # The version the server acknowledged and a newer one replaced is gone from the run
    # folder; the newest stays.
    saved = os.listdir(Path(run.dir) / "saved")
    assert newest in saved and hashlib.sha256(b"epoch 1\n").hexdigest() not in saved


def test_save_offline_then_sync(online: ServerProcess, gx_env: Path, monkeypatch: Any) -> None:
    (gx_env / "notes.md").write_text("# run notes\n")
    run = gradexp.init(project="files", mode="offline")
    gradexp.save("notes.md")
    time.sleep(0.5)
    (gx_env / "notes.md").write_text("# run notes\nlast words\n")
    gradexp.finish()
    (gx_env / "notes.md").unlink()  # the run folder carries the file, not the original
    names = [r.data["path"] for r in file_records(run.dir, "file")]
    assert "notes.md" in names

    result = gradexp_cli("sync", str(run.dir), env=online.client_env)
    assert result.returncode == 0, result.stderr
    assert _download(online, run.id, "notes.md", gx_env / "out") == b"# run notes\nlast words\n"


def test_save_says_what_it_leaves_out(gx_env: Path, capfd: Any) -> None:
    gradexp.init(mode="offline")
    assert gradexp.save("*.nothing", policy="now") == []
    assert "no file matches" in capfd.readouterr().err
    with pytest.raises(ValueError, match="leaves the current folder"):
        gradexp.save("../secret.txt")
    with pytest.raises(ValueError, match="outside base_path"):
        gradexp.save("/etc/passwd", base_path=gx_env)
    with pytest.raises(ValueError, match="policy"):
        gradexp.save("x", policy="sometimes")
    (gx_env / "sub").mkdir()
    os.mkfifo(gx_env / "sub" / "pipe")
    (gx_env / "sub" / "ok.txt").write_text("ok")
    assert gradexp.save("sub/*", policy="now") == ["sub/ok.txt"]  # a FIFO is not read
    run = gradexp.run
    assert run is not None
    gradexp.finish()
    assert "not a regular file" in capfd.readouterr().err
    assert [r.data["path"] for r in file_records(run.dir, "file") if "local" in r.data] == [
        "sub/ok.txt"
    ]


def test_the_wandb_facade_saves_through_gradexp(gx_env: Path) -> None:
    import gradexp.wandb as wandb

    (gx_env / "model.h5").write_bytes(b"h5")
    run = wandb.init(project="facade", mode="offline")
    assert wandb.save(str(gx_env / "model.h5"), policy="now") == ["model.h5"]
    wandb.finish()
    assert [r.data["path"] for r in file_records(run.dir, "file") if "local" in r.data] == [
        "model.h5"
    ]


def test_save_follows_a_link_but_names_it_by_the_link(online: ServerProcess, gx_env: Path) -> None:
    target = gx_env / "elsewhere"
    target.mkdir()
    (target / "model.bin").write_bytes(b"\x00\x01model")
    (gx_env / "out").mkdir()
    (gx_env / "out" / "latest.bin").symlink_to(target / "model.bin")
    run = gradexp.init(project="files")
    assert gradexp.save("latest.bin", base_path=gx_env / "out", policy="now") == ["latest.bin"]
    gradexp.finish()
    assert _download(online, run.id, "latest.bin", gx_env / "dl") == b"\x00\x01model"


# --- large files ------------------------------------------------------------------------

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, os, resource, sys
    import gradexp

    path = sys.argv[1]
    run = gradexp.init(project="large")
    gradexp.log({"x": 1})
    assert run.flush(timeout=60)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gradexp.save(path, policy="now")
    gradexp.finish()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"run": run.id, "before_kib": before, "after_kib": after}))
    """
)


def _big_file(path: Path, mib: int) -> str:
    """A file of ``mib`` MiB of varied bytes; returns its sha256."""
    digest = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as f:
        for i in range(mib):
            chunk = i.to_bytes(8, "little") + block[8:]
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.slow
def test_a_large_file_goes_to_s3_in_parts_in_bounded_memory(
    start_server: Any, s3_store: Any, gx_env: Path
) -> None:
    srv = start_server(store_url=s3_store, env=s3_store.env)
    big = gx_env / "model.ckpt"
    sha = _big_file(big, 300)
    script = gx_env / "save_big.py"
    script.write_text(_MEMORY_SCRIPT)
    env = {**os.environ, **srv.client_env, "PYTHONPATH": os.getcwd() + os.pathsep + _repo()}
    out = subprocess.run(
        [sys.executable, str(script), str(big)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    grown_mib = (report["after_kib"] - report["before_kib"]) / 1024
    assert grown_mib < 100, f"the client grew by {grown_mib:.0f} MiB for a 300 MiB file"
    files = _server_files(srv, report["run"])
    assert files["model.ckpt"]["sha256"] == sha and files["model.ckpt"]["size"] == 300 << 20
    got = (
        Api(base_url=srv.url, api_key=srv.api_key)
        .run(report["run"])
        .download("model.ckpt", gx_env / "dl")
    )
    assert _file_sha(got) == sha
    # It went through the store in parts: no part is left over, and the blob is there.
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_store.endpoint, **_aws(s3_store.env))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_store.bucket).get("Contents", [])]
    assert any(k.endswith(f"/blobs/{sha}") for k in keys)
    assert not [k for k in keys if "/uploads/" in k]


def _aws(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_REGION"],
    }


def _repo() -> str:
    return str(Path(__file__).resolve().parents[2])


class _SlowProxy:
    """A TCP proxy to the server that lets requests through at about ``rate`` bytes/s, so
    a test can stop a client in the middle of an upload."""

    def __init__(self, port: int, rate: int) -> None:
        self.target = port
        self.rate = rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        try:
            while data := src.recv(64 * 1024):
                dst.sendall(data)
                if slow:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@pytest.mark.slow
def test_an_interrupted_sync_resumes_where_the_server_stands(
    start_server: Any, gx_env: Path
) -> None:
    srv = start_server()
    big = gx_env / "weights.bin"
    sha = _big_file(big, 40)
    run = gradexp.init(project="resume", mode="offline")
    gradexp.save(big, policy="now")
    gradexp.finish()
    run_dir = str(run.dir)

    proxy = _SlowProxy(srv.port, rate=8 * 1024 * 1024)
    env = {**os.environ, **srv.client_env, "GRADEXP_BASE_URL": f"http://127.0.0.1:{proxy.port}"}
    first = subprocess.Popen(
        [sys.executable, "-m", "gradexp.cli", "sync", run_dir],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    body = {"sha256": sha, "size": 40 << 20}

    def part_way() -> int:
        status, reply = srv.request("POST", f"/api/v1/runs/{run.id}/uploads", body)
        return int(reply.get("offset", 0)) if status == 200 else 0

    try:
        stood_at = _wait_for("a part of the upload on the server", part_way, timeout=120)
    finally:
        first.send_signal(signal.SIGKILL)  # the client dies mid-upload
        first.wait(10)
        proxy.close()
    assert 0 < stood_at < 40 << 20

    result = gradexp_cli("sync", run_dir, env=srv.client_env)
    assert result.returncode == 0, result.stderr
    assert "weights.bin" in result.stderr  # the large file's progress line
    got = (
        Api(base_url=srv.url, api_key=srv.api_key)
        .run(run.id)
        .download("weights.bin", gx_env / "dl")
    )
    assert _file_sha(got) == sha
