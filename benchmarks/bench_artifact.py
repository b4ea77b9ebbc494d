"""log_artifact of a large file: the client's memory and time, and a re-log of it unchanged.

Each measurement runs in a fresh interpreter against a real ``gradexp server`` on loopback
(SQLite and a local folder). Memory is the client process's peak RSS during the step minus
its RSS just before it (Linux: ``/proc/self/clear_refs`` resets the peak, ``VmHWM`` reads
it), so the interpreter, numpy and the SDK's own imports do not count.

- baseline: a copy of the file elsewhere and its sha256 (``hash_file(copy_to=...)``: what
  ``add_file`` with its default copy does, with nothing sent; since the copy is made by
  the kernel and then hashed, ``core/copies.py``, this baseline is faster than before);
- log_artifact: ``Artifact.add_file`` + ``run.log_artifact`` + ``wait()`` (hash and copy,
  then every byte uploaded in chunks and stored by the server);
- re-log: the same content again: the same version, nothing uploaded.

Targets: the client's peak RSS delta stays under 100 MB; a re-log uploads 0 bytes.
``BENCH_ARTIFACT_MB`` sets the file size (default 1024).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import running_server

MB = int(os.environ.get("BENCH_ARTIFACT_MB", "1024"))

CHILD = r"""
import hashlib, json, os, sys, time

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)

mode, path, work = sys.argv[1], sys.argv[2], sys.argv[3]
import gradexp  # imports before the measurement: they are not the artifact's cost
import gradexp.sdk.artifacts
import gradexp.transport.artifacts as ta
sent = []
real = ta._upload_one
async def counting(client, run_id, entry, received, *a):
    sent.append(entry["size"] - received)
    return await real(client, run_id, entry, received, *a)
ta._upload_one = counting
run = None
if mode != "baseline":
    run = gradexp.init(project="bench-artifact", dir=work, settings={"quiet": True})
    run.log({"x": 1}); run.flush()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = rss("VmRSS")
t0 = time.perf_counter()
if mode == "baseline":
    gradexp.sdk.artifacts.hash_file(path, copy_to=os.path.join(work, "copy.bin"))
    version = None
else:
    art = gradexp.Artifact("checkpoint", type="model")
    art.add_file(path)
    run.log_artifact(art)
    art.wait()
    version = art.version
seconds = time.perf_counter() - t0
peak = rss("VmHWM")
if run is not None:
    gradexp.finish()
print(json.dumps({"seconds": seconds, "rss_delta": peak - before, "version": version,
                  "uploaded": sum(sent)}))
"""


def child(mode: str, path: str, work: str, url: str, key: str) -> dict[str, object]:
    env = {**os.environ, "GRADEXP_BASE_URL": url, "GRADEXP_API_KEY": key}
    env.pop("GRADEXP_MODE", None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, path, work],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-artifact-") as tmp:
        path = os.path.join(tmp, "checkpoint.bin")
        block = os.urandom(1024 * 1024)
        with open(path, "wb") as f:
            for i in range(MB):
                f.write(i.to_bytes(8, "little") + block[8:])
        with running_server() as (url, key, _db, _pid):
            rows = []
            for mode in ("baseline", "log_artifact", "re-log"):
                work = os.path.join(tmp, mode)
                os.makedirs(work)
                rows.append((mode, child(mode, path, work, url, key)))
                if mode == "baseline":
                    os.remove(os.path.join(work, "copy.bin"))
        print(f"log_artifact of a {MB} MiB file (client process; server on loopback)")
        print(f"{'':14}{'seconds':>9}{'MiB/s':>9}{'peak RSS delta':>16}{'uploaded':>12}  version")
        for mode, r in rows:
            secs = float(r["seconds"])  # type: ignore[arg-type]
            delta = int(r["rss_delta"]) / 2**20  # type: ignore[call-overload]
            up = int(r["uploaded"]) / 2**20  # type: ignore[call-overload]
            print(
                f"{mode:14}{secs:9.2f}{MB / secs:9.0f}{delta:13.1f} MB{up:9.0f} MB  "
                f"{r['version'] or '-'}"
            )
        ok_mem = all(int(r["rss_delta"]) < 100 * 2**20 for _, r in rows)  # type: ignore[call-overload]
        ok_relog = rows[2][1]["uploaded"] == 0 and rows[2][1]["version"] == rows[1][1]["version"]
        print(
            f"client memory under 100 MB: {'yes' if ok_mem else 'NO'}; "
            f"re-log uploads nothing: {'yes' if ok_relog else 'NO'}"
        )


if __name__ == "__main__":
    time.sleep(0)
    main()
