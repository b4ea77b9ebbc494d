"""End to end against a real ``gradexp server``: streaming, outages, sync, refusals, resume."""

from __future__ import annotations

import hashlib
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import gradexp
from gradexp.errors import GradexpError
from gradexp.protocol.values import decode_value
from gradexp.runfile import RunDir
from tests.helpers import ONLY_LOGGED

from .conftest import file_records, gradexp_cli, server_rows, server_run

FAST_RETRY = {"retry_cap": 0.5, "batch_interval": 0.2}


def _values(row: dict[str, Any]) -> dict[str, Any]:
    return {k: decode_value(v) for k, v in row.items() if not k.startswith("_")}


def test_online_round_trip_with_nonfinite_floats(online: Any) -> None:
    run = gradexp.init(project="sdk-online", config={"lr": 0.01}, tags=["t1"])
    assert run.mode == "online" and run.url == f"{online.url}/r/{run.id}"
    for i in range(500):
        gradexp.log(
            {
                "loss": 1 / (i + 1),
                "odd": math.nan if i % 7 == 0 else (math.inf if i % 11 == 0 else -math.inf),
                "name": f"s{i}",
                "flag": i % 2 == 0,
            }
        )
    run.config["epochs"] = 2
    run.summary["best"] = -math.inf
    assert gradexp.flush(timeout=60) is True
    gradexp.finish()

    rows = server_rows(online, run.id)
    assert [r["_step"] for r in rows] == list(range(500))
    for i, row in enumerate(rows):
        values = _values(row)
        assert values["loss"] == 1 / (i + 1) and values["name"] == f"s{i}"
        assert values["flag"] is (i % 2 == 0)
        odd = values["odd"]
        if i % 7 == 0:
            assert math.isnan(odd)
        else:
            assert odd == (math.inf if i % 11 == 0 else -math.inf)
    # And through the Python read client: NaN and infinities come back as floats.
    api_run = gradexp.Api(base_url=online.url, api_key=online.api_key).run(run.id)
    api_rows = api_run.history()
    assert len(api_rows) == 500
    assert math.isnan(api_rows[0]["odd"]) and api_rows[11]["odd"] == math.inf
    assert api_rows[1]["odd"] == -math.inf and api_rows[3]["loss"] == 0.25
    assert api_run.summary["best"] == -math.inf and api_run.state == "finished"
    info = server_run(online, run.id)
    assert info["state"] == "finished" and info["exit_code"] == 0
    assert info["config"] == {"lr": 0.01, "epochs": 2}
    assert decode_value(info["summary"]["best"]) == -math.inf
    assert info["tags"] == ["t1"] and info["project"] == "sdk-online"
    assert RunDir(run.dir or "").acked_seq == len(file_records(run.dir or ""))


@pytest.mark.slow
def test_server_stopped_mid_run_and_restarted(start_server: Any, monkeypatch: Any) -> None:
    srv = start_server()
    monkeypatch.setenv("GRADEXP_BASE_URL", srv.url)
    monkeypatch.setenv("GRADEXP_API_KEY", srv.api_key)
    run = gradexp.init(project="sdk-outage", settings=FAST_RETRY)
    step = 0

    def log_some(n: int) -> None:
        nonlocal step
        for _ in range(n):
            gradexp.log({"step_value": step, "sq": step * step * 0.5})
            step += 1

    log_some(2000)
    assert gradexp.flush(timeout=60) is True
    srv.stop()
    log_some(3000)  # logged while the server is down: kept in the run file
    assert gradexp.flush(timeout=1) is False  # cannot be acknowledged now
    srv.start()
    log_some(2000)
    assert gradexp.flush(timeout=60) is True
    gradexp.finish()

    rows = server_rows(srv, run.id)
    assert len(rows) == 7000  # nothing lost, nothing duplicated
    assert [r["_step"] for r in rows] == list(range(7000))
    assert [r["_seq"] for r in rows] == sorted({r["_seq"] for r in rows})
    for r in rows:
        assert _values(r) == {"step_value": r["_step"], "sq": r["_step"] ** 2 * 0.5}
    assert server_run(srv, run.id)["state"] == "finished"


def test_offline_run_then_sync_then_sync_again(online: Any, gx_env: Path) -> None:
    run = gradexp.init(project="sdk-sync", mode="offline", config={"a": 1})
    for i in range(3000):
        gradexp.log({"i": i, "half": i / 2, "bad": math.nan if i == 5 else 0.0})
    gradexp.finish()
    status, _ = online.request("GET", f"/api/v1/runs/{run.id}")
    assert status == 404  # offline: nothing reached the server

    first = gradexp_cli("sync")
    assert first.returncode == 0, first.stderr
    assert f"synced {len(file_records(run.dir or ''))} records" in first.stdout
    rows = server_rows(online, run.id)
    assert [r["_step"] for r in rows] == list(range(3000))
    assert math.isnan(_values(rows[5])["bad"])
    assert server_run(online, run.id)["state"] == "finished"

    second = gradexp_cli("sync")
    assert second.returncode == 0
    assert "already synced" in second.stdout and "synced 0" not in second.stdout
    assert len(server_rows(online, run.id)) == 3000
    assert "0 not synced" in gradexp_cli("status").stdout


def test_refused_upload_stops_with_one_clear_message(
    online: Any, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.setenv("GRADEXP_API_KEY", "gx_" + "x" * 40)  # a key the server does not know
    run = gradexp.init(project="sdk-refused", settings=FAST_RETRY)
    for i in range(100):
        gradexp.log({"i": i})
    assert gradexp.flush(timeout=30) is False
    started = time.monotonic()
    gradexp.finish(timeout=30)
    assert time.monotonic() - started < 20  # a refusal is final: finish does not wait it out
    err = capsys.readouterr().err
    refusals = [line for line in err.splitlines() if "upload stopped" in line]
    assert len(refusals) == 1
    assert "401" in refusals[0] and "gradexp sync" in refusals[0]
    assert "gx_xxxx…" in refusals[0] and "x" * 20 not in err  # the key is masked
    assert f"gradexp sync {run.dir}" in err
    # The run file kept everything: with the right key, sync uploads it.
    monkeypatch.setenv("GRADEXP_API_KEY", online.api_key)
    result = gradexp_cli("sync", str(run.dir))
    assert result.returncode == 0, result.stderr
    assert len(server_rows(online, run.id)) == 100


def test_same_id_without_resume_is_refused_and_resume_continues(online: Any, capsys: Any) -> None:
    rid = f"dup{os.getpid()}{int(time.time() * 1000) % 100000}"
    first = gradexp.init(project="sdk-resume", id=rid)
    for i in range(10):
        gradexp.log({"i": i})
    gradexp.finish()

    gradexp.init(project="sdk-resume", id=rid, settings=FAST_RETRY)
    gradexp.log({"i": 99})
    assert gradexp.flush(timeout=30) is False
    gradexp.finish(timeout=5)
    assert "run_exists" in capsys.readouterr().err

    resumed = gradexp.init(project="sdk-resume", id=rid, resume=True)
    assert resumed.step == 10
    for i in range(10, 15):
        gradexp.log({"i": i})
    gradexp.finish()
    rows = server_rows(online, rid)
    assert [(r["_step"], r["i"]) for r in rows] == [(i, i) for i in range(15)]
    assert first.dir != resumed.dir

    with pytest.raises(GradexpError, match="nothing"):
        gradexp.init(project="sdk-resume", id=rid + "x", resume=True)


class _Blob:
    """A rich value that stores a blob through the BlobSink (as Tensor and Image do)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.nbytes = len(data)

    def encode(self, sink: Any) -> Any:
        ref = sink.add_file(self.data, suffix=".bin", content_type="application/octet-stream")
        return {
            "_type": "tensor",
            **ref,
            "shape": [len(self.data)],
            "dtype": "uint8",
            "compressed": False,
        }


class _BlobValue:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def _gradexp_capture(self) -> _Blob:
        return _Blob(self.data)


def test_blobs_are_uploaded_before_the_records_that_reference_them(online: Any) -> None:
    payload = os.urandom(50_000)
    run = gradexp.init(project="sdk-blobs", settings=ONLY_LOGGED)
    gradexp.log({"weights": _BlobValue(payload), "loss": 1.0})
    gradexp.log({"weights": _BlobValue(payload), "loss": 0.5})  # same bytes: one blob
    gradexp.finish()
    sha = hashlib.sha256(payload).hexdigest()
    assert (Path(run.dir or "") / "files" / f"{sha}.bin").read_bytes() == payload
    status, body = online.request("GET", f"/api/v1/runs/{run.id}/files")
    assert status == 200
    assert [f["sha256"] for f in body["files"]] == [sha]
    status, data = online.request("GET", f"/api/v1/runs/{run.id}/blobs/{sha}")
    assert status == 200 and data == payload
    rows = server_rows(online, run.id)
    assert [r["weights"]["sha256"] for r in rows] == [sha, sha]


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, time, gradexp
    gradexp.init(project="sdk-crash", mode="offline")
    i = 0
    while True:
        gradexp.log({"i": i, "t": time.time()})
        if i % 100 == 0:
            print(i, flush=True)
        i += 1
        time.sleep(0.0005)
    """
)


def test_sigkilled_process_is_synced_afterwards(online: Any, gx_env: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= 2000:
            break
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    (run_dir,) = [p for p in (gx_env / "gradexp").iterdir() if p.name.startswith("run-")]
    run_id = RunDir(run_dir).run_id

    result = gradexp_cli("sync")
    assert result.returncode == 0, result.stderr
    rows = server_rows(online, run_id)
    logged = [(r["i"], r["t"]) for r in rows]
    assert [i for i, _ in logged] == list(range(len(logged)))  # a prefix, in order, no holes
    # Every record logged more than 200 ms before the kill arrived is there.
    assert logged[-1][1] >= killed_at - 0.2
    assert len(logged) >= 2000 - 400


def test_ctrl_c_during_the_exit_wait_abandons_the_wait_not_the_file(gx_env: Path) -> None:
    script = textwrap.dedent(
        """
        import gradexp
        gradexp.init(project="sdk-exit", base_url="http://127.0.0.1:9", api_key="gx_" + "k" * 40,
                     settings={"retry_cap": 0.2, "finish_timeout": 120})
        for i in range(500):
            gradexp.log({"i": i})
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "finishing run" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    seen.append(rest)
    err = "".join(seen)
    assert "not waiting for the upload" in err and "gradexp sync" in err
    (run_dir,) = [p for p in (gx_env / "gradexp").iterdir() if p.name.startswith("run-")]
    records = file_records(run_dir)
    assert len([r for r in records if r.type == "history"]) == 500
    assert records[-1].type == "finish"


def test_sync_of_a_damaged_run_file(online: Any) -> None:
    """A flipped byte and a torn tail: sync uploads the rest and the run still finishes."""
    run = gradexp.init(project="sdk-damaged", mode="offline", settings=ONLY_LOGGED)
    for i in range(300):
        gradexp.log({"i": i})
    gradexp.finish()
    log_path = Path(run.dir or "") / "run.gxr"
    records = file_records(run.dir or "")
    data = bytearray(log_path.read_bytes())
    data[records[100].offset + 12] ^= 0x10  # corrupt record seq 101 (step 100)
    del data[records[-2].offset + 20 :]  # a torn tail: step 299 and the finish record lost
    log_path.write_bytes(bytes(data))

    result = gradexp_cli("sync", str(run.dir))
    assert result.returncode == 0, result.stderr
    assert "1 corrupt frames skipped" in result.stderr and "torn tail" in result.stderr
    rows = server_rows(online, run.id)
    steps = [r["_step"] for r in rows]
    assert steps == [s for s in range(299) if s != 100]  # step 100 lost, step 299 torn off
    info = server_run(online, run.id)
    assert info["telemetry"].get("lost_records") == 1  # the hole is accounted for
    assert info["acked_seq"] == 299  # nothing stalls behind the hole
