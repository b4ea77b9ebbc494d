"""Fixtures for the tensor tests: an isolated gradexp environment, a blob sink, server reads.

Every test gets its own working directory, ``GRADEXP_DIR`` and ``GRADEXP_CONFIG_DIR``, no
inherited ``GRADEXP_*`` variables, no watched models left over, and any run it leaves open
is finished at teardown.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gradexp


@pytest.fixture(autouse=True)
def gx_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated gradexp environment: cwd, run dir and config dir under tmp_path."""
    for name in list(os.environ):
        if name.startswith("GRADEXP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GRADEXP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GRADEXP_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    run = gradexp.run
    if run is not None:
        run.finish(timeout=30)
    from gradexp.integrations.torch import unwatch

    unwatch()


@pytest.fixture
def online(server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point the SDK at the shared test server (environment variables)."""
    monkeypatch.setenv("GRADEXP_BASE_URL", server.url)
    monkeypatch.setenv("GRADEXP_API_KEY", server.api_key)
    return server


class FolderSink:
    """A ``BlobSink`` that writes into a folder, as the run's ``files/`` would hold them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[dict[str, Any]] = []

    def add_file(self, data: bytes, *, suffix: str, content_type: str) -> dict[str, Any]:
        sha = hashlib.sha256(data).hexdigest()
        path = sha + suffix
        (self.folder / path).write_bytes(data)
        self.files.append({"path": path, "content_type": content_type})
        return {"path": path, "sha256": sha, "size": len(data)}


@pytest.fixture
def sink(tmp_path: Path) -> FolderSink:
    folder = tmp_path / "files"
    folder.mkdir()
    return FolderSink(folder)


def server_rows(server: Any, run_id: str) -> list[dict[str, Any]]:
    """Every history row of a run, through the read API (all pages)."""
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        status, body = server.request(
            "GET", f"/api/v1/runs/{run_id}/history/rows?after_seq={after}&limit=10000"
        )
        assert status == 200, body
        rows.extend(body["rows"])
        if body["next_after_seq"] is None:
            return rows
        after = body["next_after_seq"]
