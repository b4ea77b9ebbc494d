"""The run page for what scripts log beyond scalars: a gallery of images per step (with
the step slider), keys charted against their define_metric step_metric, hidden keys,
chosen summaries in the runs table and on the run page, and alerts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _digit(n: int) -> np.ndarray:
    """A 28x28 gray image with ``n + 1`` bright bars: each step's images differ."""
    img = np.zeros((28, 28), np.uint8)
    for i in range(n + 1):
        img[4 + 3 * i : 6 + 3 * i, 4:24] = 255
    return img


def test_gallery_at_each_step_with_the_slider(ui: Any, project: str, log_run: Any) -> None:
    import gradexp

    def train(run: Any) -> None:
        for step in range(3):
            images = [gradexp.Image(_digit((step + k) % 6), caption=f"pred {k}") for k in range(6)]
            run.log({"predictions": images, "loss": 1.0 / (step + 1)})

    # an id with dots: the page, the API and the files all take it
    run = log_run(project, train, name="gallery-run", id=f"{project}.gallery.v1")
    page = ui.page()
    ui.goto(page, f"/r/{run.id}#media")
    card = page.locator(".media-card[data-key='predictions']")
    expect(card.locator(".kind")).to_have_text("gallery")
    gallery = card.locator(".gallery")
    expect(gallery.locator("img")).to_have_count(6)
    expect(gallery.locator("figcaption").first).to_have_text("pred 0")
    expect(card.locator(".step-label")).to_contain_text("step 2")
    # every image loads (a broken one has naturalWidth 0)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.gallery img')].every(i => i.complete && i.naturalWidth === 28)"
    )
    last_srcs = gallery.locator("img").evaluate_all("els => els.map(e => e.src)")
    ui.shot(page, "gallery-last-step")
    slider = card.locator(".slider input")
    slider.fill("0")
    expect(card.locator(".step-label")).to_contain_text("step 0")
    expect(card.locator(".gallery-count")).to_have_text("6 images at step 0")
    first_srcs = gallery.locator("img").evaluate_all("els => els.map(e => e.src)")
    assert first_srcs != last_srcs  # another step, other images
    page.wait_for_function(
        "() => [...document.querySelectorAll('.gallery img')].every(i => i.complete && i.naturalWidth === 28)"
    )
    ui.shot(page, "gallery-step-0")


def test_define_metric_axes_hidden_keys_and_summaries(
    ui: Any, server: Any, project: str, log_run: Any
) -> None:

    def train(run: Any) -> None:
        run.define_metric("epoch", hidden=True)
        run.define_metric("val/*", step_metric="epoch", summary="min")
        run.define_metric("train/acc", summary="max")
        step = 0
        for epoch in range(5):
            for _ in range(20):
                step += 1
                run.log({"train/acc": min(0.95, 0.5 + step / 100), "epoch": epoch + step % 20 / 20})
            run.log({"epoch": epoch + 1, "val/loss": [0.9, 0.5, 0.3, 0.35, 0.4][epoch]})
        run.alert("val/loss went up", "0.3 -> 0.4 after epoch 5", level="WARN")

    run = log_run(project, train, name="epochs-run")
    page = ui.page()
    ui.goto(page, f"/r/{run.id}")
    panel = page.locator(".panel[data-key='val/loss']")
    expect(panel.locator(".panel-axis")).to_have_text(" vs epoch")
    panel.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const p = document.querySelector(\".panel[data-key='val/loss'] canvas.chart-base\"); return p && p.width > 0; }"
    )
    # Hovering the chart names the epoch under the crosshair, not the step.
    plot = panel.locator(".chart-overlay")
    box = plot.bounding_box()
    assert box is not None
    page.wait_for_timeout(300)  # the first frame is drawn on the next animation frame
    plot.hover(position={"x": box["width"] - 20, "y": box["height"] / 2})
    tip = panel.locator(".chart-tip .tip-head")
    expect(tip).to_contain_text("epoch 5")
    expect(tip).to_contain_text("step ")
    ui.shot(page, "val-loss-vs-epoch")
    # "epoch" is hidden: no chart until the toolbar's toggle shows it.
    epoch_panel = page.locator(".panel[data-key='epoch']")
    expect(epoch_panel).to_be_hidden()
    toggle = page.locator(".hidden-toggle")
    expect(toggle).to_contain_text("Hidden (1)")
    toggle.locator("input").check()
    expect(epoch_panel).to_be_visible()
    # the alert: a count in the header, and the alert itself on the overview
    expect(page.locator(".alert-pill")).to_have_text("1 alert")
    page.locator(".alert-pill").click()
    alert = page.locator(".alerts .alert")
    expect(alert).to_have_count(1)
    expect(alert).to_have_class("alert level-WARN")
    expect(alert.locator(".alert-text")).to_have_text("0.3 -> 0.4 after epoch 5")
    # the overview's summary holds the chosen aggregates
    summary = page.locator(".overview .card", has_text="Summary")
    expect(summary.locator("tr", has_text="val/loss").locator("td")).to_have_text("0.3")
    expect(summary.locator("tr", has_text="train/acc").locator("td")).to_have_text("0.95")
    ui.shot(page, "overview-alert-and-summary")

    # The runs table shows (and sorts by) the min of val/loss, not its last value: by the
    # last values (0.4 and 0.35) the other run would come first.
    log_run(project, [(0, {"val/loss": 0.35})], name="other-run")
    table_page = ui.page()
    ui.goto(table_page, f"/p/{server.user}/{project}")
    header = table_page.locator("th", has_text="val/loss")
    expect(header).to_be_visible()
    row = table_page.locator("tr", has_text="epochs-run")
    expect(row.locator("td.value-col").first).to_have_text("0.3")
    header.click()
    names = table_page.locator("tbody tr td.name-col")
    expect(names.first).to_contain_text("epochs-run")
    expect(names.nth(1)).to_contain_text("other-run")
    ui.shot(table_page, "runs-table-summary")
