"""The System, Logs and environment views, driven in chromium against runs of the real SDK
(the program runs in its own process: console capture works on its file descriptors)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, sys, time
import gradexp

project, name, go, stop = sys.argv[1:5]
run = gradexp.init(project=project, name=name, settings={"system_metrics_interval": 0.3})
print(run.id, flush=True)
print("epoch 1: loading data")
sys.stderr.write("Warning: the learning rate is high\\n")
for i in range(101):
    print(f"\\rtraining {i:3d}%", end="", flush=True)
print()
block = bytearray(50 * 1024 * 1024)
for step in range(20):
    gradexp.log({"loss": 1 / (step + 1)})
    time.sleep(0.1)
while not os.path.exists(go):
    time.sleep(0.05)
print("a line printed while the page watches", flush=True)
while not os.path.exists(stop):
    time.sleep(0.05)
gradexp.finish()
"""


def start(
    tmp_path: Path, server: Any, project: str, name: str
) -> tuple[subprocess.Popen[str], str]:
    repo = tmp_path / name
    repo.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["remote", "add", "origin", "https://u:tok@git.example.com/lab/x.git"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    (repo / "train.py").write_text(SCRIPT)
    env = {**os.environ, **server.client_env, "GRADEXP_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "train.py", project, name, str(repo / "go"), str(repo / "stop")],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    deadline = time.monotonic() + 60  # the stream thread creates the run in the background
    while server.request("GET", f"/api/v1/runs/{run_id}/logs")[0] != 200:
        assert time.monotonic() < deadline, "the run never reached the server"
        time.sleep(0.1)
    return proc, run_id


def test_system_logs_and_environment_views(
    ui: Any, server: Any, project: str, tmp_path: Path
) -> None:
    proc, run_id = start(tmp_path, server, project, "machine-a")
    other, other_id = start(tmp_path, server, project, "machine-b")
    try:
        page = ui.page()
        ui.goto(page, f"/r/{run_id}#logs")
        log = page.locator(".log")
        expect(log.locator(".log-line", has_text="epoch 1: loading data")).to_be_visible(
            timeout=30_000
        )
        warning = log.locator(".log-line.stderr", has_text="Warning: the learning rate is high")
        expect(warning).to_be_visible()
        expect(log.locator(".log-line", has_text="training 100%")).to_have_count(1)
        assert log.locator(".log-line", has_text="training  50%").count() == 0  # final state only
        # Live: a line printed now appears without a reload.
        (tmp_path / "machine-a" / "go").touch()
        expect(
            log.locator(".log-line", has_text="a line printed while the page watches")
        ).to_be_visible(timeout=30_000)
        # The count beside the search box counts the live lines too.
        shown = log.locator(".log-line").count()
        expect(page.locator(".log-info")).to_have_text(f"{shown} lines")
        ui.shot(page, "logs-live")
        page.get_by_placeholder("Search the log").fill("learning rate")
        expect(log.locator(".log-line")).to_have_count(1)
        expect(log.locator(".log-line.stderr")).to_have_count(1)
        ui.shot(page, "logs-search")
        assert (
            page.locator("a", has_text="Download").get_attribute("href")
            == f"/api/v1/runs/{run_id}/logs.txt"
        )

        page.locator(".tab", has_text="System").click()
        panel = page.locator('.panel[data-key="cpu.percent"]')
        expect(panel).to_be_visible()
        expect(page.locator('.panel[data-key="memory.rss_mb"]')).to_be_visible()
        expect(page.locator(".system-groups .group-title", has_text="Memory")).to_be_visible()
        page.wait_for_timeout(500)
        ui.shot(page, "system")

        page.locator(".tab", has_text="Overview").click()
        env_card = page.locator("section.card", has_text="Environment")
        expect(env_card.locator("th", has_text="git.remote")).to_be_visible()
        expect(env_card.locator("td", has_text="https://git.example.com/lab/x.git")).to_be_visible()
        assert "tok@" not in env_card.inner_text()
        expect(env_card.locator("a", has_text="requirements.txt")).to_be_visible()
        ui.shot(page, "overview-environment", full_page=True)

        for p in (proc, other):
            name = "machine-a" if p is proc else "machine-b"
            (tmp_path / name / "go").touch()
            (tmp_path / name / "stop").touch()
        assert proc.wait(timeout=60) == 0 and other.wait(timeout=60) == 0

        compare = ui.page()
        ui.goto(compare, f"/compare?runs={run_id},{other_id}#system")
        cpu = compare.locator('.panel[data-key="cpu.percent"]')
        expect(cpu).to_be_visible()
        compare.wait_for_timeout(500)
        ui.shot(compare, "compare-system")
        # Both runs are drawn: the chart's tooltip lists two series.
        box = cpu.locator("canvas.chart-overlay").bounding_box()
        deadline = time.monotonic() + 20
        while True:
            compare.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
            rows = cpu.locator(".tip-row:visible")
            if rows.count() >= 2 or time.monotonic() > deadline:
                break
            compare.wait_for_timeout(200)
        assert rows.count() >= 2
    finally:
        for p in (proc, other):
            if p.poll() is None:
                p.kill()
