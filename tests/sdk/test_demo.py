"""``gradexp demo``: a real server, a sample run in it, a URL, and a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port


def _get(url: str, key: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_demo_serves_a_sample_run_until_interrupted(gx_env: Path) -> None:
    data = gx_env / "demo-data"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gradexp.cli",
            "demo",
            "--data",
            str(data),
            "--port",
            str(port),
            "--steps",
            "40",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        output = "".join(lines)
        url_line = next(line for line in lines if line.startswith("Open the run:"))
        run_url = url_line.split()[-1]
        assert run_url.startswith(f"http://127.0.0.1:{port}/r/")
        run_id = run_url.rsplit("/", 1)[1]
        key = json.loads((data / "demo-key.json").read_text())["api_key"]
        assert (data / "demo-key.json").stat().st_mode & 0o077 == 0
        assert key[:7] in output and key not in output  # shown masked only
        api = f"http://127.0.0.1:{port}/api/v1"
        base = f"{api}/runs/{run_id}"
        run = _get(base, key)
        assert run["state"] == "finished" and run["project"] == "demo"
        # Nested config, with a learning rate the gradient explorer finds.
        assert run["config"]["model"]["width"] == 512 and run["config"]["optimizer"]["lr"] > 0
        rows = _get(f"{base}/history/rows?limit=1000", key)["rows"]
        assert [r["_step"] for r in rows] == list(range(40))
        assert all(0 < r["train/loss"] < 3 for r in rows)
        # A learning-rate schedule: warmup to the peak, then decay.
        lrs = [r["lr"] for r in rows]
        peak = lrs.index(max(lrs))
        assert 0 < peak < 39 and lrs[0] < lrs[peak] and lrs[-1] < lrs[peak]
        # Validation every few steps, not every step.
        val_steps = [r["_step"] for r in rows if "val/loss" in r]
        assert 2 <= len(val_steps) <= 10 and val_steps[-1] == 39
        # Gradient AND weight histograms (the explorer's weight norm and update / weight),
        # an image and a tensor.
        keys = {k["key"]: k["kind"] for k in _get(f"{base}/keys", key)["keys"]}
        for layer in ("fc1.weight", "fc2.weight"):
            assert keys.get(f"gradients/{layer}") == "histogram"
            assert keys.get(f"parameters/{layer}") == "histogram"
        assert keys.get("samples") == "image"
        assert keys.get("attention/layer2") == "tensor"
        # Three runs of a sweep, for the compare view and the runs table: one diverged.
        runs = _get(f"{api}/projects/demo/demo/runs", key)["runs"]
        assert len(runs) == 3 and len({r["config"]["optimizer"]["lr"] for r in runs}) == 3
        failed = [r for r in runs if r["state"] == "failed"]
        assert len(failed) == 1 and failed[0]["exit_code"] == 1
        assert failed[0]["summary"]["train/loss"] == {"_type": "float", "value": "NaN"}
        compare_line = next(line for line in lines if line.startswith("Compare all:"))
        assert all(r["id"] in compare_line for r in runs)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "server stopped" in rest
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
