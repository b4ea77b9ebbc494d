"""Changing runs from the web UI: the run page's inline editor (seen live on another open
page), renaming in the runs table, and deleting runs from the table after a confirmation."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.test_runs_table import ingest, names_on_page

pytestmark = pytest.mark.browser


def test_edit_a_run_inline_and_another_page_sees_it(ui: Any, server: Any, project: str) -> None:
    run_id = f"{project}-edit"
    ingest(server, run_id, project, "first try", ["old"], {"loss": 0.5})
    table = ui.goto(ui.page(), f"/p/{server.user}/{project}")
    expect(table.locator("table.runs tbody tr")).to_have_count(1)
    page = ui.goto(ui.page(), f"/r/{run_id}")
    expect(page.locator(".run-head h1")).to_have_text("first try")
    page.get_by_role("button", name="Edit").click()
    editor = page.locator("form.run-editor")
    editor.get_by_label("Run name").fill("baseline, lr 3e-4")
    editor.get_by_label("Tags, separated by commas").fill("keep, sweep-1")
    editor.get_by_label("Notes").fill("The one to beat: warmup 500 steps.")
    ui.shot(page, "editing")
    editor.get_by_role("button", name="Save").click()
    expect(editor).to_have_count(0)
    expect(page.locator(".run-head h1")).to_have_text("baseline, lr 3e-4")
    expect(page.locator(".run-head .facts .tag")).to_have_text(["keep", "sweep-1"])
    expect(page.locator(".run-notes")).to_contain_text("The one to beat")
    ui.shot(page, "saved")
    # Stored, and the runs table open in the other tab changed by itself (live).
    assert server.request("GET", f"/api/v1/runs/{run_id}")[1]["tags"] == ["keep", "sweep-1"]
    expect(table.locator("table.runs tbody td.name-col a.strong")).to_have_text("baseline, lr 3e-4")
    expect(table.locator("table.runs tbody .tags-col .tag")).to_have_text(["keep", "sweep-1"])
    ui.shot(table, "other-page-live")


def test_rename_in_the_table_and_delete_selected_runs(ui: Any, server: Any, project: str) -> None:
    for i in range(4):
        ingest(server, f"{project}-r{i}", project, f"run {i}", [], {"loss": float(i)})
    page = ui.goto(ui.page(), f"/p/{server.user}/{project}?order=name")
    expect(page.locator("table.runs tbody tr")).to_have_count(4)
    # Rename in place: the pencil beside the name, Enter to save.
    page.locator("table.runs tbody tr").first.hover()
    page.get_by_role("button", name="Rename run run 0").click()
    field = page.get_by_label("New name for run run 0")
    field.fill("run 0 (baseline)")
    ui.shot(page, "renaming")
    field.press("Enter")
    expect(page.locator("table.runs tbody td.name-col a.strong").first).to_have_text(
        "run 0 (baseline)"
    )
    assert server.request("GET", f"/api/v1/runs/{project}-r0")[1]["name"] == "run 0 (baseline)"
    # Delete two: nothing happens before the confirmation.
    for i in (1, 2):
        page.get_by_label(f"Select run run {i}").check()
    page.get_by_role("button", name="Delete 2").click()
    bar = page.get_by_role("alertdialog")
    expect(bar).to_contain_text("Delete 2 runs?")
    ui.shot(page, "confirm-delete")
    assert server.request("GET", f"/api/v1/runs/{project}-r1")[0] == 200
    bar.get_by_role("button", name="Delete 2 runs").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(2)
    assert names_on_page(page) == ["run 0 (baseline)", "run 3"]
    expect(page.get_by_role("alertdialog")).to_have_count(0)
    ui.shot(page, "deleted")
    for i in (1, 2):
        assert server.request("GET", f"/api/v1/runs/{project}-r{i}")[0] == 404
    assert server.request("GET", f"/api/v1/runs/{project}-r3")[0] == 200
