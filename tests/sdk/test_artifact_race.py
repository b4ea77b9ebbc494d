"""Two processes logging versions of the same artifact at the same moment, on every
database: each version gets its own number, nothing is refused, nothing retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import gradexp

ROUNDS = 12

# Each writer waits for the other at a barrier (a file), then logs ROUNDS versions of
# "shared", each with its own content, flushing after each so that every version is its
# own batch: the two processes' batches reach the server interleaved.
WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    import gradexp
    who, barrier, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    run = gradexp.init(project="race", name=who, settings={"system_metrics_interval": 0})
    open(os.path.join(barrier, who), "w").close()
    while len(os.listdir(barrier)) < 2:
        time.sleep(0.005)
    logged = []
    for i in range(rounds):
        art = gradexp.Artifact("shared", type="model")
        with art.new_file("weights.txt") as f:
            f.write(f"{who} {i}")
        run.log_artifact(art)
        if not run.flush(timeout=120):
            sys.exit("flush timed out")
        logged.append(art.digest)
    gradexp.finish()
    print(json.dumps(logged))
    """
)


def test_two_runs_logging_one_name_at_once_get_distinct_versions(
    db_server: Any, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = []
    for who in ("a", "b"):
        env = {
            **os.environ,
            **db_server.client_env,
            "GRADEXP_DIR": str(tmp_path / who),
            "GRADEXP_MODE": "online",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, who, str(barrier), str(ROUNDS)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        # The server never failed a batch: the SDK never had to say it was retrying.
        assert "retrying" not in err, err
    digests = [d for out, _ in outs for d in json.loads(out.strip().splitlines()[-1])]
    assert len(set(digests)) == 2 * ROUNDS

    api = gradexp.Api(base_url=db_server.url, api_key=db_server.api_key)
    deadline = time.monotonic() + 30
    while True:
        versions = api._get(f"/projects/{db_server.user}/race/artifacts/shared")["versions"]
        if len(versions) >= 2 * ROUNDS or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    numbers = sorted(int(v["version"]) for v in versions)
    assert numbers == list(range(2 * ROUNDS))  # every version its own number, none lost
    assert {v["digest"] for v in versions} == set(digests)
    assert api.artifact("race/shared:latest").version == f"v{2 * ROUNDS - 1}"
    assert "Traceback" not in db_server.log_path.read_text(errors="replace")
