"""The gradient explorer of a running run: its table refreshes as new histograms arrive (a
gradient that explodes gets its flag without a reload), while a parameter's charts, which
the reader may be studying, offer "New steps: update" instead of redrawing under them."""

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

pytestmark = pytest.mark.browser

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import gradexp

    project, go, stop = sys.argv[1], sys.argv[2], sys.argv[3]
    run = gradexp.init(project=project, name="watching", config={"lr": 0.01})
    print(run.id, flush=True)
    rng = np.random.default_rng(0)
    w = {"fc1.weight": rng.normal(0, 0.1, (32, 16)), "fc2.weight": rng.normal(0, 0.1, (8, 32))}

    def log(step, scale):
        values = {"train/loss": 1.0 / (step + 1)}
        for name, weights in w.items():
            g = rng.normal(0, 0.01 * (scale if name == "fc1.weight" else 1), weights.shape)
            weights -= 0.01 * g
            values["gradients/" + name] = gradexp.Histogram(g)
            values["parameters/" + name] = gradexp.Histogram(weights)
        gradexp.log(values, step=step)

    for step in range(10):
        log(step, 1)
    gradexp.flush()
    while not os.path.exists(go):
        time.sleep(0.05)
    for step in range(10, 20):  # fc1's gradient explodes in the last steps
        log(step, 1000 if step >= 17 else 1)
    gradexp.flush()
    while not os.path.exists(stop):
        time.sleep(0.05)
    gradexp.finish()
    """
)


def histogram_count(server: Any, run_id: str, key: str) -> int:
    status, body = server.request("GET", f"/api/v1/runs/{run_id}/keys")
    if status != 200:
        return 0
    return next((k["count"] for k in body["keys"] if k["key"] == key), 0)


def wait_for_histograms(server: Any, run_id: str, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while histogram_count(server, run_id, "gradients/fc1.weight") < n:
        assert time.monotonic() < deadline, f"the run never had {n} histograms"
        time.sleep(0.1)


def test_gradient_explorer_follows_a_live_run(
    ui: Any, server: Any, project: str, tmp_path: Path
) -> None:
    go, stop = tmp_path / "go", tmp_path / "stop"
    script = tmp_path / "watch.py"
    script.write_text(SCRIPT)
    env = {**os.environ, **server.client_env, "GRADEXP_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), project, str(go), str(stop)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        wait_for_histograms(server, run_id, 10)

        page = ui.page()
        ui.goto(page, f"/r/{run_id}/gradients")
        table = page.locator("table.params")
        row = table.locator('tr[data-key="gradients/fc1.weight"]')
        row.wait_for()
        assert row.locator(".flag-exploding").count() == 0
        norm_before = float(row.locator("td").nth(1).inner_text().replace(",", ""))
        # Weights are logged too: weight norm and update / weight are numbers, not "—".
        cells = row.locator("td").all_inner_texts()
        assert cells[3] != "—" and cells[4] != "—"
        card = page.locator('.hist-card[data-key="gradients/fc1.weight"]')
        card.scroll_into_view_if_needed()
        expect(card).to_have_attribute("data-steps", "10")
        update = card.locator("button", has_text="New steps: update")
        assert not update.is_visible()
        ui.shot(page, "before")

        go.touch()  # ten more steps, fc1's gradient 1000x larger in the last three
        wait_for_histograms(server, run_id, 20)
        # The table refreshes by itself: the new norm, and the explosion flagged.
        row.locator(".flag-exploding").wait_for(timeout=20_000)
        norm_after = float(row.locator("td").nth(1).inner_text().replace(",", ""))
        assert norm_after > 100 * norm_before
        # The card keeps what it shows (the reader's step, heatmap) and offers the update.
        update.wait_for(state="visible")
        expect(card).to_have_attribute("data-steps", "10")
        card.locator(".media-head .flag-exploding").wait_for()  # the card's flag follows
        ui.shot(page, "new-steps")
        update.click()
        expect(card).to_have_attribute("data-steps", "20")
        expect(card).to_have_attribute("data-last-step", "19")
        assert not update.is_visible()
        card.locator(".step-label", has_text="step 19").wait_for()
        ui.shot(page, "updated")

        stop.touch()
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
        page.locator(".run-head .badge", has_text="finished").wait_for(timeout=20_000)
    finally:
        go.touch()
        stop.touch()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
