"""Debian chromium for the browser tests, driven by Playwright's sync API.

The packages that use a browser (tests/login, tests/ui) each open one with
:func:`chromium` in a package-scoped ``browser`` fixture. Not session-wide: two sync
Playwright sessions cannot run at once in one thread, and while one runs the thread counts
as running an event loop, so every ``asyncio.run`` in other tests would be refused.
``CHROMIUM`` and ``CHROMIUM_ARGS`` also serve tests/login/browser.py and bench_ui.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("GRADEXP_TEST_CHROMIUM", "/usr/bin/chromium")
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
    import pytest

    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
