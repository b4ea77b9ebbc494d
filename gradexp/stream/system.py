"""System metrics: what the process tree and the machine did, sampled into time series.

:class:`SystemSampler` takes one sample per call to :meth:`SystemSampler.sample`, a flat
``{key: number}`` (the keys are listed in docs/sdk.md, "System metrics"). It runs in the
stream loop's executor (``gradexp-io-N``), never on the caller's thread and never on the
loop itself: psutil walks ``/proc`` and NVML calls may block for milliseconds.

- **CPU**: ``cpu.percent`` is the process tree (this process and its children, such as
  DataLoader workers) in percent of one core, from the difference of their CPU times
  between two samples; ``cpu.machine_percent`` the whole machine, 0-100.
- **Memory, disk, network, file descriptors**: psutil, each group skipped where the
  platform does not offer it (a container without ``/proc/diskstats``, macOS without
  per-process I/O counters). Disk and network bytes count from the run's first sample.
- **GPUs** (NVML, through ``nvidia-ml-py``): only the GPUs this process tree uses (see
  :meth:`SystemSampler._used_gpus`). No NVML, no driver, no GPU: no ``gpu.*`` keys, and
  not a word about it.

Fork: a sampler belongs to the stream thread of the process that made it; a forked child
has no stream thread and never samples.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

MB = 1024 * 1024  # the "_mb" keys are MiB, as `free -m` and nvidia-smi count them
GB = 1024 * MB


class SystemSampler:
    """Samples the process tree and the machine (one instance per run, executor threads).

    Calls never overlap (the run's sampling task awaits each one), so the state kept
    between samples needs no lock.
    """

    def __init__(self, run_dir: str | None, pid: int | None = None) -> None:
        import psutil  # here, on the executor thread: never on import gradexp or init()

        self._psutil = psutil
        self.run_dir = run_dir or os.getcwd()
        self.process = psutil.Process(pid or os.getpid())
        # pid -> (create_time, cpu seconds): to turn CPU times into a percentage.
        self._cpu: dict[int, tuple[float, float]] = {}
        self._procs: dict[int, Any] = {}  # child pid -> psutil.Process (kept: cheaper)
        self._cpu_at = 0.0
        self._io_base: tuple[float, float] | None = None
        self._disk_base: tuple[float, float] | None = None
        self._net_base: tuple[float, float] | None = None
        # Per-process I/O of processes that ended: their bytes still count.
        self._io_gone = [0.0, 0.0]
        self._io_last: dict[int, tuple[float, float]] = {}
        self._nvml: Any = None
        self._nvml_tried = False
        self._gpus_used: set[int] = set()
        # Not psutil.cpu_percent(None): its state is shared with the user's own calls.
        self._machine_times = _busy_total(psutil.cpu_times())
        self._tree_cpu()

    # --- one sample -------------------------------------------------------------------------

    def sample(self) -> dict[str, float]:
        """One sample of every figure this platform offers (executor thread)."""
        psutil = self._psutil
        out: dict[str, float] = {}
        tree = self._tree()
        cpu = self._tree_cpu(tree)
        if cpu is not None:
            out["cpu.percent"] = round(cpu, 2)
        busy, total = _busy_total(psutil.cpu_times())
        d_total = total - self._machine_times[1]
        if d_total > 0:
            d_busy = busy - self._machine_times[0]
            out["cpu.machine_percent"] = round(min(100.0, max(0.0, 100.0 * d_busy / d_total)), 2)
        self._machine_times = (busy, total)
        rss, threads = _memory_and_threads(psutil, tree)
        out["memory.rss_mb"] = round(rss / MB, 2)
        out["proc.threads"] = threads
        vm = psutil.virtual_memory()
        out["memory.machine_used_mb"] = round((vm.total - vm.available) / MB, 1)
        out["memory.machine_available_mb"] = round(vm.available / MB, 1)
        out["memory.machine_percent"] = vm.percent
        self._fds(out)
        self._process_io(tree, out)
        self._disk(out)
        self._network(out)
        self._gpu(tree, out)
        return out

    def _tree(self) -> list[Any]:
        """This process and its children (DataLoader workers, subprocesses), alive now."""
        psutil = self._psutil
        pids = _linux_descendants(self.process.pid)
        if pids is None:
            try:
                return [self.process, *self.process.children(recursive=True)]
            except (psutil.Error, OSError):
                return [self.process]
        tree = [self.process]
        for pid in pids:
            proc = self._procs.get(pid)
            if proc is None:
                try:
                    proc = psutil.Process(pid)
                except (psutil.Error, OSError):
                    continue
            tree.append(proc)
        self._procs = {p.pid: p for p in tree[1:]}
        return tree

    def _tree_cpu(self, tree: list[Any] | None = None) -> float | None:
        """The tree's CPU use since the last sample, in percent of one core."""
        psutil = self._psutil
        now = time.monotonic()
        seen: dict[int, tuple[float, float]] = {}
        used = 0.0
        for proc in tree if tree is not None else self._tree():
            try:
                t = proc.cpu_times()
                created = proc.create_time()
            except (psutil.Error, OSError):
                continue
            total = t.user + t.system
            seen[proc.pid] = (created, total)
            before = self._cpu.get(proc.pid)
            # A child that started since the last sample counts from zero; a reused pid
            # (another create time) too.
            used += total - before[1] if before and before[0] == created else total
        elapsed = now - self._cpu_at
        first = not self._cpu_at
        self._cpu, self._cpu_at = seen, now
        if first or elapsed <= 0:
            return None
        return max(0.0, used / elapsed * 100.0)

    def _fds(self, out: dict[str, float]) -> None:
        try:
            if hasattr(self.process, "num_fds"):
                out["proc.open_fds"] = self.process.num_fds()
            else:  # Windows
                out["proc.open_fds"] = self.process.num_handles()
        except (self._psutil.Error, OSError):
            pass

    def _process_io(self, tree: list[Any], out: dict[str, float]) -> None:
        """Bytes the process tree read from and wrote to storage, since the run began."""
        psutil = self._psutil
        last: dict[int, tuple[float, float]] = {}
        for proc in tree:
            try:
                io = proc.io_counters()
            except (psutil.Error, OSError, AttributeError, NotImplementedError):
                continue
            last[proc.pid] = (
                float(getattr(io, "read_bytes", 0)),
                float(getattr(io, "write_bytes", 0)),
            )
        if not last:
            return
        for pid, (r, w) in self._io_last.items():
            if pid not in last:  # ended since the last sample: keep what it did
                self._io_gone[0] += r
                self._io_gone[1] += w
        self._io_last = last
        read = self._io_gone[0] + sum(r for r, _ in last.values())
        written = self._io_gone[1] + sum(w for _, w in last.values())
        if self._io_base is None:
            self._io_base = (read, written)
        out["disk.proc_read_mb"] = round((read - self._io_base[0]) / MB, 2)
        out["disk.proc_write_mb"] = round((written - self._io_base[1]) / MB, 2)

    def _disk(self, out: dict[str, float]) -> None:
        psutil = self._psutil
        try:
            usage = psutil.disk_usage(self.run_dir)
            out["disk.used_percent"] = usage.percent
            out["disk.free_gb"] = round(usage.free / GB, 2)
        except OSError:
            pass
        try:
            io = psutil.disk_io_counters()
        except (OSError, RuntimeError):
            io = None
        if io is not None:
            now = (float(io.read_bytes), float(io.write_bytes))
            if self._disk_base is None:
                self._disk_base = now
            out["disk.read_mb"] = round((now[0] - self._disk_base[0]) / MB, 2)
            out["disk.write_mb"] = round((now[1] - self._disk_base[1]) / MB, 2)

    def _network(self, out: dict[str, float]) -> None:
        try:
            net = self._psutil.net_io_counters()
        except (OSError, RuntimeError):
            net = None
        if net is None:
            return
        now = (float(net.bytes_sent), float(net.bytes_recv))
        if self._net_base is None:
            self._net_base = now
        out["network.sent_mb"] = round((now[0] - self._net_base[0]) / MB, 3)
        out["network.recv_mb"] = round((now[1] - self._net_base[1]) / MB, 3)

    # --- GPUs ------------------------------------------------------------------------------

    def _nvml_handle(self) -> Any:
        """The pynvml module once NVML is initialised; None where there is no NVML."""
        if not self._nvml_tried:
            self._nvml_tried = True
            self._nvml = nvml_init()
        return self._nvml

    def _gpu(self, tree: list[Any], out: dict[str, float]) -> None:
        nvml = self._nvml_handle()
        if nvml is None:
            return
        try:
            count = nvml.nvmlDeviceGetCount()
        except Exception:
            return
        pids = {p.pid for p in tree}
        for index in self._used_gpus(nvml, count, pids):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
            except Exception:
                continue
            read_gpu(nvml, handle, f"gpu.{index}.", out)

    def _used_gpus(self, nvml: Any, count: int, pids: set[int]) -> list[int]:
        """The GPUs this process tree uses: those running one of its pids (remembered once
        seen). Where NVML cannot see our pids (a container's own pid namespace) but this
        process has initialised CUDA through torch, the GPUs CUDA_VISIBLE_DEVICES names
        (all of them when it is unset)."""
        visible = visible_gpus(nvml, count)
        for index in visible:
            if index in self._gpus_used:
                continue
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                procs = list(nvml.nvmlDeviceGetComputeRunningProcesses(handle))
                try:
                    procs += list(nvml.nvmlDeviceGetGraphicsRunningProcesses(handle))
                except Exception:
                    pass
            except Exception:
                continue
            if any(getattr(p, "pid", None) in pids for p in procs):
                self._gpus_used.add(index)
        if not self._gpus_used and _torch_cuda_initialized():
            return visible
        return sorted(self._gpus_used)

    def close(self) -> None:
        """Let go of NVML (executor thread)."""
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None


def nvml_init() -> Any:
    """Import ``pynvml`` and initialise NVML; None where either fails (no GPU, no driver,
    no nvidia-ml-py): a machine without NVML says nothing about GPUs."""
    try:
        import pynvml
    except Exception:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    return pynvml


def visible_gpus(nvml: Any, count: int) -> list[int]:
    """NVML indices of the GPUs CUDA_VISIBLE_DEVICES lets this process see (indices or
    ``GPU-...`` UUIDs; every GPU when it is unset)."""
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return list(range(count))
    out: list[int] = []
    uuids: dict[str, int] | None = None
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part.isdigit():
            if int(part) < count:
                out.append(int(part))
            continue
        if uuids is None:
            uuids = {}
            for i in range(count):
                try:
                    uuid = nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i))
                except Exception:
                    continue
                uuids[uuid.decode() if isinstance(uuid, bytes) else str(uuid)] = i
        match = next((i for u, i in uuids.items() if u.startswith(part)), None)
        if match is not None:
            out.append(match)
        else:
            break  # CUDA stops at the first device it cannot find
    return out


def read_gpu(nvml: Any, handle: Any, prefix: str, out: dict[str, float]) -> None:
    """One GPU's figures into ``out`` under ``prefix`` (each skipped if NVML refuses it)."""
    try:
        util = nvml.nvmlDeviceGetUtilizationRates(handle)
        out[prefix + "util"] = float(util.gpu)
        out[prefix + "memory_util"] = float(util.memory)
    except Exception:
        pass
    try:
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        out[prefix + "memory_used_mb"] = round(mem.used / MB, 1)
        out[prefix + "memory_total_mb"] = round(mem.total / MB, 1)
    except Exception:
        pass
    try:
        out[prefix + "temp_c"] = float(nvml.nvmlDeviceGetTemperature(handle, 0))  # 0: the GPU die
    except Exception:
        pass
    try:
        out[prefix + "power_w"] = round(nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0, 1)
    except Exception:
        pass
    try:
        out[prefix + "clock_mhz"] = float(nvml.nvmlDeviceGetClockInfo(handle, 1))  # 1: SM clock
    except Exception:
        pass


def _memory_and_threads(psutil: Any, tree: list[Any]) -> tuple[int, int]:
    """The tree's resident memory (bytes) and thread count (processes that ended since
    the tree was listed are skipped)."""
    rss = threads = 0
    for proc in tree:
        try:
            with proc.oneshot():
                rss += proc.memory_info().rss
                threads += proc.num_threads()
        except (psutil.Error, OSError):  # noqa: PERF203 - a process may end at any time
            continue
    return rss, threads


def _linux_descendants(pid: int) -> list[int] | None:
    """The pids below ``pid``, from ``/proc/PID/task/TID/children`` (Linux); None where
    that file does not exist. psutil finds children by reading every process's
    ``/proc/PID/stat``: hundreds of reads, each waiting for the GIL when the training
    loop keeps it busy; this reads one file per thread of each process in the tree."""
    if not sys.platform.startswith("linux"):
        return None
    out: list[int] = []
    todo = [pid]
    first = True
    while todo:
        parent = todo.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            if first:
                return None
            continue
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as f:
                    kids = [int(x) for x in f.read().split()]
            except FileNotFoundError:
                if first:
                    return None  # a kernel without CONFIG_PROC_CHILDREN
                continue
            except (OSError, ValueError):
                continue
            first = False
            out.extend(kids)
            todo.extend(kids)
        first = False
    return out


def _busy_total(times: Any) -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine, all cores together."""
    total = float(sum(times))
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return total - idle, total


def _torch_cuda_initialized() -> bool:
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        return bool(cuda is not None and cuda.is_initialized())
    except Exception:
        return False
