"""A disk that refuses writes (full, over quota, a file size limit) never stalls training.

The run file's writes fail, so records wait in memory up to ``memory_limit``; past it,
``log()`` drops new records (counted in the run's telemetry) instead of blocking, keeps
everything it had accepted, and resumes by itself once the disk takes writes again.
The test makes the disk refuse writes with ``RLIMIT_FSIZE`` in a child process (writes
past the limit fail with EFBIG; SIGXFSZ is ignored), then lifts the limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradexp.runfile import RunFile

resource = pytest.importorskip("resource")

BEFORE = 30_000  # records logged while the disk refuses writes
AFTER = 100  # records logged once it takes them again

SCRIPT = f"""
import json, resource, signal, sys, time
import gradexp

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
run = gradexp.init(project="disk", mode="offline", settings={{"memory_limit": 1 << 20}})
gradexp.log({{"first": 1.0}})
assert gradexp.flush(timeout=30)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
size = __import__("os").path.getsize(run.dir + "/run.gxr")
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 64 * 1024, hard))
text = "x" * 1000  # ~1 KB records: the stream's unwritten buffer fills after a few thousand
t0 = time.monotonic()
for i in range({BEFORE}):
    gradexp.log({{"i": i, "text": text}})
logged_in = time.monotonic() - t0
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
written = gradexp.flush(timeout=60)  # what was accepted reaches the file
for i in range({AFTER}):
    gradexp.log({{"after": i}})
gradexp.finish()
print(json.dumps({{"dir": run.dir, "logged_in": logged_in, "written": written}}))
"""


def test_a_disk_that_refuses_writes_drops_new_records_instead_of_stalling(
    gx_env: Path,
) -> None:
    # Without shedding, log() would block for good on the memory bound: the timeout
    # turns that stall into a failure.
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["written"] is True, proc.stderr
    err = proc.stderr

    records = list(RunFile(out["dir"]))
    history = [r.data for r in records if r.type == "history"]
    during = [h for h in history if "i" in h["values"]]
    after = [h for h in history if "after" in h["values"]]
    accepted = len(during)
    dropped = BEFORE - accepted
    # Some records were accepted (kept in memory, written once the disk took them) and
    # some were dropped; every accepted one is in the file, in order, once.
    assert 0 < accepted < BEFORE and dropped > 0
    assert [h["values"]["i"] for h in during] == list(range(accepted))
    assert [h["step"] for h in during] == list(range(1, accepted + 1))
    # After the disk takes writes again, nothing is dropped, and the auto steps keep
    # counting the user's loop: the dropped records' steps are left empty.
    assert [h["values"]["after"] for h in after] == list(range(AFTER))
    assert [h["step"] for h in after] == list(range(BEFORE + 1, BEFORE + 1 + AFTER))
    # The drop is counted in the run (telemetry), and the run finished cleanly.
    counted = sum(r.data.get("dropped_records", 0) for r in records if r.type == "telemetry")
    assert counted == dropped
    assert [r.data["exit_code"] for r in records if r.type == "finish"] == [0]

    # One clear line for each turn: the disk refuses writes, log() starts dropping,
    # the file is written again, logging resumes (with the count).
    assert err.count("cannot write the run file") == 1, err
    assert "File too large" in err
    assert err.count("new log() calls are dropped") == 1, err
    assert err.count("is being written again") == 1, err
    assert err.count(f"{dropped} records logged meanwhile were dropped") == 1, err
    assert "Traceback" not in err
