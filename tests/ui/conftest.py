"""Fixtures for the web UI tests: Debian chromium driven by Playwright, signed in to the
shared ``server`` (a real ``gradexp server`` process) through a real one-time sign-in link,
and runs logged by the real SDK.

Every test saves screenshots of the pages it drives under ``tests/_output/ui/``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests._browser import browser as browser  # one chromium for this package's tests

OUTPUT = Path(__file__).resolve().parents[1] / "_output" / "ui"
VIEWPORT = {"width": 1400, "height": 900}


def sign_in_link(server: Any) -> str:
    """A one-time link that signs the server's user in (``gradexp server user login-link``)."""
    out = server.admin("user", "login-link", server.user, "--url", server.url)
    match = re.search(r"https?://\S+/login/link\?token=\S+", out)
    assert match, f"no sign-in link in: {out!r}"
    return match.group(0)


def sign_in(browser: Any, server: Any) -> dict[str, Any]:
    """Sign in to ``server`` through a real one-time link; returns the browser's storage state."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(sign_in_link(server))
    page.locator("form[action='/login/link'] button[type=submit]").click()  # "Continue as ..."
    page.wait_for_url(server.url + "/")
    state: dict[str, Any] = context.storage_state()
    context.close()
    assert any(c["name"] == "gradexp_session" for c in state["cookies"]), "sign-in link failed"
    return state


@pytest.fixture(scope="package")
def signed_in_state(browser: Any, server: Any) -> dict[str, Any]:
    """The cookies of a browser signed in to the shared server (reused by tests)."""
    return sign_in(browser, server)


@dataclass
class PageProblems:
    """What went wrong in a page: script errors, CSP violations, dialogs (XSS)."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert not self.dialogs, f"a dialog fired: {self.dialogs}"
        assert not self.errors, f"errors in the page: {self.errors}"


@dataclass
class UI:
    """A signed-in browser context on the shared server, and helpers around it."""

    server: Any
    context: Any
    test_name: str
    problems: PageProblems = field(default_factory=PageProblems)
    shots: int = 0

    def page(self) -> Any:
        """A new page that records script errors, CSP violations and dialogs."""
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.problems.errors.append(f"pageerror: {exc}"))

        def on_console(msg: Any) -> None:
            text = msg.text
            if msg.type == "error" and ("Content Security Policy" in text or "Refused" in text):
                self.problems.errors.append(f"console: {text}")

        page.on("console", on_console)

        def on_dialog(dialog: Any) -> None:
            self.problems.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return page

    def goto(self, page: Any, path: str) -> Any:
        """Open a UI path and wait until its scripts have drawn it."""
        page.goto(self.server.url + path)
        page.wait_for_selector("#app > :not(.boot)")
        return page

    def shot(self, page: Any, name: str, full_page: bool = False) -> Path:
        """Save a screenshot under tests/_output/ui/<test>-<n>-<name>.png."""
        OUTPUT.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        path = OUTPUT / f"{self.test_name}-{self.shots}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def ui(
    browser: Any, server: Any, signed_in_state: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[UI]:
    """A signed-in browser context; fails the test on script errors, CSP violations or dialogs."""
    context = browser.new_context(viewport=VIEWPORT, storage_state=signed_in_state)
    context.set_default_timeout(20_000)
    helper = UI(server=server, context=context, test_name=request.node.name.replace("/", "_"))
    yield helper
    context.close()
    helper.problems.check()


@pytest.fixture
def project() -> str:
    """A fresh project name (the session's server is shared)."""
    return f"ui-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def log_run(server: Any, tmp_path: Path) -> Callable[..., Any]:
    """Log a whole run with the real SDK in this process; returns the finished Run.

    ``log_run(project, rows, name=None, config=None, tags=None, id=None)``: ``rows`` is a list of
    ``(step, values)`` pairs or a callable ``rows(run)`` that logs by itself.
    """
    import gradexp

    def make(
        project: str,
        rows: Any,
        *,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        id: str | None = None,
    ) -> Any:
        run = gradexp.init(
            project=project,
            id=id,
            name=name,
            config=config,
            tags=tags,
            base_url=server.url,
            api_key=server.api_key,
            dir=str(tmp_path),
            settings={"quiet": True},
        )
        if callable(rows):
            rows(run)
        else:
            for step, values in rows:
                run.log(values, step=step)
        run.finish()
        return run

    return make
