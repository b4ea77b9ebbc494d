"""The gradient explorer of a watched model, and the Media tab's tensors and images."""

from __future__ import annotations

import io
import itertools
import time
import urllib.request
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def canvas_painted(page: Any, selector: str) -> int:
    """How many distinct colours a canvas holds (a drawn heatmap has many; a blank one 1)."""
    return int(
        page.evaluate(
            """sel => {
                const c = document.querySelector(sel);
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                const seen = new Set();
                for (let i = 0; i < d.length; i += 4 * 7) seen.add(d[i] << 16 | d[i + 1] << 8 | d[i + 2]);
                return seen.size;
            }""",
            selector,
        )
    )


@pytest.mark.torch
def test_gradient_explorer_flags_a_nan_gradient(
    ui: Any, server: Any, project: str, log_run: Any
) -> None:
    from tests.services import require_torch

    torch = require_torch()
    import gradexp

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 1),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def train(run: Any) -> None:
        gradexp.watch(model, log="all", log_freq=5)
        try:
            for step in range(60):
                x = torch.randn(32, 8)
                loss = (model(x) - x.sum(dim=1, keepdim=True)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                if step >= 40:  # a bug in the making: one layer's gradient turns NaN
                    model[2].weight.grad[0, 0] = float("nan")
                opt.step()
                with torch.no_grad():
                    model[2].weight.nan_to_num_(0.0)
                gradexp.log({"train/loss": loss.item()})
        finally:
            gradexp.unwatch(model)

    run = log_run(project, train, name="watched", config={"lr": 0.01})
    page = ui.page()
    ui.goto(page, f"/r/{run.id}")
    page.locator(".tabs a", has_text="Gradients").click()
    page.wait_for_url(f"**/r/{run.id}/gradients")
    table = page.locator("table.params")
    table.wait_for()
    rows = table.locator("tbody tr")
    # The NaN layer is flagged, and sorted first.
    first = rows.first
    assert first.locator("td.name-col").inner_text() == "2.weight"
    assert first.locator(".flag-nonfinite").count() == 1
    assert int(first.locator("td").nth(5).inner_text().split()[0]) >= 1
    # Healthy layers carry no non-finite flag.
    assert table.locator("tr", has_text="0.weight").locator(".flag-nonfinite").count() == 0
    # Update-to-weight: gradient and weight norms are both logged (log="all"), and the
    # config's lr makes the ratio lr * |g| / |w|.
    assert table.locator("thead th").nth(4).inner_text().startswith("Update / weight")
    cells = first.locator("td").all_inner_texts()
    norm, wnorm, ratio = float(cells[1]), float(cells[3]), float(cells[4])
    assert ratio == pytest.approx(0.01 * norm / wnorm, rel=2e-3)
    ui.shot(page, "table")

    card = page.locator('.hist-card[data-key="gradients/0.weight"]')
    card.scroll_into_view_if_needed()
    card.locator("canvas.heat").wait_for()
    page.wait_for_timeout(500)
    assert canvas_painted(page, '.hist-card[data-key="gradients/0.weight"] canvas.heat') > 20
    # The step slider moves the histogram shown and its statistics.
    slider = card.locator(".slider input[type=range]")
    slider.fill("0")
    card.locator(".step-label", has_text="step 0").wait_for()
    card.locator(".stat", has_text="count").wait_for()
    ui.shot(page, "heatmap")

    nan_card = page.locator('.hist-card[data-key="gradients/2.weight"]')
    nan_card.scroll_into_view_if_needed()
    nan_card.locator(".stat.bad", has_text="nan").wait_for()
    ui.shot(page, "nan-layer")


def test_tensor_slice_and_image_render(ui: Any, server: Any, project: str, log_run: Any) -> None:
    import gradexp

    arr = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    pixels = np.zeros((16, 24, 3), dtype=np.uint8)
    pixels[:, :, 0] = 220  # red
    pixels2 = pixels.copy()
    pixels2[:, :, 2] = 220  # magenta at the second step
    run = log_run(
        project,
        [
            (0, {"attn": gradexp.Tensor(arr), "samples": gradexp.Image(pixels, caption="first")}),
            (
                1,
                {
                    "attn": gradexp.Tensor(arr * 2),
                    "samples": gradexp.Image(pixels2, caption="second"),
                },
            ),
        ],
        name="media",
    )
    page = ui.page()
    ui.goto(page, f"/r/{run.id}#media")
    tensor = page.locator('.media-card[data-key="attn"]')
    tensor.locator(".tensor-facts", has_text="2×3×4").wait_for()
    assert "float32" in tensor.locator(".tensor-facts").inner_text()
    tensor.locator(".tensor-canvas").wait_for()
    page.wait_for_function(
        "() => document.querySelector('.media-card[data-key=\"attn\"] .tensor-canvas').width > 10"
    )

    def expect_value_at(row: int, col: int, text: str) -> None:
        # Hovering the cell draws its value. The slice is fetched, then drawn (and only then
        # does the canvas answer the pointer): on a busy machine that can come after the
        # first move, so the pointer moves again (a pixel to and fro) until it shows.
        canvas = tensor.locator(".tensor-canvas")
        hover = tensor.locator(".tensor-hover")
        deadline = time.monotonic() + 15
        for attempt in itertools.count():
            box = canvas.bounding_box()
            assert box is not None
            page.mouse.move(
                box["x"] + box["width"] * (col + 0.5) / 4 + attempt % 2,
                box["y"] + box["height"] * (row + 0.5) / 3,
            )
            if hover.inner_text() == text or time.monotonic() > deadline:
                break
            page.wait_for_timeout(100)
        expect(hover).to_have_text(text)

    # The latest step (arr * 2), slice [0, :, :]: cell [1, 2] is 2 * 6.
    expect_value_at(1, 2, "[1, 2] = 12")
    # Slice [1, :, :]: 2 * 18.
    tensor.locator(".slice-index input[type=range]").fill("1")
    tensor.locator(".slice-index output", has_text="[0] = 1").wait_for()
    page.wait_for_timeout(300)
    expect_value_at(1, 2, "[1, 2] = 36")
    # The first step (arr itself) keeps the chosen slice [1, :, :].
    tensor.locator(".slider input[type=range]").fill("0")
    tensor.locator(".step-label", has_text="step 0").wait_for()
    page.wait_for_timeout(300)
    expect_value_at(2, 3, "[2, 3] = 23")
    assert canvas_painted(page, '.media-card[data-key="attn"] .tensor-canvas') > 5
    # The download is the tensor as a plain .npy.
    href = tensor.locator("a", has_text=".npy").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in ui.context.cookies()}
    req = urllib.request.Request(
        server.url + href, headers={"Cookie": f"gradexp_session={cookies['gradexp_session']}"}
    )
    with urllib.request.urlopen(req) as resp:
        np.testing.assert_array_equal(np.load(io.BytesIO(resp.read())), arr)

    image = page.locator('.media-card[data-key="samples"]')
    img = image.locator("img.media-image")
    img.wait_for()
    page.wait_for_function(
        "() => { const i = document.querySelector('.media-card[data-key=\"samples\"] img'); return i && i.complete && i.naturalWidth === 24; }"
    )
    assert "second" in image.locator("figcaption").inner_text()
    first_src = img.get_attribute("src")
    image.locator(".slider input[type=range]").fill("0")
    image.locator("figcaption", has_text="first").wait_for()
    assert img.get_attribute("src") != first_src
    page.wait_for_function(
        "() => { const i = document.querySelector('.media-card[data-key=\"samples\"] img'); return i && i.complete && i.naturalWidth === 24; }"
    )
    ui.shot(page, "media")


def test_gradients_without_weights_say_what_is_missing(
    ui: Any, server: Any, project: str, log_run: Any
) -> None:
    """Missing is not NaN: with gradient histograms only, the weight columns show "—" and
    say what to log; a gradient that really went NaN is flagged, in the table and its tiles."""
    import gradexp

    rng = np.random.default_rng(1)

    def rows(run: Any) -> None:
        for step in range(6):
            broken = rng.normal(0, 0.1, 64)
            if step == 5:
                broken[:] = np.nan  # the whole gradient is NaN at the last step
            run.log(
                {
                    "gradients/good.weight": gradexp.Histogram(rng.normal(0, 0.1, 64)),
                    "gradients/broken.weight": gradexp.Histogram(broken),
                },
                step=step,
            )

    run = log_run(project, rows, name="grads-only", config={"lr": 0.1})
    page = ui.page()
    ui.goto(page, f"/r/{run.id}/gradients")
    table = page.locator("table.params")
    good = table.locator('tr[data-key="gradients/good.weight"]')
    good.wait_for()
    cells = good.locator("td")
    # Weight norm and update / weight were never logged: an em dash, not NaN, with a hint.
    for i in (3, 4):
        assert cells.nth(i).inner_text() == "—"
        assert 'watch(model, log="all")' in (cells.nth(i).get_attribute("title") or "")
    assert "NaN" not in good.inner_text()
    page.locator(".hint", has_text='log="all"').wait_for()
    # The broken gradient: first, flagged, its NaN count in red.
    first = table.locator("tbody tr").first
    assert first.get_attribute("data-key") == "gradients/broken.weight"
    assert first.locator(".flag-nonfinite").count() == 1
    assert first.locator(".flag-vanishing").count() == 0  # no finite values is not "tiny"
    norm_cell = first.locator("td").nth(1)
    assert norm_cell.inner_text() == "NaN" and "bad" in (norm_cell.get_attribute("class") or "")
    assert "bad" in (first.locator("td").nth(5).get_attribute("class") or "")
    card = page.locator('.hist-card[data-key="gradients/broken.weight"]')
    card.scroll_into_view_if_needed()
    mean = card.locator(".stat", has_text="mean")
    mean.wait_for()
    assert mean.locator(".stat-value").inner_text() == "NaN"
    assert "bad" in (mean.get_attribute("class") or "")
    # Tiles never truncate a number: each value fits its tile.
    overflow = page.evaluate(
        """() => [...document.querySelectorAll('.stat-value')]
            .filter(v => v.scrollWidth > v.clientWidth + 1).map(v => v.textContent)"""
    )
    assert overflow == []
    ui.shot(page, "missing-vs-nan")
