"""One-file check of the CUDA path of gradexp's tensors (for a machine with a GPU).

    python benchmarks/gpu_check.py            # on cuda if available, else a small CPU dry run
    python benchmarks/gpu_check.py --size 1e7 # a smaller tensor

What it checks, on ``cuda``:

1. A 100M-element float32 tensor (with NaN, +Inf, -Inf and zeros) reduced on the device:
   the counts equal numpy's rule (``searchsorted(edges, x, "right") - 1``, last edge
   inclusive) on a CPU copy, the statistics equal float64 numpy, and NaN/Inf/zero counts
   are exact. Same for bfloat16, float16, int64, bool, a strided view, a tensor that
   requires grad, an explicit range, a sparse tensor and deterministic mode.
2. The caller never waits for the GPU: with the GPU kept busy (``torch.cuda._sleep``),
   ``capture`` returns in milliseconds and the stream-side ``encode`` is what waits.
3. The tensor never crosses to the host: the profiler's device-to-host copies during
   capture + encode add up to a few hundred bytes.
4. ``Tensor`` of a CUDA tensor: a non-blocking copy, bytes equal after ``np.load``.
5. ``watch`` on a CUDA MLP: the recorded gradient norms equal torch's own.

And it times the device path against copying the tensor to the host and binning it there.
It prints a table and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from gradexp.protocol.values import decode_value
from gradexp.sdk.values.capture import capture
from gradexp.sdk.values.histogram import capture_histogram
from gradexp.sdk.values.tensor import Tensor

RESULTS: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    RESULTS.append((name, bool(ok), detail))
    print(f"[{'ok' if ok else 'FAIL'}] {name} {detail}", flush=True)


def encode_on_thread(captured: Any, sink: Any = None) -> Any:
    """encode() on another thread, as gradexp's stream thread runs it."""
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(captured.encode(sink)))
    worker.start()
    worker.join()
    return decode_value(out[0]) if isinstance(out[0], dict) else out[0]


def reference_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """np.histogram's counts for explicit edges, in blocks (np.histogram would sort 100M)."""
    n = len(edges) - 1
    counts = np.zeros(n + 1, dtype=np.int64)
    for start in range(0, values.size, 1 << 24):
        block = values[start : start + (1 << 24)]
        block = block[(block >= edges[0]) & (block <= edges[-1])]
        index = np.searchsorted(edges, block, side="right") - 1
        counts += np.bincount(index, minlength=n + 1)
    counts[n - 1] += counts[n]  # the last edge is inclusive
    return counts[:n]


def compare(name: str, t: torch.Tensor, h: dict[str, Any], **kwargs: Any) -> None:
    """Check a device-path histogram against numpy on a CPU copy of ``t``."""
    if t.layout != torch.strided:
        t = t.to_dense()
    ref = t.detach().to("cpu", torch.float64).numpy().ravel()
    finite = ref[np.isfinite(ref)]
    if "range" in kwargs:
        counts = reference_counts(finite, np.array(h["bins"]))
    else:
        counts = reference_counts(finite, np.array(h["bins"]))
    problems = []
    if h["counts"] != counts.tolist():
        diff = np.abs(np.array(h["counts"]) - counts).sum()
        problems.append(f"counts differ in {diff} values")
    expected = {
        "count": ref.size,
        "nan": int(np.isnan(ref).sum()),
        "inf": int((ref == np.inf).sum()),
        "ninf": int((ref == -np.inf).sum()),
        "zeros": int((finite == 0).sum()),
        "min": float(finite.min()),
        "max": float(finite.max()),
    }
    for key, want in expected.items():
        if h[key] != want:
            problems.append(f"{key} {h[key]} != {want}")
    for key, want in (
        ("mean", finite.mean()),
        ("std", finite.std()),
        ("norm", math.sqrt(float(np.dot(finite, finite)))),
    ):
        if not math.isclose(h[key], want, rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"{key} {h[key]!r} != {want!r}")
    check(name, not problems, "; ".join(problems) or f"({ref.size:,} values)")


class MemorySink:
    """A BlobSink that keeps blobs in memory."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add_file(self, data: bytes, *, suffix: str, content_type: str) -> dict[str, Any]:
        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha + suffix] = data
        return {"path": sha + suffix, "sha256": sha, "size": len(data)}


def busy(device: torch.device, ms: float) -> None:
    """Queue roughly ``ms`` of GPU work that does nothing (a spin of ~2e6 cycles per ms)."""
    if device.type == "cuda":
        torch.cuda._sleep(int(ms * 2e6))


def timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=float, default=1e8)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    size = int(args.size) if cuda else min(int(args.size), 2_000_000)
    print(f"torch {torch.__version__}, numpy {np.__version__}, device {device}", end="")
    print(f" ({torch.cuda.get_device_name()})" if cuda else " (no GPU: a small dry run on CPU)")
    on_device = True  # the device path, also when this is a CPU dry run

    # 1. correctness on a big float32 tensor with every kind of special value
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(size, device=device, generator=g)
    x[::1_000_003] = float("nan")
    x[5], x[7], x[11] = float("inf"), -float("inf"), float("inf")
    x[::17] = 0.0
    if cuda:
        torch.cuda.synchronize()
    h = encode_on_thread(capture_histogram(x, on_device=on_device))
    compare(f"float32 {size:,}", x, h)

    # 2. the caller does not wait: queue ~300 ms of GPU work first
    if cuda:
        torch.cuda.synchronize()
        busy(device, 300)
        captured, caller_ms = timed(lambda: capture_histogram(x))
        _, wait_ms = timed(lambda: encode_on_thread(captured))
        check(
            "capture returns while the GPU is busy",
            caller_ms < 100 and wait_ms > caller_ms,
            f"(caller {caller_ms:.1f} ms, stream-side wait {wait_ms:.1f} ms)",
        )

    # 3. nothing big crosses to the host
    if cuda:
        from torch.profiler import ProfilerActivity, profile

        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            encode_on_thread(capture_histogram(x))
            torch.cuda.synchronize()
        copies = [
            e
            for e in prof.events()
            if "DtoH" in e.name or "Device -> Pageable" in e.name or "Device -> Pinned" in e.name
        ]
        names = sorted({e.name for e in copies})
        expected_bytes = (8 + 64 + 65) * 8
        check(
            "no large device-to-host copy",
            len(copies) <= 4,
            f"({len(copies)} DtoH copies: {names}; the packed result is {expected_bytes} bytes)",
        )

    # timing: device path vs copying to the host and binning there
    if cuda:
        torch.cuda.synchronize()
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            encode_on_thread(capture_histogram(x))
            runs.append((time.perf_counter() - t0) * 1e3)
        host_runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            encode_on_thread(capture_histogram(x, on_device=False))
            host_runs.append((time.perf_counter() - t0) * 1e3)
        print(
            f"      timing, {size:,} float32: device path {sorted(runs)[2]:.1f} ms (capture to "
            f"result), host path (copy + numpy kernel) {min(host_runs):.1f} ms"
        )

    # other dtypes and layouts
    small = min(size, 10_000_000)
    base = torch.randn(small, device=device, generator=g) * 30
    for dtype in (
        torch.bfloat16,
        torch.float16,
        torch.int64,
        torch.int8,
        torch.bool,
        torch.float64,
    ):
        t = base.to(dtype)
        compare(
            f"{str(dtype).removeprefix('torch.')} {small:,}",
            t,
            encode_on_thread(capture_histogram(t, on_device=on_device)),
        )
    view = base.reshape(-1, 10)[::3, 2:7]
    compare("strided view", view, encode_on_thread(capture_histogram(view, on_device=on_device)))
    leaf = base[:1000].clone().requires_grad_(True)
    compare(
        "requires_grad",
        leaf * 2,
        encode_on_thread(capture_histogram(leaf * 2, on_device=on_device)),
    )
    h = encode_on_thread(capture_histogram(base, bins=10, range=(-10, 10), on_device=on_device))
    ref = base.double().cpu().numpy()
    counts, _ = np.histogram(ref, bins=np.array(h["bins"]))
    check(
        "explicit range", h["counts"] == counts.tolist(), f"(edges {h['bins'][0]}..{h['bins'][-1]})"
    )
    idx = torch.randint(0, 1000, (2, 500), device=device, generator=g)
    sparse = torch.sparse_coo_tensor(
        idx, torch.randn(500, device=device, generator=g), (1000, 1000)
    )
    compare(
        "sparse COO (implicit zeros)",
        sparse,
        encode_on_thread(capture_histogram(sparse, on_device=on_device)),
    )
    torch.use_deterministic_algorithms(True)
    try:
        compare(
            "deterministic mode",
            base,
            encode_on_thread(capture_histogram(base, on_device=on_device)),
        )
    finally:
        torch.use_deterministic_algorithms(False)
    one = torch.tensor([2.5], device=device)
    check("one element is a number", encode_on_thread(capture(one)) == 2.5)

    # 4. Tensor: non-blocking host copy, same bytes
    sink = MemorySink()
    t = torch.randn(1000, 333, device=device, generator=g)
    if cuda:
        torch.cuda.synchronize()
        busy(device, 200)
    value, caller_ms = timed(lambda: Tensor(t)._gradexp_capture())
    ref = encode_on_thread(value, sink)
    loaded = np.load(io.BytesIO(gzip.decompress(sink.blobs[ref["path"]])))
    check(
        "Tensor bytes equal after np.load",
        loaded.tobytes() == t.cpu().numpy().tobytes(),
        f"(caller {caller_ms:.1f} ms with the GPU busy)",
    )

    # 5. watch on a CUDA MLP
    from gradexp.integrations import torch as gx_torch

    attached: list[dict[str, Any]] = []
    pending: dict[str, Any] = {}

    class CollectingRun:  # stands in for a gradexp run: merges what watch attaches, as
        def _attach_to_next_step(self, values: dict[str, Any]) -> None:  # Run does, until
            pending.update(values)  # the step is committed (below, once per step)

    try:
        import gradexp.sdk.facade as sdk_run
    except ImportError:  # the SDK's own dependencies (orjson, platformdirs) are not here
        import types

        sdk_run = types.ModuleType("gradexp.sdk.facade")
        sdk_run.current_run = lambda: None  # type: ignore[attr-defined]
        sys.modules["gradexp.sdk.facade"] = sdk_run
    real_current = sdk_run.current_run
    sdk_run.current_run = lambda: CollectingRun()  # type: ignore[assignment]
    try:
        model = torch.nn.Sequential(
            torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)
        ).to(device)
        opt = torch.optim.AdamW(model.parameters())
        gx_torch.watch(model, log="all", log_freq=2)
        norms = []
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(64, 256, device=device, generator=g)).square().mean().backward()
            norms.append(
                float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))
                if hasattr(torch.nn.utils, "get_total_norm")
                else None
            )
            opt.step()
            if pending:  # the user's log() of this step
                attached.append(dict(pending))
                pending.clear()
        gx_torch.unwatch(model)
    finally:
        sdk_run.current_run = real_current
    encoded = [{k: encode_on_thread(v) for k, v in values.items()} for values in attached]
    ok = len(encoded) == 2 and all(
        "gradients/0.weight" in e and "parameters/2.bias" in e for e in encoded
    )
    if ok and norms[0] is not None:
        ok = math.isclose(encoded[0]["grad_norm/global"], norms[0], rel_tol=1e-5)
        ok &= math.isclose(encoded[1]["grad_norm/global"], norms[2], rel_tol=1e-5)
    check(
        "watch on a CUDA model",
        ok,
        f"({len(encoded)} captures, global norms {[e.get('grad_norm/global') for e in encoded]} vs torch {norms})",
    )

    failed = [name for name, ok, _ in RESULTS if not ok]
    print(
        f"\n{len(RESULTS) - len(failed)}/{len(RESULTS)} checks passed"
        + (f"; failed: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
