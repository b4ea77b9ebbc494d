"""A distributed run's page: a real two-rank ``torchrun`` job (gloo on the CPU) whose rank 1
fails, seen in chromium: the Ranks card, the rank bar, and rank 1's charts and logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.sdk.test_distributed import STEPS, torchrun


@pytest.mark.slow
def test_a_distributed_runs_page(ui: Any, server: Any, project: str, tmp_path: Path) -> None:
    import gradexp

    proc = torchrun(tmp_path, {**server.client_env, "FAIL_RANK": "1", "DDP_PROJECT": project})
    assert proc.returncode != 0
    api = gradexp.Api(base_url=server.url, api_key=server.api_key)
    run = next(r for r in api.runs(f"{server.user}/{project}"))
    assert run.state == "failed"

    page = ui.page()
    ui.goto(page, f"/r/{run.id}#overview")
    card = page.locator(".ranks-card")
    expect(card.locator("h2")).to_have_text("Ranks (2)")
    rank1 = card.locator("tr[data-rank='1']")
    expect(rank1.locator(".badge")).to_have_text("failed")
    expect(rank1.locator("td").nth(2)).to_have_text("1")
    expect(card.locator("tr[data-rank='0'] .badge")).to_have_text("finished")
    expect(card).to_contain_text("rank 1 failed (exit code 1)")
    expect(page.locator(".rank-bar .rank-link.active")).to_have_text("rank 0 · finished")
    ui.shot(page, "ranks", full_page=True)

    # Rank 1's own charts: its loss is 1 higher than rank 0's at every step.
    page.locator(".rank-bar .rank-link", has_text="rank 1").click()
    page.wait_for_url("**?rank=1#overview")
    page.goto(f"{server.url}/r/{run.id}?rank=1#charts")
    expect(page.locator(".rank-bar .rank-link.active")).to_have_text("rank 1 · failed, exit code 1")
    expect(page.locator('.panel[data-key="loss"] canvas').first).to_be_visible()
    ui.shot(page, "rank1-charts")
    page.goto(f"{server.url}/r/{run.id}?rank=1#logs")
    log = page.locator(".log")
    expect(log.locator(".log-line", has_text="rank 1 trained")).to_be_visible()
    expect(log.locator(".log-line", has_text="RuntimeError: rank 1 broke")).to_be_visible()
    expect(log.locator(".log-line", has_text="rank 0 trained")).to_have_count(0)
    ui.shot(page, "rank1-logs")
    assert [r["_step"] for r in run.history(rank=1)] == list(range(STEPS))
