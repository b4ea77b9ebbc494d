"""``import gradexp`` and ``init()``, each in fresh interpreters.

- import: ``python -X importtime -c "import gradexp"``, the cumulative time of the
  ``gradexp`` entry. Baseline, same run: ``import logging`` measured the same way (what
  the most minimal logger would import).
- init(): the wall time of the first ``gradexp.init()`` in a fresh process (after
  ``import gradexp``), offline and online to a local ``gradexp server``. Baseline, same
  process: creating a directory and writing a small JSON file (the least any run-creating
  init must do).

Targets: import <= 50 ms; init() offline and online <= 30 ms.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import running_server

REPEAT = int(os.environ.get("BENCH_IMPORT_REPEAT", "7"))
# Measure imports as users get them: from cached bytecode. (Some environments set
# PYTHONDONTWRITEBYTECODE, which makes every import compile its source again.) The cache
# goes to a temporary folder, never into the checkout; one unmeasured run fills it.
_PYCACHE = tempfile.mkdtemp(prefix="bench-pycache-")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = _PYCACHE

INIT_SCRIPT = """
import json, os, sys, time, tempfile
t = time.perf_counter()
d = tempfile.mkdtemp()
os.makedirs(os.path.join(d, "a", "b"))
with open(os.path.join(d, "a", "b", "run.json"), "w") as f:
    json.dump({"id": "x", "config": {"lr": 0.1}}, f)
base = time.perf_counter() - t
import gradexp
t = time.perf_counter()
run = gradexp.init(project="bench", config={"lr": 0.1})
took = time.perf_counter() - t
print(f"{took} {base}")
gradexp.finish()
"""


def importtime(module: str) -> float:
    """Cumulative import time of ``module`` in ms, from ``-X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    )
    pattern = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|\s" + re.escape(module) + r"$")
    for line in proc.stderr.splitlines():
        match = pattern.search(line)
        if match:
            return int(match.group(1)) / 1000.0
    raise RuntimeError(f"no importtime line for {module}")


def init_times(env: dict[str, str]) -> tuple[float, float]:
    """Median (init ms, baseline ms) over REPEAT fresh processes."""
    inits, bases = [], []
    for _ in range(REPEAT):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [sys.executable, "-c", INIT_SCRIPT],
                capture_output=True,
                text=True,
                env={
                    **ENV,
                    **env,
                    "GRADEXP_DIR": tmp,
                    "GRADEXP_CONFIG_DIR": tmp,
                    "GRADEXP_QUIET": "1",
                },
                check=True,
            )
        took, base = map(float, proc.stdout.split())
        inits.append(took * 1000)
        bases.append(base * 1000)
    return statistics.median(inits), statistics.median(bases)


def main() -> int:
    warm = "import gradexp, logging; gradexp.init; import gradexp.stream.runstream, gradexp.transport.uploader"
    subprocess.run([sys.executable, "-c", warm], env=ENV, check=True)  # fill the bytecode cache
    gx = statistics.median(importtime("gradexp") for _ in range(REPEAT))
    base = statistics.median(importtime("logging") for _ in range(REPEAT))
    print(f"fresh interpreters, medians of {REPEAT}")
    print(f"{'':40}{'ms':>10}{'baseline ms':>14}{'ratio':>8}   target")
    print(
        f"{'import gradexp (vs import logging)':40}{gx:10.1f}{base:14.1f}{gx / base:8.1f}   <= 50 ms"
    )
    off, off_base = init_times({"GRADEXP_MODE": "offline"})
    print(
        f"{'init() offline (vs mkdir + json)':40}{off:10.1f}{off_base:14.2f}{off / off_base:8.1f}   <= 30 ms"
    )
    try:
        server = running_server()
        url, key, *_ = server.__enter__()
    except Exception as exc:  # e.g. no server extra installed here
        print(f"init() online: skipped ({type(exc).__name__}: {str(exc).strip()[:80]})")
        return 0
    try:
        on, on_base = init_times({"GRADEXP_BASE_URL": url, "GRADEXP_API_KEY": key})
    finally:
        server.__exit__(None, None, None)
    print(
        f"{'init() online, local server':40}{on:10.1f}{on_base:14.2f}{on / on_base:8.1f}   <= 30 ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
