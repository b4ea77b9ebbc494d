"""Alerts posted to the server's webhook: a real receiver on a loopback port, a real server,
the SDK's ``gradexp.alert``. Delivery is off the request path, retried, rate-limited."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import gradexp
from gradexp.server.settings import resolve_settings
from tests.helpers import free_port

from .helpers import batch, new_id, post, put_run


class Receiver:
    """An HTTP server that records the JSON bodies POSTed to it; the first ``fail`` requests
    are answered 500."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.requests = 0
        self.fail = fail
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                receiver.requests += 1
                if receiver.requests <= receiver.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(data))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, n: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.bodies

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.mark.slow
def test_an_alert_reaches_the_webhook_and_the_run_page(
    start_server: Any, receiver: Receiver, gx_env: Any, monkeypatch: Any
) -> None:
    srv = start_server(env={"GRADEXP_ALERT_WEBHOOK_URL": receiver.url})
    monkeypatch.setenv("GRADEXP_BASE_URL", srv.url)
    monkeypatch.setenv("GRADEXP_API_KEY", srv.api_key)
    run = gradexp.init(project="alerts", name="noisy-run")
    gradexp.log({"loss": float("nan")})
    gradexp.alert("Loss is NaN", "at step 0, lr 0.3", level="ERROR")
    gradexp.alert("Loss is NaN", "again", level="ERROR", wait_duration=300)  # skipped
    gradexp.finish()
    (body,) = receiver.wait_for(1)
    assert body["alert"]["title"] == "Loss is NaN" and body["alert"]["level"] == "ERROR"
    assert body["alert"]["text"] == "at step 0, lr 0.3"
    assert body["run"] == {
        "id": run.id,
        "name": "noisy-run",
        "project": "alerts",
        "owner": srv.user,
        "url": f"{srv.url}/r/{run.id}",
    }
    assert body["text"].startswith("[ERROR] Loss is NaN: at step 0, lr 0.3 (run noisy-run")
    api = gradexp.Api(base_url=srv.url, api_key=srv.api_key)
    assert [a["text"] for a in api.run(run.id).alerts()] == ["at step 0, lr 0.3"]
    time.sleep(0.5)
    assert len(receiver.bodies) == 1  # wait_duration kept the second one back


@pytest.mark.slow
def test_delivery_is_retried_and_rate_limited(start_server: Any) -> None:
    flaky = Receiver(fail=2)  # two 500s, then it works: delivered on the third try
    try:
        srv = start_server(env={"GRADEXP_ALERT_WEBHOOK_URL": flaky.url})
        run_id = new_id("rl")
        assert put_run(srv, run_id, project="alerts")[0] == 201
        alerts = [
            {"seq": i + 1, "type": "alert", "title": f"a{i}", "text": "", "level": "WARN",
             "time": 1.7e9 + i}
            for i in range(14)
        ]  # fmt: skip
        assert post(srv, run_id, batch(alerts))[0] == 200
        # acknowledged before any alert was delivered: the request does not wait for the
        # webhook (the first delivery succeeds only after two retries, 1 s and 2 s apart)
        assert flaky.bodies == []
        bodies = flaky.wait_for(10)
        assert [b["alert"]["title"] for b in bodies] == [f"a{i}" for i in range(10)]
        time.sleep(1.0)
        assert len(flaky.bodies) == 10  # the rest were over 10 a minute for this run
        assert flaky.requests == 12
        _, listed = srv.request("GET", f"/api/v1/runs/{run_id}/alerts")
        assert len(listed["alerts"]) == 14  # all of them stay on the run page
    finally:
        flaky.close()


def test_the_webhook_url_is_checked() -> None:
    with pytest.raises(ValueError, match="must start with http"):
        resolve_settings(environ={"GRADEXP_ALERT_WEBHOOK_URL": "ftp://x"})
    settings = resolve_settings(environ={}, alert_webhook_url="https://hooks.example/abc")
    assert settings.alert_webhook_url == "https://hooks.example/abc"
    assert resolve_settings(environ={}).alert_webhook_url is None


def test_the_command_line_option_is_checked(tmp_path: Any) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "gradexp.server", "--alert-webhook-url", "hooks.example/x",
         "--data", str(tmp_path), "--port", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "must start with http:// or https://" in out.stderr
