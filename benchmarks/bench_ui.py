"""Web UI speed, measured in Debian chromium against a real local ``gradexp server``.

Four figures, each beside a baseline measured in the same run (and the issue's target):

1. **First chart drawn** after navigating to a run page with 50 scalar keys of 100k steps
   each (``performance.mark("gradexp:first-chart")``, ms since navigation start) with a
   cold browser cache and again on a second visit (modules cached), and the time until
   every chart on the first screen is drawn. Baseline: the same page for a run with 50
   keys of 100 steps. Target: first chart <= 1000 ms.
2. **log() to drawn**: a training loop logs a step every 50 ms with default settings, an
   open run page draws the points; for steps picked at random moments, from their
   ``log()`` call to the chart's ``gradexp:drawn`` event. The open page makes the run
   *watched*: the server says so in its ingest replies and the SDK then sends every
   0.1 s instead of its default interval. Baseline: from the same ``log()`` to the row
   being readable from the API (polled every 10 ms). Target: <= 300 ms.
   ``BENCH_UI_ONLY=latency`` measures this figure alone (no bulk ingest).
3. **Hover and zoom** on the compare view of 20 runs (3 keys x 10k steps each), while the
   mouse sweeps across a chart, drags a zoom and double-clicks back: the charts' own work in
   the longest frame (every requestAnimationFrame callback timed; the charts draw only
   there), the longest "long animation frame" (the browser's LoAF entries, >= 50 ms from a
   frame's first task to its paint, waiting included) and the longest rAF gap. Baseline:
   the same with 1 run. Target: no frame > 50 ms.
4. **The runs table** of a project with 1,200 runs: its first page (50 runs) drawn after
   navigation, and the next page drawn after the click. Baseline: a project of 20 runs.
   And the API's first page ordered by a summary value (``order=-summary:val/acc``, a JSON
   extraction per run), beside the same page ordered by start time (an indexed column).

The data is ingested through the HTTP API (the protocol's records, gzip'ed), which is
faster than the SDK for 5M values and reaches the same tables. The browser authenticates
with the API key (``Authorization`` header) so no sign-in page is involved.
"""

from __future__ import annotations

import gzip
import math
import os
import random
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _server import get_ms, running_server

from tests._browser import CHROMIUM, CHROMIUM_ARGS

KEYS = 50
LONG = 100_000
SHORT = 100
BATCH = 5_000
PAGE_LOADS = 5
LATENCY_SAMPLES = 8
COMPARE_RUNS = 20
COMPARE_STEPS = 10_000


def request(url: str, key: str, method: str, path: str, body: bytes, gz: bool = False) -> Any:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if gz:
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body, compresslevel=1)
    req = urllib.request.Request(url + path, data=body, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=300) as resp:
        return orjson.loads(resp.read())


def ingest(url: str, key: str, run_id: str, project: str, steps: int, keys: list[str]) -> None:
    """A finished run with ``keys`` logged at every step, through the ingest API."""
    request(
        url,
        key,
        "PUT",
        f"/api/v1/runs/{run_id}",
        orjson.dumps(
            {"project": project, "name": run_id, "attempt": "bench", "config": {"lr": 1e-3}}
        ),
    )
    rng = random.Random(run_id)
    phase = rng.random() * 6
    t0 = time.time() - steps * 0.01
    seq = 0
    for start in range(0, steps, BATCH):
        records = []
        for step in range(start, min(steps, start + BATCH)):
            seq += 1
            base = 2.0 * (1 + step) ** -0.3
            values = {
                k: base * (1 + 0.1 * i) + 0.05 * ((step * 7919 + i * 104729) % 997) / 997
                for i, k in enumerate(keys)
            }
            values[keys[0]] += 0.2 * math.sin(step / 500 + phase)
            records.append(
                {
                    "seq": seq,
                    "type": "history",
                    "step": step,
                    "time": t0 + step * 0.01,
                    "values": values,
                }
            )
        doc = {"first_seq": records[0]["seq"], "last_seq": seq, "records": records}
        request(url, key, "POST", f"/api/v1/runs/{run_id}/records", orjson.dumps(doc), gz=True)
    seq += 1
    finish = {"seq": seq, "type": "finish", "exit_code": 0, "time": time.time()}
    request(
        url,
        key,
        "POST",
        f"/api/v1/runs/{run_id}/records",
        orjson.dumps({"first_seq": seq, "last_seq": seq, "records": [finish]}),
        gz=True,
    )


def key_names() -> list[str]:
    groups = ["train", "val", "optim", "system", "grad_norm"]
    return [f"{groups[i % len(groups)]}/metric_{i:02d}" for i in range(KEYS)]


def launch(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


FIRST_SCREEN_JS = """() => {
    const vis = [...document.querySelectorAll('.panel')].filter(p => {
        const r = p.getBoundingClientRect(); return r.top < innerHeight && r.bottom > 0 && !p.hidden;
    });
    return vis.length > 0 && vis.every(p => p.getAttribute('aria-busy') === 'false');
}"""


def _measure(page: Any, url: str) -> tuple[float, float]:
    page.goto(url)
    page.wait_for_function(
        "() => performance.getEntriesByName('gradexp:first-chart').length > 0", timeout=60_000
    )
    first = page.evaluate("performance.getEntriesByName('gradexp:first-chart')[0].startTime")
    page.wait_for_function(FIRST_SCREEN_JS, timeout=60_000)  # every first-screen chart drawn
    return float(first), float(page.evaluate("performance.now()"))


def page_load(browser: Any, url: str, key: str, path: str) -> tuple[float, float, float]:
    """(first chart, all first-screen charts) in ms since navigation with a fresh browser
    cache, and the first chart again on a second visit (modules cached, as for a user
    coming back)."""
    ctx = browser.new_context(
        viewport={"width": 1400, "height": 900},
        extra_http_headers={"Authorization": f"Bearer {key}"},
    )
    page = ctx.new_page()
    first, all_visible = _measure(page, url + path)
    page.goto("about:blank")
    warm, _ = _measure(page, url + path)
    ctx.close()
    return first, all_visible, warm


def bench_page_load(
    browser: Any, url: str, key: str, long_id: str, short_id: str
) -> dict[str, Any]:
    page_load(browser, url, key, f"/r/{short_id}")  # warm the server (imports, caches)
    long_runs = [page_load(browser, url, key, f"/r/{long_id}") for _ in range(PAGE_LOADS)]
    short_runs = [page_load(browser, url, key, f"/r/{short_id}") for _ in range(PAGE_LOADS)]
    return {
        "first": statistics.median(x[0] for x in long_runs),
        "all": statistics.median(x[1] for x in long_runs),
        "warm": statistics.median(x[2] for x in long_runs),
        "first_base": statistics.median(x[0] for x in short_runs),
        "all_base": statistics.median(x[1] for x in short_runs),
        "warm_base": statistics.median(x[2] for x in short_runs),
    }


def bench_latency(browser: Any, url: str, key: str) -> dict[str, Any]:
    """log() -> drawn on an open page, and log() -> readable from the API."""
    import gradexp

    run = gradexp.init(
        project="bench-ui-live",
        name="live",
        base_url=url,
        api_key=key,
        dir=os.environ.get("TMPDIR", "/tmp"),
        settings={"quiet": True},
    )
    gradexp.log({"live/value": 0.0}, step=0)
    run.flush()
    ctx = browser.new_context(
        viewport={"width": 1400, "height": 900},
        extra_http_headers={"Authorization": f"Bearer {key}"},
    )
    page = ctx.new_page()
    page.goto(f"{url}/r/{run.id}")
    page.wait_for_function(
        "() => performance.getEntriesByName('gradexp:first-chart').length > 0", timeout=60_000
    )
    page.evaluate(
        """() => {
            window.__drawn = [];
            document.addEventListener('gradexp:drawn', e => window.__drawn.push([e.detail.lastStep, performance.timeOrigin + performance.now()]));
        }"""
    )
    ui_lat: list[float] = []
    api_lat: list[float] = []
    api_seen: dict[int, float] = {}
    logged: dict[int, float] = {}  # step -> when log() was called
    latest = [0]  # the step logged last
    stop = threading.Event()

    def train() -> None:
        # A training loop: one step every 50 ms, whatever the page does.
        step = 1
        while not stop.is_set():
            logged[step] = time.time()
            gradexp.log({"live/value": float(step % 17)}, step=step)
            latest[0] = step
            step += 1
            time.sleep(0.05)

    def poll_api(step: int) -> None:
        while not stop.is_set():
            req = urllib.request.Request(
                f"{url}/api/v1/runs/{run.id}/history/rows?min_step={step}&max_step={step}",
                headers={"Authorization": f"Bearer {key}"},
            )
            with urllib.request.urlopen(req) as resp:
                if orjson.loads(resp.read())["rows"]:
                    api_seen[step] = time.time()
                    return
            time.sleep(0.01)

    trainer = threading.Thread(target=train, daemon=True)
    trainer.start()
    time.sleep(3)  # the first batches' replies tell the SDK that the run is watched
    for _ in range(LATENCY_SAMPLES):
        time.sleep(random.uniform(0.3, 1.2))
        i = latest[0]  # the step logged last, at a random moment of the batch cycle
        poller = threading.Thread(target=poll_api, args=(i,))
        poller.start()
        page.wait_for_function("i => window.__drawn.some(d => d[0] >= i)", arg=i, timeout=30_000)
        drawn_at = page.evaluate(f"window.__drawn.find(d => d[0] >= {i})[1]") / 1000.0
        poller.join(30)
        ui_lat.append(drawn_at - logged[i])
        api_lat.append(api_seen.get(i, float("nan")) - logged[i])
    stop.set()
    trainer.join()
    gradexp.finish()
    ctx.close()
    return {
        "ui": statistics.median(ui_lat),
        "ui_max": max(ui_lat),
        "api": statistics.median(api_lat),
    }


# Injected before the page's scripts (CDP, so the page's CSP does not apply): time every
# requestAnimationFrame callback. The charts draw only in rAF callbacks, so this is the
# charts' own work per frame, apart from the browser's rendering and from waiting.
RAF_TIMER_JS = """
window.__rafWork = [];
const raf = window.requestAnimationFrame.bind(window);
window.requestAnimationFrame = (cb) => raf((t) => {
    const start = performance.now();
    try { cb(t); } finally { if (window.__measuring) window.__rafWork.push(performance.now() - start); }
});
"""

FRAMES_JS = """() => {
    window.__measuring = true;
    window.__frames = [];
    window.__loaf = [];
    let last = performance.now();
    const loop = (t) => { window.__frames.push(t - last); last = t; if (window.__sweeping) requestAnimationFrame(loop); };
    window.__sweeping = true;
    requestAnimationFrame(loop);
    new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.__loaf.push(e.duration);
    }).observe({ type: "long-animation-frame" });
}"""


def interaction(
    browser: Any, url: str, key: str, run_ids: list[str]
) -> tuple[float, float, int, float, float]:
    """While hovering across a chart, drag-zooming and resetting: (the charts' longest
    work in one frame, ms; the longest long animation frame, ms, 0 if none; how many long
    animation frames; the longest requestAnimationFrame gap, ms; the 95th percentile of the
    charts' work over the frames where they drew).

    A long animation frame (the browser's LoAF entry) is a frame that took 50 ms or more
    from its first task to its paint; on a loaded machine that includes waiting. The rAF
    gap also counts time the browser waited for input from the test driver."""
    ctx = browser.new_context(
        viewport={"width": 1400, "height": 900},
        extra_http_headers={"Authorization": f"Bearer {key}"},
    )
    page = ctx.new_page()
    page.add_init_script(RAF_TIMER_JS)
    page.goto(f"{url}/compare?runs={','.join(run_ids)}")
    panel = page.locator(".panel").first
    page.locator('.panel[aria-busy="false"]').first.wait_for(timeout=60_000)
    page.wait_for_timeout(500)
    box = panel.locator("canvas.chart-overlay").bounding_box()
    y = box["y"] + box["height"] / 2
    page.evaluate(FRAMES_JS)
    for sweep in range(3):
        for k in range(60):
            f = (k / 59) if sweep % 2 == 0 else 1 - k / 59
            page.mouse.move(box["x"] + box["width"] * (0.05 + 0.9 * f), y)
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    for k in range(20):
        page.mouse.move(box["x"] + box["width"] * (0.3 + 0.3 * k / 19), y)
    page.mouse.up()
    page.wait_for_timeout(400)  # the zoom's refetch and redraw
    for k in range(30):
        page.mouse.move(box["x"] + box["width"] * (0.1 + 0.8 * k / 29), y)
    page.mouse.dblclick(box["x"] + box["width"] * 0.5, y)
    page.wait_for_timeout(300)
    page.evaluate("window.__sweeping = false")
    frames = page.evaluate("window.__frames")
    loaf = page.evaluate("window.__loaf")
    work = page.evaluate("window.__rafWork")
    ctx.close()
    gap = max(frames[1:]) if len(frames) > 1 else 0.0
    drawn = sorted(w for w in work if w > 0.05)  # frames where a chart drew something
    p95 = drawn[int(0.95 * (len(drawn) - 1))] if drawn else 0.0
    return max(work, default=0.0), max(loaf, default=0.0), len(loaf), gap, p95


TABLE_RUNS = 1_200


def many_runs(url: str, key: str, project: str, n: int) -> None:
    """``n`` small finished runs (one row each) in a project, for the runs table."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> None:
        rid = f"{project}-{i:05d}"
        body = {"project": project, "name": f"run-{i:05d}", "attempt": "a", "tags": [f"t{i % 7}"]}
        request(url, key, "PUT", f"/api/v1/runs/{rid}", orjson.dumps(body))
        recs = [
            {
                "seq": 1,
                "type": "history",
                "step": 0,
                "time": time.time(),
                "values": {"val/acc": i / n, "loss": 1 - i / n},
            },
            {"seq": 2, "type": "finish", "exit_code": int(i % 9 == 0), "time": time.time()},
        ]
        doc = {"first_seq": 1, "last_seq": 2, "records": recs}
        request(url, key, "POST", f"/api/v1/runs/{rid}/records", orjson.dumps(doc), gz=True)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n)))


def order_latency(url: str, key: str, project: str, order: str, n: int = 21) -> float:
    """Median ms of the runs table's first page (50 runs) in ``order``, from the API."""
    from urllib.parse import quote

    return get_ms(
        url, key, f"/api/v1/projects/bench/{project}/runs?order={quote(order)}&limit=50", n
    )


def table_load(browser: Any, url: str, key: str, project: str, n: int) -> tuple[float, float]:
    """(first page of the runs table drawn, ms since navigation; next page drawn, ms after
    the click, or NaN with one page), 50 runs per page."""
    ctx = browser.new_context(
        viewport={"width": 1400, "height": 900},
        extra_http_headers={"Authorization": f"Bearer {key}"},
    )
    page = ctx.new_page()
    page.goto(f"{url}/p/bench/{project}")
    page.locator("table.runs tbody tr").nth(min(n, 50) - 1).wait_for(timeout=60_000)
    first = page.evaluate("performance.now()")
    if n <= 50:
        ctx.close()
        return float(first), math.nan
    last_name = page.locator("table.runs tbody td.name-col a").first.inner_text()
    start = page.evaluate("performance.now()")
    page.locator("button", has_text="Next ›").click()
    page.wait_for_function(
        "n => document.querySelector('table.runs tbody td.name-col a').textContent !== n",
        arg=last_name,
        timeout=60_000,
    )
    nxt = page.evaluate("performance.now()") - start
    ctx.close()
    return float(first), float(nxt)


def main() -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        print(f"chromium not found at {CHROMIUM}: skipped")
        return
    if os.environ.get("BENCH_UI_ONLY") == "latency":
        with running_server() as (url, key, *_), sync_playwright() as pw:
            browser = launch(pw)
            latency = bench_latency(browser, url, key)
            browser.close()
        print(
            f"log() -> point drawn in the open page: {latency['ui'] * 1000:.0f} ms median "
            f"(max {latency['ui_max'] * 1000:.0f}); baseline, same run: "
            f"{latency['api'] * 1000:.0f} ms to the row readable from the API; target <= 300 ms"
        )
        return
    with running_server() as (url, key, *_):
        keys = key_names()
        t = time.perf_counter()
        ingest(url, key, "uilong", "bench-ui", LONG, keys)
        ingest(url, key, "uishort", "bench-ui", SHORT, keys)
        print(f"ingested {KEYS} keys x {LONG:,} steps in {time.perf_counter() - t:.0f} s")
        compare_ids = [f"cmp{i:02d}" for i in range(COMPARE_RUNS)]
        for rid in compare_ids:
            ingest(
                url,
                key,
                rid,
                "bench-ui-compare",
                COMPARE_STEPS,
                ["train/loss", "train/acc", "val/loss"],
            )
        many_runs(url, key, "bench-ui-table", TABLE_RUNS)
        many_runs(url, key, "bench-ui-table-small", 20)
        by_start = order_latency(url, key, "bench-ui-table", "-started_at")
        by_summary = order_latency(url, key, "bench-ui-table", "-summary:val/acc")
        with sync_playwright() as pw:
            browser = launch(pw)
            table_load(browser, url, key, "bench-ui-table-small", 20)  # warm up
            table_big = [
                table_load(browser, url, key, "bench-ui-table", TABLE_RUNS)
                for _ in range(PAGE_LOADS)
            ]
            table_small = [
                table_load(browser, url, key, "bench-ui-table-small", 20) for _ in range(PAGE_LOADS)
            ]
            loads = bench_page_load(browser, url, key, "uilong", "uishort")
            latency = bench_latency(browser, url, key)
            runs20 = [interaction(browser, url, key, compare_ids) for _ in range(5)]
            runs1 = [interaction(browser, url, key, compare_ids[:1]) for _ in range(5)]
            browser.close()

    big_first = statistics.median(t[0] for t in table_big)
    small_first = statistics.median(t[0] for t in table_small)
    big_next = statistics.median(t[1] for t in table_big)
    rows = [
        (
            f"runs table drawn, {TABLE_RUNS:,} runs",
            f"{big_first:.0f} ms",
            f"{small_first:.0f} ms (20 runs)",
            big_first / small_first,
            "fast with 1,000+",
        ),
        (
            f"next page drawn, {TABLE_RUNS:,} runs",
            f"{big_next:.0f} ms",
            f"{small_first:.0f} ms (first page, 20 runs)",
            big_next / small_first,
            "-",
        ),
        (
            f"runs page by a summary column, {TABLE_RUNS:,} runs",
            f"{by_summary:.1f} ms",
            f"{by_start:.1f} ms (by start time)",
            by_summary / by_start,
            "-",
        ),
        (
            "first chart drawn, 50 keys x 100k steps",
            f"{loads['first']:.0f} ms",
            f"{loads['first_base']:.0f} ms (50 x 100 steps)",
            loads["first"] / loads["first_base"],
            "<= 1000 ms",
        ),
        (
            "first chart, second visit (modules cached)",
            f"{loads['warm']:.0f} ms",
            f"{loads['warm_base']:.0f} ms (50 x 100 steps)",
            loads["warm"] / loads["warm_base"],
            "<= 1000 ms",
        ),
        (
            "first screen of charts drawn, 100k steps",
            f"{loads['all']:.0f} ms",
            f"{loads['all_base']:.0f} ms (50 x 100 steps)",
            loads["all"] / loads["all_base"],
            "-",
        ),
        (
            "log() -> point drawn in the open page",
            f"{latency['ui'] * 1000:.0f} ms (max {latency['ui_max'] * 1000:.0f})",
            f"{latency['api'] * 1000:.0f} ms (row readable from the API)",
            latency["ui"] / latency["api"],
            "<= 300 ms",
        ),
        (
            "charts' work, longest frame, hover+zoom, 20 runs",
            f"{statistics.median(r[0] for r in runs20):.1f} ms",
            f"{statistics.median(r[0] for r in runs1):.1f} ms (1 run)",
            statistics.median(r[0] for r in runs20)
            / max(0.1, statistics.median(r[0] for r in runs1)),
            "no frame > 50 ms",
        ),
        (
            "charts' work, 95th pct frame, 20 runs",
            f"{statistics.median(r[4] for r in runs20):.1f} ms",
            f"{statistics.median(r[4] for r in runs1):.1f} ms (1 run)",
            statistics.median(r[4] for r in runs20)
            / max(0.1, statistics.median(r[4] for r in runs1)),
            "-",
        ),
        (
            "longest frame (LoAF: tasks+paint+waiting)",
            f"{statistics.median(r[1] for r in runs20):.0f} ms ({sum(r[2] for r in runs20)} >= 50)",
            f"{statistics.median(r[1] for r in runs1):.0f} ms ({sum(r[2] for r in runs1)} >= 50, 1 run)",
            statistics.median(r[1] for r in runs20)
            / max(1.0, statistics.median(r[1] for r in runs1)),
            "-",
        ),
        (
            "longest rAF gap (+ test driver, machine load)",
            f"{statistics.median(r[3] for r in runs20):.0f} ms",
            f"{statistics.median(r[3] for r in runs1):.0f} ms (1 run)",
            statistics.median(r[3] for r in runs20)
            / max(1.0, statistics.median(r[3] for r in runs1)),
            "-",
        ),
    ]
    print()
    print(f"machine load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    print(
        f"{'figure (medians)':48} {'measured':>26} {'baseline, same run':>40} {'ratio':>6}  target"
    )
    for name, value, base, ratio, target in rows:
        print(f"{name:48} {value:>26} {base:>40} {ratio:>6.2f}  {target}")


if __name__ == "__main__":
    main()
