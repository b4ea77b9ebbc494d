"""A page whose live stream the server cannot resume (a big project's cursor kept by a
server process that has since restarted) reloads, so that it does not show a table or
charts with rows missing; a page that has just loaded does not (it is already current)."""

from __future__ import annotations

import time
from typing import Any

from tests.server.helpers import post, put_run, steps_batch
from tests.ui.conftest import UI, VIEWPORT, sign_in

# Counts the page's loads in its tab; ``older`` makes the page look open for a minute.
COUNT_LOADS = """
(() => {
  const n = Number(sessionStorage.getItem("gx-loads") || "0") + 1;
  sessionStorage.setItem("gx-loads", String(n));
})();
"""
# Keeps the last event id a page's streams received (to know the page has one).
LAST_ID = """
(() => {
  const Base = window.EventSource;
  window.EventSource = class extends Base {
    constructor(url, options) {
      super(url, options);
      this.addEventListener("run", (e) => { window.gxLastId = e.lastEventId; });
    }
  };
})();
"""
OLDER = """
(() => {
  const real = performance.now.bind(performance);
  performance.now = () => real() + 60000;
})();
"""


def _loads(page: Any) -> str | None:
    """The page's load count (None while it is between two documents)."""
    try:
        return page.evaluate("() => sessionStorage.getItem('gx-loads')")  # type: ignore[no-any-return]
    except Exception:  # the page is navigating: its context went away
        return None


def test_a_stream_that_cannot_resume_reloads_the_page(browser: Any, start_server: Any) -> None:
    # Every project cursor is kept in memory (a limit of 20 characters): a restart loses it.
    srv = start_server(env={"GRADEXP_SERVER_MAX_EVENT_ID": "20"})
    project = "reset"
    run = "reset-run-1"
    put_run(srv, run, project=project)
    post(srv, run, steps_batch(1, 3))
    state = sign_in(browser, srv)
    contexts = []
    try:
        pages = {}
        for name, scripts in (
            ("open a minute", (COUNT_LOADS, LAST_ID, OLDER)),
            ("just opened", (COUNT_LOADS, LAST_ID)),
        ):
            context = browser.new_context(viewport=VIEWPORT, storage_state=state)
            contexts.append(context)
            for script in scripts:
                context.add_init_script(script)
            ui = UI(server=srv, context=context, test_name=f"reset-{name.replace(' ', '-')}")
            page = ui.page()
            ui.goto(page, f"/p/{srv.user}/{project}")
            pages[name] = (ui, page)
        for _ui, page in pages.values():
            page.locator("tr", has_text=run).wait_for()
        # A run event (the run progressed) gives each page's stream an id: a kept cursor.
        post(srv, run, steps_batch(4, 2))
        for _ui, page in pages.values():
            deadline = time.monotonic() + 20
            while not (page.evaluate("() => window.gxLastId || ''") or "").startswith("m"):
                assert time.monotonic() < deadline, "no run event with a kept cursor's id"
                page.wait_for_timeout(100)
        srv.stop()
        srv.start()  # the same port: each page's EventSource reconnects with its last id
        ui, page = pages["open a minute"]
        deadline = time.monotonic() + 20
        while _loads(page) != "2":
            assert time.monotonic() < deadline, "the page did not reload"
            page.wait_for_timeout(100)
        page.wait_for_selector("#app > :not(.boot)")
        page.locator("tr", has_text=run).wait_for()
        ui.shot(page, "reloaded")
        ui, page = pages["just opened"]
        page.wait_for_timeout(1500)
        assert _loads(page) == "1"
        for ui, _page in pages.values():
            ui.problems.check()
    finally:
        for context in contexts:
            context.close()
