"""Security: hostile names show as text, pages run under a strict CSP, signed-out visitors
go to sign-in, assets are cached only when versioned."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

from tests.ui.conftest import VIEWPORT, sign_in

XSS = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"


def test_hostile_names_and_values_show_as_text(
    ui: Any, server: Any, project: str, log_run: Any
) -> None:
    run = log_run(
        project,
        [(s, {"loss": 1.0 / (s + 1), f"{XSS}/acc": 0.5, "note": SCRIPT}) for s in range(20)],
        name=XSS,
        config={"model": SCRIPT, XSS: 1},
        tags=[XSS],
    )
    other = log_run(project, [(0, {"loss": 2.0})], name="plain")
    page = ui.page()

    ui.goto(page, f"/p/{server.user}/{project}")
    row = page.locator(f'tr[data-run="{run.id}"]')
    assert row.locator("a.strong").inner_text() == XSS
    assert row.locator(".tag").inner_text() == XSS
    ui.shot(page, "table")

    ui.goto(page, f"/r/{run.id}")
    assert page.locator(".run-head h1").inner_text() == XSS
    page.locator(f'.panel[data-key="{XSS}/acc"][aria-busy="false"]').wait_for()
    assert page.locator(".crumbs").inner_text().endswith(XSS)
    ui.shot(page, "run")

    page.locator(".tabs a", has_text="Overview").click()
    config = page.locator(".overview .card").first
    config.locator("td", has_text=SCRIPT).wait_for()
    assert config.locator("th", has_text=XSS).count() == 1
    ui.shot(page, "overview")

    ui.goto(page, f"/compare?runs={run.id},{other.id}")
    page.locator(".legend-item", has_text=XSS).wait_for()
    ui.shot(page, "compare")

    # Not one element was made from the data: no <img src=x>, no <script> but our module.
    for path in (f"/r/{run.id}", f"/p/{server.user}/{project}"):
        ui.goto(page, path)
        page.wait_for_timeout(300)
        assert page.locator("img[src='x']").count() == 0
        assert page.evaluate("document.scripts.length") == 1
    # The ui fixture fails the test if any dialog fired or the CSP refused anything.


def test_pages_carry_a_strict_csp_and_assets_cache_by_version(server: Any) -> None:
    req = urllib.request.Request(
        server.url + "/", headers={"Authorization": f"Bearer {server.api_key}"}
    )
    with urllib.request.urlopen(req) as resp:
        csp = resp.headers["Content-Security-Policy"]
        html = resp.read().decode()
        assert resp.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "<script>" not in html  # only <script type="module" src=...>
    assert "http://" not in html and "https://" not in html  # nothing from the internet
    asset = re.search(r'src="(/assets/v[0-9a-f]{12}/js/app\.js)"', html)
    assert asset
    with urllib.request.urlopen(server.url + asset.group(1)) as resp:
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert resp.headers["Content-Type"].startswith("text/javascript")
    with urllib.request.urlopen(server.url + "/assets/js/app.js") as resp:
        assert resp.headers["Cache-Control"] == "no-cache"
    for bad in ("/assets/../routes_ui.py", "/assets/js/../../index.html", "/assets/%2e%2e/app.py"):
        status, _ = server.request("GET", bad)
        assert status == 404, bad
    # Everything else, run files included, is sandboxed if opened as a document.
    with urllib.request.urlopen(
        urllib.request.Request(
            server.url + "/api/v1/projects", headers={"Authorization": f"Bearer {server.api_key}"}
        )
    ) as resp:
        assert "sandbox" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_signed_out_visitor_is_sent_to_sign_in(
    browser: Any, server: Any, project: str, log_run: Any
) -> None:
    run = log_run(project, [(0, {"loss": 1.0})], name="private")
    context = browser.new_context(viewport=VIEWPORT)  # no session
    try:
        page = context.new_page()
        for path in (f"/r/{run.id}", f"/p/{server.user}/{project}", "/"):
            page.goto(server.url + path)
            page.wait_for_url(re.compile(r"/login\?next="))
            assert "private" not in page.content()
        page.goto(server.url + f"/r/{run.id}")
        page.wait_for_url(re.compile(r"/login\?next="))
        page.locator("form").first.wait_for()
        from tests.ui.conftest import OUTPUT

        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / "test_signed_out_visitor_is_sent_to_sign_in-1-login.png"))
        # The API refuses the signed-out page's requests too.
        status = page.evaluate("fetch('/api/v1/projects').then(r => r.status)")
        assert status == 401
    finally:
        context.close()


def test_sign_out_from_the_top_bar(browser: Any, server: Any) -> None:
    context = browser.new_context(viewport=VIEWPORT, storage_state=sign_in(browser, server))
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        page.locator(".viewer", has_text=server.user).wait_for()
        page.locator("button", has_text="Sign out").click()
        page.wait_for_url(re.compile(r"/login\?signed_out=1"))
        page.goto(server.url + "/")
        page.wait_for_url(re.compile(r"/login\?next="))
    finally:
        context.close()


def test_an_open_page_goes_to_sign_in_when_its_session_ends(browser: Any, server: Any) -> None:
    from tests.server.helpers import new_id, put_run

    run = new_id()
    put_run(server, run, project="signout-live")  # running: its page follows it live
    context = browser.new_context(viewport=VIEWPORT, storage_state=sign_in(browser, server))
    try:
        watching = context.new_page()
        watching.goto(server.url + f"/r/{run}")
        watching.locator(".live-pill", has_text="Live").wait_for()
        # Signing out in another tab ends this page's live stream, which says why: the page
        # goes to sign-in (and would come back to the run afterwards).
        other = context.new_page()
        other.goto(server.url + "/")
        other.locator("button", has_text="Sign out").click()
        other.wait_for_url(re.compile(r"/login\?signed_out=1"))
        watching.wait_for_url(re.compile(r"/login\?signed_out=1&next=%2Fr%2F" + run))
        assert "You are signed out." in watching.content()
    finally:
        context.close()
