"""``gradexp demo``: a local server with a sample training run in it, in one command.

What it does, in order: starts ``gradexp server`` as a subprocess (the default data dir,
or ``--data``; a free port, or ``--port``), creates a ``demo`` user and API key the first
time, logs a sample learning-rate sweep into it through the ordinary SDK (three simulated
runs: train/val curves with a schedule, gradient and weight histograms, an image, a
tensor, nested config; one run diverges), prints the URLs to open, and keeps the server
running until Ctrl-C. numpy only: no torch needed.

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
from dataclasses import dataclass
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


# --- the sample runs --------------------------------------------------------------------------
#
# A small learning-rate sweep of an MLP on an image classification task, simulated with
# numpy (no torch needed, and fast): realistic curves (noise, warmup then cosine decay,
# validation every few hundred steps), gradient AND weight histograms of a few layers (so
# the gradient explorer fills every column), a grid of generated samples as an Image and
# an attention map as a Tensor. The third run's learning rate is too high: its gradients
# explode and its loss turns NaN, which is what the explorer and the charts are for.

LAYERS = {  # name -> shape (out, in): small, so the demo stays fast
    "fc1.weight": (128, 196),
    "fc1.bias": (128,),
    "fc2.weight": (64, 128),
    "fc3.weight": (10, 64),
}


@dataclass(frozen=True)
class SampleRun:
    """One run of the sweep: its name, learning rate, model width and dropout."""

    name: str
    lr: float
    width: int
    dropout: float
    tags: tuple[str, ...]
    diverges: bool = False


SWEEP = (
    SampleRun("slow-lr1e-3", 1e-3, 512, 0.1, ("sweep",)),
    SampleRun("hot-lr3e-2", 3e-2, 512, 0.1, ("sweep",), diverges=True),
    SampleRun("baseline-lr3e-3", 3e-3, 512, 0.1, ("sweep", "baseline")),
)


def _config(spec: SampleRun, steps: int, warmup: int) -> dict[str, Any]:
    return {
        "model": {"arch": "mlp", "width": spec.width, "depth": 3, "dropout": spec.dropout},
        "optimizer": {"name": "adamw", "lr": spec.lr, "weight_decay": 0.01, "betas": [0.9, 0.999]},
        "schedule": {"kind": "cosine", "warmup_steps": warmup, "total_steps": steps},
        "data": {"dataset": "fashion-mnist", "batch_size": 128, "augment": True},
        "seed": 7,
    }


def _sample_grid(rng: Any, quality: float) -> Any:
    """An 8x8 grid of 16x16 generated samples: blurry noise early, clear shapes later."""
    import numpy as np

    tiles = np.zeros((8 * 16, 8 * 16, 3), dtype=np.float32)
    yy, xx = np.mgrid[0:16, 0:16].astype(np.float32)
    for r in range(8):
        for c in range(8):
            cy, cx = rng.uniform(5, 11, size=2)
            radius = rng.uniform(3, 6)
            ring = np.exp(-(((np.hypot(yy - cy, xx - cx) - radius) / 1.2) ** 2))
            noise = rng.random((16, 16))
            tile = quality * ring + (1 - quality) * noise
            color = np.array([0.3 + 0.7 * (r / 7), 0.5, 1.0 - 0.6 * (c / 7)], dtype=np.float32)
            tiles[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16] = tile[..., None] * color
    return (np.clip(tiles, 0, 1) * 255).astype(np.uint8)


def _attention(rng: Any, sharpness: float) -> Any:
    """Attention weights (4 heads x 32 queries x 32 keys) that focus as training goes."""
    import numpy as np

    n = 32
    scores = rng.normal(0, 1, size=(4, n, n))
    idx = np.arange(n)
    for head, offset in enumerate((0, -1, 1, 4)):  # diagonal, previous, next, a stride
        scores[head] += sharpness * 4.0 * (idx[None, :] == (idx[:, None] + offset) % n)
    scores -= scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


def log_sample_run(
    url: str, key: str, runs_dir: Path, steps: int, spec: SampleRun = SWEEP[-1], group: str = ""
) -> Any:
    """Log one simulated training run of ``steps`` steps through the SDK; returns the Run."""
    import numpy as np

    from gradexp.sdk import facade
    from gradexp.sdk.values.histogram import Histogram
    from gradexp.sdk.values.image import Image
    from gradexp.sdk.values.tensor import Tensor

    rng = np.random.default_rng(abs(hash(spec.name)) % 2**32)
    noise = random.Random(spec.name)
    warmup = max(1, steps // 15)
    val_every = max(10, steps // 12)
    hist_every = max(5, steps // 40)
    media_every = max(10, steps // 4)
    diverge_at = int(steps * 0.78) if spec.diverges else steps + 1
    run = facade.init(
        project="demo",
        name=spec.name,
        config=_config(spec, steps, warmup),
        tags=["demo", *spec.tags],
        group=group or None,
        notes=f"Simulated MLP, lr={spec.lr:g}: a gradexp demo run.",
        dir=str(runs_dir),
        base_url=url,
        api_key=key,
        mode="online",
        settings={"quiet": True},
    )
    weights = {
        name: rng.normal(0, math.sqrt(2 / shape[-1]) if len(shape) > 1 else 0.01, size=shape)
        for name, shape in LAYERS.items()
    }
    # How fast and how far the loss falls depends on the learning rate (too low: slow).
    speed = min(1.0, spec.lr / 3e-3) ** 0.5
    floor = 0.22 + 0.1 * (1 - speed)
    lr_sum = 0.0  # learning rate summed since the last histograms (the weights' drift)
    best_val = 0.0
    exit_code = 0
    for step in range(steps):
        frac = step / max(1, steps - 1)
        if step < warmup:
            lr = spec.lr * (step + 1) / warmup
        else:
            lr = spec.lr * (
                0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
            )
        lr_sum += lr
        progress = 1 - math.exp(-6 * speed * frac)
        loss = floor + (2.3 - floor) * (1 - progress) + noise.gauss(0, 0.06 * (1.2 - progress))
        acc = 0.1 + 0.8 * progress * (1 - floor / 2) + noise.gauss(0, 0.015)
        grad_scale = 0.05 * (1.1 - 0.8 * progress)
        if step >= diverge_at:  # too high a learning rate: it blows up, then NaN
            # Grows so the loss passes 1e4 (then NaN) a few steps before the end, whatever
            # the number of steps.
            blow = math.exp(12 * (step - diverge_at) / max(1, steps - diverge_at - 3))
            loss *= blow
            acc = max(0.1, acc / blow)
            grad_scale *= blow**1.5
        values: dict[str, Any] = {
            "train/loss": loss if loss < 1e4 else float("nan"),
            "train/acc": min(1.0, max(0.0, acc)),
            "lr": lr,
            "epoch": frac * 12,
            "grad_norm": grad_scale * 290 * (1 + abs(noise.gauss(0, 0.15))),
            "perf/samples_per_sec": 5200 + noise.gauss(0, 150) - (900 if step % 97 == 0 else 0),
        }
        if step % val_every == val_every - 1 or step == steps - 1:
            overfit = 0.15 * max(0.0, frac - 0.6) * (1 if spec.dropout < 0.05 else 0.3)
            val_loss = loss * 1.08 + 0.03 + overfit + noise.gauss(0, 0.01)
            val_acc = min(1.0, max(0.0, acc - 0.02 - overfit + noise.gauss(0, 0.006)))
            best_val = max(best_val, val_acc)
            values["val/loss"] = val_loss
            values["val/acc"] = val_acc
        if step % hist_every == 0:
            for i, (name, w) in enumerate(weights.items()):
                g = rng.normal(0.002 * (i - 1), grad_scale / (1 + i), size=w.shape)
                w -= lr_sum * g * 3
                values[f"gradients/{name}"] = Histogram(g)
                values[f"parameters/{name}"] = Histogram(w)
            lr_sum = 0.0
        if step % media_every == 0 or step == steps - 1:
            values["samples"] = Image(
                _sample_grid(rng, min(1.0, progress * 1.1)), caption=f"samples at step {step}"
            )
            values["attention/layer2"] = Tensor(_attention(rng, progress))
        facade.log(values, step=step)
        if not math.isfinite(values["train/loss"]):
            exit_code = 1  # a real script would stop here: the loss is NaN
            break
    run.summary["best_val_acc"] = best_val
    facade.finish(exit_code=exit_code)
    return run


def log_sample_runs(url: str, key: str, runs_dir: Path, steps: int) -> list[Any]:
    """The learning-rate sweep: three runs, the healthy baseline last (newest)."""
    group = f"lr-sweep-{time.strftime('%H%M%S')}"
    return [log_sample_run(url, key, runs_dir, steps, spec, group) for spec in SWEEP]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Server data folder (default: the same as `gradexp server`).",
)
@click.option("--port", type=int, help="Port for the local server (default: a free one).")
@click.option(
    "--steps", type=int, default=3000, show_default=True, help="Steps in each sample run."
)
def demo(data: Path | None, port: int | None, steps: int) -> None:
    """Start a local server, log a sample learning-rate sweep into it, and print its URLs.

    The server keeps running (Ctrl-C stops it); run the demo again to add another run.

    \b
    Examples:
      gradexp demo
      gradexp demo --data ./gx-demo --port 8080
    """
    try:
        from gradexp.server.settings import default_data_dir
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
        click.echo(f"Logging a sample learning-rate sweep (3 runs of {steps} steps)…")
        started = time.monotonic()
        runs = log_sample_runs(url, key, data / "demo-runs", steps)
        run = runs[-1]
        click.echo(f"Logged {len(runs)} runs in {time.monotonic() - started:.1f} s.")
        click.echo("")
        click.echo(f"Open the run:  {run.url}")
        click.echo(f"Its gradients: {run.url}/gradients")
        click.echo(f"Compare all:   {url}/compare?runs={','.join(r.id for r in runs)}")
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
