"""Charts: hover names the right value for every run, drag-to-zoom refetches a finer range,
double-click resets, log scale and smoothing toggle; the compare view overlays runs."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

STEPS = 3000


def loss_a(step: int) -> float:
    return step * 0.5


def loss_b(step: int) -> float:
    return step * 2.0 + 1.0


def tooltip(page: Any, panel: Any, fraction: float) -> tuple[int, dict[str, float]]:
    """Hover the chart at a fraction of its width: (step, {run name: value}) from the tooltip."""
    box = panel.locator("canvas.chart-overlay").bounding_box()
    page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
    tip = panel.locator(".chart-tip")
    tip.wait_for(state="visible")
    step = int(tip.locator(".tip-head").inner_text().split("step")[-1].strip().replace(",", ""))
    values = {}
    for row in tip.locator(".tip-row").all():
        values[row.locator(".tip-label").inner_text()] = float(
            row.locator(".tip-value").inner_text().replace(",", "")
        )
    return step, values


def approx(values: dict[str, float]) -> Any:
    """Tooltips show 6 significant digits."""
    return pytest.approx(values, rel=1e-5)


def has_range(panel: Any) -> bool:
    """Whether the tooltip shows a bucket's min…max (downsampled) rather than one point."""
    return panel.locator(".chart-tip .tip-range:visible").count() > 0


def test_hover_and_zoom_show_the_right_values(
    ui: Any, server: Any, project: str, log_run: Any
) -> None:
    run = log_run(project, [(s, {"loss": loss_a(s)}) for s in range(STEPS)], name="linear")
    page = ui.page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/history" in r.url else None)
    ui.goto(page, f"/r/{run.id}")
    panel = page.locator('.panel[data-key="loss"]')
    expect(panel).to_have_attribute("aria-busy", "false")

    # Hover: the tooltip's value is the value logged at the step it names.
    for fraction in (0.2, 0.5, 0.8):
        step, values = tooltip(page, panel, fraction)
        assert values == approx({"linear": loss_a(step)})
    # 3000 steps over a few hundred pixels: the server sent min/max buckets.
    assert has_range(panel)
    ui.shot(page, "hover")

    # Drag from 40% to 45% of the width: the chart zooms to those steps and refetches them.
    lo_step, _ = tooltip(page, panel, 0.40)
    hi_step, _ = tooltip(page, panel, 0.45)
    box = panel.locator("canvas.chart-overlay").bounding_box()
    y = box["y"] + box["height"] / 2
    before = len(requests)
    page.mouse.move(box["x"] + box["width"] * 0.40, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.43, y, steps=4)
    page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=4)
    page.mouse.up()
    panel.locator(".icon-button", has_text="reset").wait_for(state="visible")
    page.wait_for_function(
        "n => performance.getEntriesByType('resource').filter(e => e.name.includes('min_step')).length >= n",
        arg=1,
    )
    assert any("min_step" in u and "max_step" in u for u in requests[before:])
    page.wait_for_timeout(300)
    step, values = tooltip(page, panel, 0.5)
    assert lo_step - 20 <= step <= hi_step + 20, (lo_step, step, hi_step)
    assert values == approx({"linear": loss_a(step)})
    # Zoomed in to ~150 steps: every point is a logged point, no more buckets.
    assert not has_range(panel)
    ui.shot(page, "zoomed")

    # Double-click resets the zoom: the whole run again.
    page.mouse.dblclick(box["x"] + box["width"] * 0.5, y)
    panel.locator(".icon-button", has_text="reset").wait_for(state="hidden")
    step, values = tooltip(page, panel, 0.9)
    assert step > hi_step + 500 and values == approx({"linear": loss_a(step)})

    # Log scale: the button toggles, values stay the same.
    log_button = panel.locator(".icon-button", has_text="log")
    log_button.click()
    assert log_button.get_attribute("aria-pressed") == "true"
    step, values = tooltip(page, panel, 0.7)
    assert values == approx({"linear": loss_a(step)})
    log_button.click()
    assert log_button.get_attribute("aria-pressed") == "false"

    # x by time: the tooltip names the time since the start and the step, same values.
    page.locator("select[aria-label='X axis']").select_option("relative")
    tip_head = panel.locator(".chart-tip .tip-head")
    box = panel.locator("canvas.chart-overlay").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    expect(tip_head).to_contain_text("s · step")
    step = int(tip_head.inner_text().split("step")[-1].strip().replace(",", ""))
    value = float(panel.locator(".chart-tip .tip-value").first.inner_text().replace(",", ""))
    assert value == pytest.approx(loss_a(step), rel=1e-5)
    page.locator("select[aria-label='X axis']").select_option("step")

    # Smoothing: the tooltip shows the smoothed value beside the raw one.
    page.locator(".smooth input[type=range]").fill("0.9")
    _, values = tooltip(page, panel, 0.7)
    assert panel.locator(".chart-tip .tip-raw:visible").count() == 1
    page.locator(".smooth input[type=range]").fill("0")
    ui.shot(page, "reset")


def test_compare_two_runs(ui: Any, server: Any, project: str, log_run: Any) -> None:
    a = log_run(
        project,
        [(s, {"train/loss": loss_a(s)}) for s in range(200)],
        name="run-a",
        config={"lr": 0.1, "batch": 32},
    )
    b = log_run(
        project,
        [(s, {"train/loss": loss_b(s)}) for s in range(200)],
        name="run-b",
        config={"lr": 0.01, "batch": 32},
    )
    page = ui.page()
    ui.goto(page, f"/p/{server.user}/{project}")
    for run in (a, b):
        page.locator(f'tr[data-run="{run.id}"] input[type=checkbox]').check()
    compare = page.locator("a.button", has_text="Compare 2 runs")
    ui.shot(page, "table-selected")
    compare.click()
    page.wait_for_url("**/compare?runs=*")
    legend = page.locator(".legend")
    legend.locator(".legend-item", has_text="run-a").wait_for()
    assert legend.locator(".legend-item", has_text="run-b").count() == 1

    panel = page.locator('.panel[data-key="train/loss"]')
    expect(panel).to_have_attribute("aria-busy", "false")
    # Every run's value at the hovered step, each matching what that run logged there.
    for fraction in (0.3, 0.75):
        step, values = tooltip(page, panel, fraction)
        assert values == approx({"run-a": loss_a(step), "run-b": loss_b(step)})
    ui.shot(page, "compare-hover")

    # Config side by side: the differing key is shown, the equal one hidden by default.
    page.locator(".tabs a", has_text="Config & summary").click()
    table = page.locator("table.compare").first
    table.locator("tr", has_text="lr").wait_for()
    assert table.locator("tr", has_text="batch").count() == 0
    assert table.locator("tr", has_text="lr").locator("td").all_inner_texts() == ["0.1", "0.01"]
    ui.shot(page, "compare-config")


def crosshairs(page: Any) -> dict[str, float | None]:
    """Every chart's crosshair x (``data-crosshair``), by key; None where it shows none."""
    found: dict[str, Any] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.panel')].map(p => {
            const c = p.querySelector('.chart');
            return [p.dataset.key, c && c.dataset.crosshair !== undefined ? c.dataset.crosshair : null];
        }))"""
    )
    return {k: (float(v) if v is not None else None) for k, v in found.items()}


def test_crosshair_is_shared_by_every_chart(
    ui: Any, server: Any, project: str, log_run: Any
) -> None:
    rows = []
    for s in range(300):
        values = {"train/loss": 1000.0 / (s + 1), "train/acc": s / 300, "lr": 0.1 - s * 1e-4}
        if s % 25 == 0:
            values["val/acc"] = s / 250
        rows.append((s, values))
    run = log_run(project, rows, name="shared")
    page = ui.page()
    ui.goto(page, f"/r/{run.id}")
    for key in ("train/loss", "train/acc", "val/acc", "lr"):
        expect(page.locator(f'.panel[data-key="{key}"]')).to_have_attribute("aria-busy", "false")
    # Keys without a prefix sit under "Other", after the named groups.
    groups = page.locator(".group:not([hidden]) .group-name").all_inner_texts()
    assert groups[:3] == ["train", "val", "Other"], groups

    loss = page.locator('.panel[data-key="train/loss"]')
    for fraction in (0.37, 0.81, 0.999):
        step, values = tooltip(page, loss, fraction)
        assert values == approx({"shared": 1000.0 / (step + 1)})
        # Every chart draws its crosshair at the step the tooltip names: the hovered one
        # on the point, the others at that same step (val/acc too, between its points,
        # unless the step is past its last point, 275, where its axis ends).
        expected = {k: float(step) for k in ("train/loss", "train/acc", "lr")}
        expected["val/acc"] = float(step) if step <= 275 else None
        page.wait_for_function(
            """e => [...document.querySelectorAll('.panel')].every(p => {
                const c = p.querySelector('.chart');
                const want = e[p.dataset.key];
                return want === null ? c.dataset.crosshair === undefined : c.dataset.crosshair === String(want);
            })""",
            arg=expected,
        )
        assert crosshairs(page) == expected

    # Hovering the sparse chart snaps to its logged points (every 25 steps), and the dense
    # charts follow to that step.
    val = page.locator('.panel[data-key="val/acc"]')
    step, values = tooltip(page, val, 0.43)
    assert step % 25 == 0 and values == approx({"shared": step / 250})
    page.wait_for_function(
        "s => [...document.querySelectorAll('.panel .chart')].every(c => c.dataset.crosshair === String(s))",
        arg=step,
    )
    ui.shot(page, "shared-crosshair")

    # Leaving the chart clears every crosshair.
    page.mouse.move(5, 5)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.panel .chart')].every(c => c.dataset.crosshair === undefined)"
    )


def test_keys_without_a_prefix_need_no_heading(
    ui: Any, server: Any, project: str, log_run: Any
) -> None:
    run = log_run(project, [(s, {"loss": 1.0 / (s + 1), "acc": s / 10}) for s in range(10)])
    page = ui.page()
    ui.goto(page, f"/r/{run.id}")
    expect(page.locator('.panel[data-key="loss"]')).to_have_attribute("aria-busy", "false")
    # One group only: its charts, without a heading that would read like the Charts tab.
    assert page.locator(".group-head:visible").count() == 0
    assert page.locator('.group-name:text-is("Charts")').count() == 0
    assert page.locator(".panel:visible").count() == 2
