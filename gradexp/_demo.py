"""``gradexp demo``: a local server with a sample training run in it, in one command.

What it does, in order: starts ``gradexp server`` as a subprocess (the default data dir,
or ``--data``; a free port, or ``--port``), creates a ``demo`` user and API key the first
time, logs a sample training run into it through the ordinary SDK (train/val metrics,
and gradient histograms when ``gradexp._tensors`` is available), prints the URL to open,
and keeps the server running until Ctrl-C.

Signing the browser in is the login feature's job: :func:`sign_in_link` asks the server
for a one-time link (``gradexp server user login-link``); change that one function if the
sign-in flow changes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

DEMO_USER = "demo"
KEY_FILE = "demo-key.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_admin(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gradexp.server", *args, "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _get(url: str, key: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise click.ClickException(f"the server stopped while starting:\n{tail}")
        with contextlib.suppress(OSError):
            if _get(url + "/healthz")[0] == 200:
                return
        time.sleep(0.2)
    raise click.ClickException(
        f"the server did not answer at {url} within {timeout:.0f} s; see {log}"
    )


def demo_key(data: Path, url: str) -> str:
    """The demo user's API key: reused from the data dir, else user and key are created."""
    path = data / KEY_FILE
    with contextlib.suppress(OSError, ValueError, KeyError):
        key = str(json.loads(path.read_text())["api_key"])
        if _get(url + "/api/v1/viewer", key)[0] == 200:
            return key
    added = _server_admin(data, "user", "add", DEMO_USER, "--no-password")
    if added.returncode != 0 and "exist" not in (added.stderr + added.stdout).lower():
        raise click.ClickException(f"could not create the demo user: {added.stderr.strip()}")
    created = _server_admin(data, "key", "create", DEMO_USER, "--name", "demo")
    key = created.stdout.strip().split()[-1] if created.returncode == 0 else ""
    if not key.startswith("gx_"):
        raise click.ClickException(f"could not create a demo API key: {created.stderr.strip()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a secret: owner only
    with os.fdopen(fd, "w") as f:
        json.dump({"user": DEMO_USER, "api_key": key}, f)
    return key


def sign_in_link(data: Path, url: str, next_path: str | None = None) -> str | None:
    """A one-time link that signs the browser in as the demo user (None if unavailable),
    then opens ``next_path`` (the run's page).

    The hook for the login feature: the demo prints this beside the run's URL.
    """
    extra = ["--next", next_path] if next_path else []
    proc = _server_admin(data, "user", "login-link", DEMO_USER, "--url", url, *extra)
    if proc.returncode != 0:
        return None
    link = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return link if link.startswith("http") else None


def log_sample_run(url: str, key: str, runs_dir: Path, steps: int) -> Any:
    """A few hundred steps of a plausible training run, logged through the SDK."""
    import gradexp

    rng = random.Random(7)
    base_lr, epochs = 3e-3, 5
    config = {"model": "mlp-3x512", "optimizer": "adamw", "lr": base_lr, "batch_size": 128}
    config["epochs"] = epochs
    run = gradexp.init(
        project="demo",
        name=f"demo-{time.strftime('%H%M%S')}",
        config=config,
        tags=["demo"],
        dir=str(runs_dir),
        base_url=url,
        api_key=key,
        mode="online",
    )
    try:
        import numpy as np

        from gradexp import _values

        histograms = _values._tensors() is not None
    except ImportError:  # pragma: no cover - numpy is a core dependency
        histograms = False
    layers = ["fc1.weight", "fc2.weight", "fc3.weight"]
    best = 0.0
    for step in range(steps):
        frac = step / max(1, steps - 1)
        lr = base_lr * 0.5 * (1 + math.cos(math.pi * frac))
        loss = 2.3 * math.exp(-4 * frac) + 0.08 + rng.gauss(0, 0.04) * (1 - 0.7 * frac)
        acc = 1 - 0.9 * math.exp(-5 * frac) - rng.uniform(0, 0.03)
        values: dict[str, Any] = {
            "train/loss": loss,
            "train/acc": acc,
            "lr": lr,
            "grad_norm": 4.0 * math.exp(-3 * frac) + abs(rng.gauss(0, 0.3)),
            "epoch": frac * epochs,
        }
        if step % 25 == 24 or step == steps - 1:
            val_acc = acc - 0.03 + rng.gauss(0, 0.01)
            best = max(best, val_acc)
            values["val/loss"] = loss * 1.1 + 0.05
            values["val/acc"] = val_acc
        if histograms and step % 10 == 0:
            scale = 0.05 * math.exp(-2 * frac) + 0.005
            for i, name in enumerate(layers):
                # Gradients shrink as training converges; a bare array becomes a histogram.
                values[f"gradients/{name}"] = (
                    np.random.default_rng(step * 10 + i)
                    .normal(0, scale * (i + 1), size=4096)
                    .astype(np.float32)
                )
        gradexp.log(values)
        time.sleep(0.002)  # a (very) fast training step
    run.summary["best_val_acc"] = best
    gradexp.finish()
    return run


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Server data folder (default: the same as `gradexp server`).",
)
@click.option("--port", type=int, help="Port for the local server (default: a free one).")
@click.option("--steps", type=int, default=300, show_default=True, help="Steps in the sample run.")
def demo(data: Path | None, port: int | None, steps: int) -> None:
    """Start a local server, log a sample training run into it, and print its URL.

    The server keeps running (Ctrl-C stops it); run the demo again to add another run.

    \b
    Examples:
      gradexp demo
      gradexp demo --data ./gx-demo --port 8080
    """
    try:
        from gradexp.server.config import default_data_dir
    except ImportError as exc:
        raise click.ClickException(
            f'the demo needs the server extra ({exc.name} is missing): pip install "gradexp[server]"'
        ) from None
    data = (data or default_data_dir()).expanduser().resolve()
    data.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = data / "demo-server.log"
    click.echo(f"Starting gradexp server at {url} (data: {data}; log: {log_path})")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gradexp.server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data",
                str(data),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C handler stops it cleanly, not the terminal
        )
    try:
        _wait_healthy(url, proc, log_path)
        key = demo_key(data, url)
        click.echo(f"Logging a sample training run ({steps} steps)…")
        run = log_sample_run(url, key, data / "demo-runs", steps)
        click.echo("")
        click.echo(f"Open the run:  {run.url}")
        link = sign_in_link(data, url, f"/r/{run.id}")
        if link:
            click.echo(f"Sign in first (one-time link, user {DEMO_USER!r}):  {link}")
        click.echo(f"API key of the demo user: {key[:7]}… (saved in {data / KEY_FILE})")
        click.echo("The server keeps running; press Ctrl-C to stop it.")
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
        with contextlib.suppress(KeyboardInterrupt):
            proc.wait()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        click.echo("gradexp demo: server stopped.")
