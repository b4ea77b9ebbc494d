"""Live: a run appears in the runs table while its script starts, its chart grows while
the script logs, and the page notices when it finishes. Real script, real server, chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.helpers import open_streams

pytestmark = pytest.mark.browser

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import gradexp

    project, name, stop = sys.argv[1], sys.argv[2], sys.argv[3]
    run = gradexp.init(project=project, name=name, config={"lr": 0.01}, tags=["live"])
    print(run.id, flush=True)
    step = 0
    while not os.path.exists(stop) and step < 20000:
        gradexp.log({"train/loss": 1.0 / (step + 1), "train/acc": step / (step + 100)})
        step += 1
        time.sleep(0.02)
    gradexp.finish()
    """
)


def hover_step(page: Any, panel: Any, fraction: float) -> int:
    """Hover the chart at a fraction of its width; the step the tooltip names."""
    box = panel.locator("canvas.chart-overlay").bounding_box()
    page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
    head = panel.locator(".tip-head")
    head.wait_for(state="visible")
    text = head.inner_text()
    return int(text.split("step")[-1].strip().replace(",", ""))


def test_run_appears_and_its_chart_grows_live(
    ui: Any, server: Any, project: str, log_run: Any, tmp_path: Path
) -> None:
    # A first run creates the project; the table is open before the live run starts.
    warmup = log_run(project, [(0, {"train/loss": 1.0})], name="warmup")
    page = ui.page()
    ui.goto(page, f"/p/{server.user}/{project}")
    page.locator("tr", has_text="warmup").wait_for()
    page.locator(".live-dot").wait_for(state="visible")

    stop = tmp_path / "stop"
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, **server.client_env, "GRADEXP_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), project, "live-run", str(stop)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        # The new run shows up in the open table, running, without a reload.
        row = page.locator(f'tr[data-run="{run_id}"]')
        row.wait_for(timeout=20_000)
        assert "running" in row.locator(".badge").inner_text()
        ui.shot(page, "table-live")

        row.locator("a.strong").click()
        page.wait_for_url(f"**/r/{run_id}")
        panel = page.locator('.panel[data-key="train/loss"]')
        expect(panel).to_have_attribute("aria-busy", "false")
        page.locator(".live-pill").wait_for(state="visible")
        first = hover_step(page, panel, 0.995)
        # The chart grows while the script logs: the last point's step keeps increasing.
        deadline = time.monotonic() + 30
        later = first
        while later <= first + 10 and time.monotonic() < deadline:
            page.mouse.move(0, 0)
            page.wait_for_timeout(500)
            later = hover_step(page, panel, 0.995)
        assert later > first + 10, f"the chart did not grow: step {first} -> {later}"
        # While points arrive under a still pointer, the other chart follows the hovered
        # one's crosshair to the newest step it names.
        page.wait_for_function(
            """() => {
                const head = document.querySelector('.panel[data-key="train/loss"] .tip-head');
                const c = [...document.querySelectorAll('.panel .chart')].map(c => c.dataset.crosshair);
                const step = head && head.textContent.split('step')[1];
                return c.length === 2 && c[0] !== undefined && c[0] === c[1]
                    && step !== undefined && Number(step.trim().replace(/,/g, '')) === Number(c[0]);
            }"""
        )
        ui.shot(page, "run-live")

        # The compare view follows the live run too (through the project's stream).
        compare = ui.page()
        ui.goto(compare, f"/compare?runs={run_id},{warmup.id}")
        cpanel = compare.locator('.panel[data-key="train/loss"]')
        expect(cpanel).to_have_attribute("aria-busy", "false")
        compare.locator(".live-pill").wait_for(state="visible")
        start = hover_step(compare, cpanel, 0.995)
        grown = start
        deadline = time.monotonic() + 30
        while grown <= start + 10 and time.monotonic() < deadline:
            compare.mouse.move(0, 0)
            compare.wait_for_timeout(500)
            grown = hover_step(compare, cpanel, 0.995)
        assert grown > start + 10, f"the compare chart did not grow: step {start} -> {grown}"
        ui.shot(compare, "compare-live")
        compare.close()

        stop.touch()
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
        # Finished: the badge says so without a reload, and the live indicator goes away.
        page.locator(".run-head .badge", has_text="finished").wait_for(timeout=20_000)
        page.locator(".live-pill").wait_for(state="hidden")
        # The header shows the run's tag labelled as a tag, and no live indicator.
        facts = page.locator(".run-head .facts")
        assert "Tags live" in " ".join(facts.inner_text().split())
        assert page.locator(".live-pill:visible, .run-head .pulse").count() == 0
        # Hovering the end of one chart puts every chart's crosshair on that same step
        # (they used to disagree once the hovered chart grew under a still pointer).
        step = hover_step(page, panel, 0.995)
        page.wait_for_function(
            """s => [...document.querySelectorAll('.panel .chart')].every(c => c.dataset.crosshair === String(s))""",
            arg=step,
        )
        ui.shot(page, "run-finished")

        # Closing the tabs ends their event streams on the server, quietly.
        table = ui.page()
        ui.goto(table, f"/p/{server.user}/{project}")
        table.locator(".live-dot").wait_for(state="visible")
        assert open_streams(server) >= 1
        table.close()
        page.close()
        deadline = time.monotonic() + 10
        while open_streams(server) != 0:
            assert time.monotonic() < deadline, "event streams outlived their tabs"
            time.sleep(0.05)
        log = server.log_path.read_text(errors="replace")
        assert "closing transport" not in log and "Error handling request" not in log, log[-3000:]
    finally:
        stop.touch()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
