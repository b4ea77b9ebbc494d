"""Debian chromium for the browser tests, driven by Playwright's sync API.

The packages that use a browser (tests/login, tests/ui) each register the package-scoped
:func:`browser` fixture by importing it into their conftest. Not session-wide: two sync
Playwright sessions cannot run at once in one thread, and while one runs the thread counts
as running an event loop, so every ``asyncio.run`` in other tests would be refused.
``CHROMIUM`` and ``CHROMIUM_ARGS`` also serve tests/login/browser.py and bench_ui.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services import CHROMIUM as CHROMIUM
from tests.services import require_chromium

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian chromium (never a downloaded browser); skips if it is missing."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One chromium for the tests of the package whose conftest imports this fixture."""
    with chromium() as b:
        yield b
