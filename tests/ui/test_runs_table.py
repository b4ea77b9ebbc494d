"""The runs table: paging through many runs, filters by text, tag and state (crashed
included), sorting, chosen summary columns."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import UI, VIEWPORT, sign_in

pytestmark = pytest.mark.browser


def ingest(
    server: Any,
    run_id: str,
    project: str,
    name: str,
    tags: list[str],
    values: dict[str, float],
    finish: int | None = 0,
) -> None:
    """A run through the protocol (fast for many runs): one history row, maybe a finish."""
    status, body = server.request(
        "PUT",
        f"/api/v1/runs/{run_id}",
        {"project": project, "name": name, "tags": tags, "attempt": "a", "config": {"seed": 1}},
    )
    assert status in (200, 201), body
    records: list[dict[str, Any]] = [
        {"seq": 1, "type": "history", "step": 0, "time": time.time(), "values": values}
    ]
    if finish is not None:
        records.append({"seq": 2, "type": "finish", "exit_code": finish, "time": time.time()})
    doc = {"first_seq": 1, "last_seq": len(records), "records": records}
    status, body = server.request(
        "POST",
        f"/api/v1/runs/{run_id}/records",
        raw=gzip.compress(json.dumps(doc).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert status == 200, body


def names_on_page(page: Any) -> list[str]:
    return page.locator("table.runs tbody td.name-col a.strong").all_inner_texts()


def test_paging_filters_sorting_and_columns(ui: Any, server: Any, project: str) -> None:
    for i in range(120):
        tags = ["even"] if i % 2 == 0 else ["odd"]
        ingest(
            server,
            f"{project}-r{i:03d}",
            project,
            f"run-{i:03d}",
            tags,
            {"val/acc": i / 100, "loss": 1 - i / 200},
            finish=0 if i % 10 else 1,
        )
    page = ui.page()
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/events" in r.url else None)
    ui.goto(page, f"/p/{server.user}/{project}?limit=25")
    page.locator(".pager", has_text="1–25 of 120").wait_for()
    # The table follows the project's runs, not their history rows.
    page.locator(".live-dot").wait_for(state="visible")
    assert streams and all(u.endswith("/events?rows=0") for u in streams), streams
    assert names_on_page(page)[0] == "run-119"  # newest first
    ui.shot(page, "page-1")

    page.locator("button", has_text="Next ›").click()
    page.locator(".pager", has_text="26–50 of 120").wait_for()
    assert names_on_page(page)[0] == "run-094"
    page.locator("button", has_text="‹ Previous").click()
    page.locator(".pager", has_text="1–25 of 120").wait_for()

    # Sort by name, ascending first.
    page.locator("th button", has_text="Name").click()
    expect(page.locator("table.runs tbody td.name-col a.strong").first).to_have_text("run-000")
    assert "order=name" in page.url

    # Filters: state, tag, text (server-side, so totals are exact).
    page.locator("select[aria-label='Filter by state']").select_option("failed")
    page.locator(".pager", has_text="1–12 of 12").wait_for()
    assert page.locator("table.runs .badge").all_inner_texts() == ["failed"] * 12
    page.locator("select[aria-label='Filter by tag']").select_option("odd")
    page.locator(".page-head", has_text="0 runs").wait_for()
    page.locator(".empty-title", has_text="No runs match").wait_for()
    page.locator("select[aria-label='Filter by tag']").select_option("")
    page.locator("select[aria-label='Filter by state']").select_option("")
    page.locator("input[aria-label='Filter runs by name or id']").fill("run-07")
    page.locator(".pager", has_text="1–10 of 10").wait_for()
    ui.shot(page, "filtered")

    # Columns: val/acc is a default summary column; add loss; values are the runs' last values.
    header = page.locator("table.runs thead")
    expect(header.locator("th", has_text="val/acc")).to_have_count(1)
    page.locator("summary", has_text="Columns").click()
    page.locator(".popover-list label", has_text="seed").locator("input").check()
    expect(header.locator("th", has_text="seed")).to_have_count(1)
    row = page.locator("tr", has_text="run-071")
    cells = row.locator("td.num").all_inner_texts()
    assert "0.71" in cells and "1" in cells

    # Chosen columns sort on the server: accuracy highest first, then reversed; a loss
    # column's first click puts the lowest loss first.
    first_name = page.locator("table.runs tbody td.name-col a.strong").first
    header.locator("th", has_text="val/acc").locator("button").click()
    expect(first_name).to_have_text("run-079")
    assert "order=-summary%3Aval%2Facc" in page.url or "order=-summary:val/acc" in page.url
    header.locator("th", has_text="val/acc").locator("button").click()
    expect(first_name).to_have_text("run-070")
    expect(header.locator("th.sorted")).to_have_attribute("aria-sort", "ascending")
    header.locator("th", has_text="loss").locator("button").click()
    expect(first_name).to_have_text("run-079")  # loss = 1 - i/200: lowest at the highest i
    ui.shot(page, "columns")


def test_a_silent_run_reads_as_crashed(browser: Any, start_server: Any, project: str) -> None:
    srv = start_server(env={"GRADEXP_SERVER_CRASH_AFTER": "2"})
    ingest(srv, f"{project}-gone", project, "went-silent", [], {"loss": 1.0}, finish=None)
    ingest(srv, f"{project}-ok", project, "finished-fine", [], {"loss": 0.5})
    context = browser.new_context(viewport=VIEWPORT, storage_state=sign_in(browser, srv))
    try:
        ui = UI(server=srv, context=context, test_name="test_a_silent_run_reads_as_crashed")
        page = ui.page()
        time.sleep(2.5)
        ui.goto(page, f"/p/{srv.user}/{project}")
        row = page.locator("tr", has_text="went-silent")
        expect(row.locator(".badge")).to_have_text("crashed")
        page.locator("select[aria-label='Filter by state']").select_option("crashed")
        expect(page.locator("table.runs tbody tr")).to_have_count(1)
        ui.shot(page, "crashed")
        ui.problems.check()
    finally:
        context.close()
