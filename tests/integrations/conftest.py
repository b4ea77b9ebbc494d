"""Fixtures for the integration tests: each trains a tiny model with a real framework
(Lightning, the Hugging Face Trainer, Keras 3 on torch, Accelerate) for a few steps on the
CPU, logging through gradexp's integration, and reads what arrived back with
``gradexp.Api``.

Every test runs in ``gx_env`` (tests/conftest.py). A framework that is not installed skips
its module with one line (a failure under ``GRADEXP_TEST_REQUIRE_ALL=1``): install them with
``pip install -e '.[integrations]'``. Nothing is downloaded: models are built from small
configs.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before any test module imports keras
# Quiet the frameworks: no progress bars, no tips, no telemetry, nothing from any hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@pytest.fixture(autouse=True)
def _isolated(gx_env: Path) -> None:
    """Every integration test runs in ``gx_env`` (tests/conftest.py)."""


@pytest.fixture
def api(online: Any) -> Any:
    """A read client on the test server."""
    import gradexp

    return gradexp.Api(online.url, online.api_key)


@contextlib.contextmanager
def gradexp_warnings() -> Iterator[list[str]]:
    """``with gradexp_warnings() as said:``: the gradexp warnings raised inside (as text),
    once the block is done."""
    import gradexp

    said: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield said
        finally:
            said.extend(
                str(w.message) for w in caught if issubclass(w.category, gradexp.GradexpWarning)
            )


def history(api: Any, run_id: str, key: str) -> list[dict[str, Any]]:
    """The history rows of a run that hold ``key``, in step order."""
    return [row for row in api.run(run_id).scan_history() if key in row]


def run_files(root: Path) -> list[Path]:
    """The run directories under ``root`` (offline runs, run files)."""
    return sorted((root / "gradexp").glob("run-*"))
