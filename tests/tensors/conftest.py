"""Fixtures for the tensor tests: an isolated gradexp environment and a blob sink.

Every test runs in ``gx_env`` (tests/conftest.py): its own working directory,
``GRADEXP_DIR`` and ``GRADEXP_CONFIG_DIR``, no inherited ``GRADEXP_*`` variables, no
watched models left over, and any run it leaves open finished at teardown.

Most of these tests drive torch tensors and models: without torch, each module that
imports it skips with one line (a failure under ``GRADEXP_TEST_REQUIRE_ALL=1``) and the
histogram kernel's tests still run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import server_rows as server_rows  # the tensor tests import it from here
from tests.services import require_torch

# The modules that import torch at the top (they are marked ``torch``).
NEEDS_TORCH = {"test_capture.py", "test_end_to_end.py", "test_images.py", "test_watch.py"}


class _TorchModule(pytest.Module):
    """A test module that imports torch: collected only where torch imports."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        require_torch()  # before the module's own ``import torch`` could fail
        return super().collect()


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    """Collect the torch modules through :class:`_TorchModule`."""
    if module_path.name in NEEDS_TORCH:
        return _TorchModule.from_parent(parent, path=module_path)
    return None


@pytest.fixture(autouse=True)
def _isolated(gx_env: Path) -> None:
    """Every tensor test runs in ``gx_env`` (tests/conftest.py)."""


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
