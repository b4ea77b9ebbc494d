"""Uploading a large file with ``save()``: time and peak client memory.

A child process (so its peak RSS is its own) starts an online run, saves one file of
``BENCH_SAVE_MIB`` MiB (default 512) with ``policy="now"`` and finishes: the file is
copied into the run folder (hashed on the way), then sent in parts to a real server on
loopback (local folder store). Reported: the seconds from save() until finish() returned,
and how much the child's peak RSS grew over what it was before save().

Baseline, same run and same machine: ``shutil.copyfile`` of the same file, then reading it
back and sha256'ing it (the local work that any upload must at least do), in the same
kind of child process, with its time and peak RSS growth.

Target: the peak RSS growth stays under 100 MiB whatever the file's size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import running_server

MIB = int(os.environ.get("BENCH_SAVE_MIB", "512"))

CHILD_SAVE = textwrap.dedent(
    """
    import json, resource, sys, time
    import gradexp
    run = gradexp.init(project="bench-save", settings={"quiet": True, "system_metrics_interval": 0})
    gradexp.log({"x": 1})
    run.flush(timeout=60)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    gradexp.save(sys.argv[1], policy="now")
    gradexp.finish()
    seconds = time.perf_counter() - t0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"seconds": seconds, "grown_mib": grown / 1024}))
    """
)

CHILD_COPY = textwrap.dedent(
    """
    import hashlib, json, resource, shutil, sys, time
    import gradexp  # the same imports as the child above, so the RSS growth compares
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    shutil.copyfile(sys.argv[1], sys.argv[2])
    digest = hashlib.sha256()
    with open(sys.argv[2], "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    seconds = time.perf_counter() - t0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"seconds": seconds, "grown_mib": grown / 1024}))
    """
)


def child(code: str, args: list[str], env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    repo = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as tmp, running_server() as (url, key, _db, _pid):
        big = Path(tmp) / "model.ckpt"
        block = os.urandom(1 << 20)
        with open(big, "wb") as f:
            for i in range(MIB):
                f.write(i.to_bytes(8, "little") + block[8:])
        env = {
            **os.environ,
            "PYTHONPATH": repo,
            "GRADEXP_BASE_URL": url,
            "GRADEXP_API_KEY": key,
            "GRADEXP_DIR": tmp,
        }
        base = child(CHILD_COPY, [str(big), str(Path(tmp) / "copy.bin")], env)
        saved = child(CHILD_SAVE, [str(big)], env)
        print(f"save() of a {MIB} MiB file, uploaded in parts to a local server:")
        print(
            f"  baseline (copy + sha256): {base['seconds']:6.2f} s "
            f"({MIB / base['seconds']:6.0f} MiB/s), peak RSS +{base['grown_mib']:.0f} MiB"
        )
        print(
            f"  gradexp save + finish:    {saved['seconds']:6.2f} s "
            f"({MIB / saved['seconds']:6.0f} MiB/s), peak RSS +{saved['grown_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
