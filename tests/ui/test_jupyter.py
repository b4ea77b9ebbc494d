"""Jupyter: a run shows as a link to its page, and run.display() embeds the live page,
which draws inside a notebook-like page on another local port (a real kernel, a real
browser)."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import VIEWPORT

pytestmark = pytest.mark.browser


def run_notebook(cells: list[str], env: dict[str, str], cwd: Path) -> list[Any]:
    """Run ``cells`` in a real kernel (skips without one); returns each cell's outputs."""
    from tests.services import require_kernel

    nbformat, nbclient = require_kernel()
    NotebookClient = nbclient.NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    import os

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits them
    try:
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return [cell.outputs for cell in nb.cells]


def html_of(outputs: list[Any]) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs)


@pytest.fixture
def notebook_host() -> Iterator[tuple[str, dict[str, str]]]:
    """A tiny web server on another loopback port, standing in for Jupyter: serves pages."""
    pages: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the stdlib names it
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", pages
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_notebook_link_and_embedded_live_page(
    ui: Any, browser: Any, server: Any, project: str, tmp_path: Path, notebook_host: Any
) -> None:
    outputs = run_notebook(
        [
            "import gradexp\n"
            f"run = gradexp.init(project={project!r}, name='nb-run', dir={str(tmp_path)!r})\n"
            "for i in range(50):\n    gradexp.log({'train/loss': 1 / (i + 1)})\n"
            "run.flush()\nrun",
            "run.display(height=600)",
            "gradexp.finish()",
        ],
        {**server.client_env, "GRADEXP_DIR": str(tmp_path)},
        tmp_path,
    )
    link_html = html_of(outputs[0])
    match = re.search(r'href="(http://[^"]+/r/([a-z0-9]+))"', link_html)
    assert match, link_html
    url, run_id = match.groups()
    assert "nb-run" in link_html
    frame_html = html_of(outputs[1])
    assert f'src="{url}?embed=1"' in frame_html

    # The notebook's output, on a page of another local origin, embeds the live page.
    base, pages = notebook_host
    pages["/notebook"] = f"<!doctype html><title>notebook</title><body>{frame_html}</body>"
    page = ui.page()
    page.goto(base + "/notebook")
    frame = page.frame_locator("iframe")
    frame.locator(".run-head h1", has_text="nb-run").wait_for()
    frame.locator('.panel[data-key="train/loss"][aria-busy="false"]').wait_for()
    assert frame.locator(".topbar").is_hidden()  # embed mode: no top bar
    ui.shot(page, "embedded")

    # Signed out, the frame asks to sign in in a new tab (the sign-in page cannot be framed).
    context = browser.new_context(viewport=VIEWPORT)
    try:
        signed_out = context.new_page()
        signed_out.goto(base + "/notebook")
        link = signed_out.frame_locator("iframe").locator("a", has_text="Sign in (new tab)")
        link.wait_for()
        assert link.get_attribute("target") == "_blank"
        assert link.get_attribute("href") == f"/login?next=%2Fr%2F{run_id}"
        ui.shot(signed_out, "embedded-signed-out")
    finally:
        context.close()
