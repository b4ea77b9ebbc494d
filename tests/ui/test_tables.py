"""A logged gradexp.Table in the Media tab: rows with image cells, sorting by a column,
filtering, the step slider choosing an earlier version, and paging a long table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _cells(page: Any, column: int) -> list[str]:
    """The text of one column of the table on the page, top to bottom."""
    return [
        t.strip()
        for t in page.locator(f".data-table tbody tr td:nth-child({column})").all_inner_texts()
    ]


def test_a_table_with_images_sorts_filters_and_follows_the_step(
    ui: Any, project: str, log_run: Any
) -> None:
    import gradexp

    rng = np.random.default_rng(1)
    labels = ["cat", "dog", "bird", "fish", "frog", "deer"]

    def train(run: Any) -> None:
        table = gradexp.Table(columns=["id", "image", "label", "confidence", "correct"])
        confidence = [0.9, 0.2, 0.6, 0.4, 0.8, 0.1]
        for i, label in enumerate(labels[:3]):
            table.add_data(i, gradexp.Image(rng.random((24, 24, 3))), label, confidence[i], i != 1)
        run.log({"predictions": table}, step=0)
        for i, label in enumerate(labels[3:], start=3):
            table.add_data(
                i, gradexp.Image(rng.random((24, 24, 3))), label, confidence[i], i % 2 == 0
            )
        table.add_data(6, None, "unknown", float("nan"), None)
        run.log({"predictions": table}, step=5)
        long = gradexp.Table(columns=["n", "square"], data=[[n, n * n] for n in range(250)])
        run.log({"squares": long}, step=5)

    run = log_run(project, train, name="tables")
    page = ui.page()
    ui.goto(page, f"/r/{run.id}#media")
    card = page.locator(".media-card[data-key='predictions']")
    expect(card.locator(".table-count")).to_have_text("7 rows × 5 columns at step 5")
    expect(card.locator("img.table-image")).to_have_count(6)
    assert _cells(card, 3) == ["cat", "dog", "bird", "fish", "frog", "deer", "unknown"]
    assert card.locator("td.bad").inner_text() == "NaN"
    ui.shot(page, "table")

    # sort by confidence, descending: the NaN row stays last
    card.locator("th button", has_text="confidence").click()
    card.locator("th button", has_text="confidence").click()
    expect(card.locator("th[aria-sort='descending']")).to_have_count(1)
    assert _cells(card, 3) == ["cat", "frog", "bird", "fish", "dog", "deer", "unknown"]
    ui.shot(page, "sorted")

    # the filter keeps the matching rows, and the sort
    card.locator("input.table-filter").fill("d")
    expect(card.locator(".table-count")).to_have_text("3 of 7 rows match")
    assert _cells(card, 3) == ["bird", "dog", "deer"]

    # the slider's first step shows the table as it was logged then (sort and filter kept)
    card.locator(".slider input").fill("0")
    expect(card.locator(".table-count")).to_have_text("2 of 3 rows match")
    assert _cells(card, 3) == ["bird", "dog"]
    card.locator("input.table-filter").fill("")
    expect(card.locator("img.table-image")).to_have_count(3)

    # a long table is paged 100 rows at a time
    squares = page.locator(".media-card[data-key='squares']")
    expect(squares.locator(".table-pager")).to_contain_text("rows 1–100 of 250")
    squares.locator(".table-pager button", has_text="Next").click()
    expect(squares.locator(".table-pager")).to_contain_text("rows 101–200 of 250")
    assert _cells(squares, 1)[0] == "100"
    squares.locator("th button", has_text="square").click()
    squares.locator("th button", has_text="square").click()
    assert _cells(squares, 1)[0] == "249"  # back on the first page, largest first
    ui.shot(page, "paged", full_page=True)
