"""A person at a browser, for `gradexp login` tests: set ``BROWSER="python browser.py %s"``.

Python's ``webbrowser`` runs this with the authorize URL. It drives Debian's chromium with
Playwright through sign-in and Authorize, like a person would, and follows the redirect to
the CLI's loopback listener. What it does is chosen by environment variables:

- ``GX_TEST_USER`` / ``GX_TEST_PASSWORD``: the account to sign in with.
- ``GX_BROWSER_MODE``:
    ``authorize`` (default) sign in if asked, press Authorize, follow the redirect;
    ``deny`` press Cancel instead;
    ``fail`` exit 1 at once (the browser "could not open");
    ``hang`` exit 0 at once and do nothing (no answer ever comes);
    ``wrong-password`` sign in with a wrong password, note the error, stop there;
    ``wrong-state`` authorize, but deliver the code with another ``state``;
    ``delay:SECONDS`` authorize, hold the code that long, then deliver it;
    ``replay:FILE`` deliver the code saved in FILE (by an earlier run) with this run's state.
- ``GX_BROWSER_SAVE``: a file to save the callback URL in (the code it carried).
- ``GX_BROWSER_SHOTS``: a folder for screenshots (``sign-in.png``, ``authorize.png``, ...).
- ``GX_BROWSER_LOG``: a JSON file to write what happened (pages seen, texts, final URL).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script
from tests._browser import CHROMIUM, CHROMIUM_ARGS


def deliver(callback_url: str) -> int:
    """GET the loopback listener directly (without following its redirect)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))
    try:
        with opener.open(callback_url, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


def main(url: str) -> int:
    mode = os.environ.get("GX_BROWSER_MODE", "authorize")
    if mode == "fail":
        return 1
    if mode == "hang":
        return 0
    shots = Path(os.environ["GX_BROWSER_SHOTS"]) if os.environ.get("GX_BROWSER_SHOTS") else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    log: dict[str, Any] = {"mode": mode, "opened": url, "pages": []}
    port = parse_qs(urlsplit(url).query)["port"][0]
    state = parse_qs(urlsplit(url).query)["state"][0]

    if mode.startswith("replay:"):
        saved = parse_qs(urlsplit(Path(mode.split(":", 1)[1]).read_text().strip()).query)
        query = urlencode({"code": saved["code"][0], "state": state})
        log["status"] = deliver(f"http://127.0.0.1:{port}/callback?{query}")
        _write_log(log)
        return 0

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 780})
            callback = re.compile(rf"^http://127\.0\.0\.1:{port}/callback")
            captured: dict[str, str] = {}
            hold = mode == "wrong-state" or mode.startswith("delay:")
            # The redirect to the listener is not a request Playwright can route (routes
            # see only the first request of a redirect chain), so watch requests to record
            # it, and to hold the code back, route the Authorize POST and answer it here.
            page.on(
                "request",
                lambda request: (
                    captured.setdefault("url", request.url) if callback.match(request.url) else None
                ),
            )

            def on_authorize(route: Any) -> None:
                if route.request.method != "POST":
                    route.continue_()
                    return
                response = route.fetch(max_redirects=0)
                captured["url"] = response.headers["location"]
                route.fulfill(status=200, content_type="text/plain", body="held")

            if hold:
                page.route(re.compile(r".*/authorize$"), on_authorize)

            def snap(name: str) -> None:
                log["pages"].append(
                    {"name": name, "url": page.url, "text": page.inner_text("body")}
                )
                if shots is not None:
                    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

            page.goto(url)
            if urlsplit(page.url).path == "/login":
                snap("sign-in")
                password = os.environ.get("GX_TEST_PASSWORD", "")
                if mode == "wrong-password":
                    password += "-wrong"
                page.fill("input[name=username]", os.environ.get("GX_TEST_USER", ""))
                page.fill("input[name=password]", password)
                page.click("button[type=submit]")
                page.wait_for_load_state()
                if mode == "wrong-password":
                    snap("sign-in-error")
                    _write_log(log)
                    return 0
            if urlsplit(page.url).path != "/authorize":
                snap("unexpected")
                _write_log(log)
                return 2
            snap("authorize")
            button = "Cancel" if mode == "deny" else "Authorize"
            page.get_by_role("button", name=button).click()
            deadline = time.monotonic() + 30
            while "url" not in captured and time.monotonic() < deadline:
                page.wait_for_timeout(50)
            if "url" not in captured:
                snap("no-callback")
                _write_log(log)
                return 3
            if os.environ.get("GX_BROWSER_SAVE"):
                Path(os.environ["GX_BROWSER_SAVE"]).write_text(captured["url"])
            if hold:
                if mode.startswith("delay:"):
                    time.sleep(float(mode.split(":", 1)[1]))
                    target = captured["url"]
                else:
                    target = with_query(captured["url"], state="not-the-state-" + state[:8])
                log["status"] = deliver(target)
            else:
                page.wait_for_url(re.compile(r".*/login/done\?.*"), timeout=30_000)
                snap("done")
            log["final_url"] = page.url
        finally:
            browser.close()
    _write_log(log)
    return 0


def _write_log(log: dict[str, Any]) -> None:
    if os.environ.get("GX_BROWSER_LOG"):
        Path(os.environ["GX_BROWSER_LOG"]).write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
