"""GPU check: log() of a 0-d CUDA tensor must not wait for the device on the caller.

Queues ~0.5 s of matrix products on the GPU, then logs a 0-d tensor that depends on
them. If log() synchronised (as ``.item()`` does), it would take as long as the queued
work; it should take microseconds, with the value read later on the stream thread. The
logged value must equal the tensor's value at log() time even though the caller changes
the tensor in place right after. Prints the figures; exits 1 if a check fails.

    python benchmarks/gpu_check_log.py        (needs torch with CUDA; skips otherwise)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    tmp = tempfile.mkdtemp()
    os.environ.setdefault("GRADEXP_CONFIG_DIR", tmp)
    import gradexp
    from gradexp.runfile import RunFile

    run = gradexp.init(project="gpu-check", mode="offline", dir=tmp, settings={"quiet": True})
    x = torch.randn(8192, 8192, device="cuda")
    (x @ x).sum().item()  # warm up cuBLAS
    torch.cuda.synchronize()

    def queue_work() -> torch.Tensor:
        y = x
        for _ in range(25):
            y = (y @ x) / 90.51  # sqrt(8192): the entries stay of order one
        return y.std()  # 0-d, on the GPU, ready only when the products are done

    # How long the queued work takes, synchronising on purpose.
    t = time.perf_counter()
    queue_work().item()
    work_s = time.perf_counter() - t

    loss = queue_work()
    t = time.perf_counter()
    gradexp.log({"loss": loss})
    log_s = time.perf_counter() - t
    loss.add_(1.0)  # changed in place right after log(): must not change what was logged
    expected = loss.item() - 1.0
    gradexp.finish()
    (record,) = [r for r in RunFile(run.dir or "") if r.type == "history"]
    logged = record.values["loss"]

    print(f"device: {torch.cuda.get_device_name()}")
    print(f"queued GPU work, synchronised:      {work_s * 1e3:9.2f} ms")
    print(f"log() of a 0-d tensor depending on it: {log_s * 1e3:9.3f} ms (must be << the work)")
    print(f"logged {logged!r}, expected {expected!r}")
    ok = log_s < work_s / 10 and abs(logged - expected) <= 1e-6 * max(1.0, abs(expected))
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
