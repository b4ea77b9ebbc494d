"""The run's environment: what ran, where, on what, from which code.

:func:`collect_environment` runs once per run in the stream loop's executor (it starts
``git`` and reads every installed package's metadata: tens to hundreds of milliseconds
that ``init()`` must not pay). It returns the ``environment`` record's body and the run
files to save beside it (``requirements.txt``, ``diff.patch``).

Nothing that looks like a secret is recorded: no environment variables at all; the
command line's values of options named like secrets (``--api-key=...``, ``--password
X``, ``--token``...) and anything shaped like a known token or key are replaced by
``[redacted]``; URLs lose their user and password (git remotes included); the diff is
passed through the same token filter. See docs/sdk.md, "The run's environment".
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from typing import Any

__all__ = ["collect_environment", "redact_args", "redact_text", "strip_url_credentials"]

REDACTED = "[redacted]"
MAX_DIFF_BYTES = 1024 * 1024  # a diff.patch larger than this is cut (and says so)
GIT_TIMEOUT = 5.0

# Option names whose value is a secret: --api-key, --password, --hf_token, -p? (no: too short)
_SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|"
    r"auth|credential|cookie|session[-_]?key|signature)",
    re.IGNORECASE,
)
# Values that are secrets whatever option they follow: well-known token formats.
_TOKEN = re.compile(
    r"\b("
    r"gx_[A-Za-z0-9_-]{20,}"  # gradexp API keys
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI-style
    r"|hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}"  # AWS access key ids
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"  # JWTs
    r")"
)
# name = value / name: value / NAME=value, where the name looks like a secret (diffs, args).
_ASSIGNMENT = re.compile(
    r"""(?P<name>[A-Za-z0-9_.-]*(?:pass(?:word|wd)?|secret|token|api[-_]?key|access[-_]?key|"""
    r"""private[-_]?key|credential)[A-Za-z0-9_.-]*)(?P<sep>["']?\s*[:=]\s*)(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s"',;]+)""",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<cred>[^/@\s]+)@")


def strip_url_credentials(text: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x`` (anywhere in ``text``)."""
    return _URL_CREDENTIALS.sub(lambda m: m.group("scheme"), text)


def redact_text(text: str) -> str:
    """``text`` with URL credentials removed, known token shapes and the values of
    secret-looking assignments replaced by ``[redacted]``."""
    text = strip_url_credentials(text)
    text = _TOKEN.sub(REDACTED, text)
    return _ASSIGNMENT.sub(
        lambda m: m.group("name") + m.group("sep") + _quoted(m.group("value")), text
    )


def _quoted(value: str) -> str:
    quote = value[:1]
    return quote + REDACTED + quote if quote in ("'", '"') else REDACTED


def redact_args(args: list[str]) -> list[str]:
    """A command line with the values of secret-looking options redacted:
    ``--api-key=X`` and ``--password X`` alike, and token-shaped values anywhere."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            hide_next = False
            if not arg.startswith("-"):
                out.append(REDACTED)
                continue
        if arg.startswith("-"):
            name, eq, _value = arg.partition("=")
            if _SECRET_NAME.search(name):
                if eq:
                    out.append(name + "=" + REDACTED)
                else:
                    out.append(arg)
                    hide_next = True
                continue
        out.append(redact_text(arg))
    return out


# --- collecting -------------------------------------------------------------------------------


def collect_environment(
    *, environment: bool = True, git: bool = True, requirements: bool = True, cwd: str | None = None
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The environment record's body, and the run files to save (name -> bytes).

    Each part is skipped when its setting is off, and each failure leaves its part out
    rather than failing the run (an environment without git, a sandbox without /proc).
    """
    body: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    cwd = cwd or _cwd()
    if environment:
        body.update(_program(cwd))
        body.update(_machine())
        gpus = _gpus()
        if gpus:
            body["gpus"] = gpus
    if git:
        info, diff = _git(cwd)
        if info:
            body["git"] = info
        if diff:
            files["diff.patch"] = diff
    if requirements:
        files["requirements.txt"] = _requirements()
    return body, files


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # the directory was removed
        return ""


def _program(cwd: str) -> dict[str, Any]:
    argv = list(getattr(sys, "orig_argv", None) or sys.argv)
    program = sys.argv[0] if sys.argv else ""
    if program and program not in ("-c", "-m") and os.path.exists(program):
        program = os.path.abspath(program)
    return {
        "program": redact_text(program),
        "args": redact_args([str(a) for a in sys.argv[1:]]),
        "command": redact_args([str(a) for a in argv]),
        "cwd": cwd,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
    }


def _machine() -> dict[str, Any]:
    out: dict[str, Any] = {
        "os": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }
    try:
        import psutil

        out["cpu_count_physical"] = psutil.cpu_count(logical=False)
        out["memory_total_mb"] = round(psutil.virtual_memory().total / 2**20)
    except Exception:
        pass
    return {k: v for k, v in out.items() if v not in (None, "")}


def _cpu_model() -> str:
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    name, _, value = line.partition(":")
                    if name.strip() in ("model name", "Hardware", "cpu model"):
                        return value.strip()
        except OSError:
            pass
    elif sys.platform == "darwin":
        out = _run(["sysctl", "-n", "machdep.cpu.brand_string"], None)
        if out:
            return out.strip()
    return platform.processor() or platform.machine()


def _gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs (name, memory, driver, CUDA version) through NVML; [] without it."""
    from gradexp.stream.system import nvml_init

    nvml = nvml_init()
    if nvml is None:
        return []
    out: list[dict[str, Any]] = []
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        try:
            cuda = nvml.nvmlSystemGetCudaDriverVersion()
            cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}"
        except Exception:
            cuda_version = None
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            gpu: dict[str, Any] = {"index": i, "name": _text(nvml.nvmlDeviceGetName(handle))}
            try:
                gpu["memory_total_mb"] = round(nvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20)
            except Exception:
                pass
            gpu["driver"] = driver
            if cuda_version:
                gpu["cuda"] = cuda_version
            out.append(gpu)
    except Exception:
        pass
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _run(cmd: list[str], cwd: str | None) -> str | None:
    """A command's stdout, or None if it fails or takes too long."""
    try:
        done = subprocess.run(
            cmd,
            cwd=cwd or None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def _git(cwd: str) -> tuple[dict[str, Any], bytes]:
    """The repository holding ``cwd``: remote (no credentials), branch, commit, dirty;
    and the uncommitted changes to tracked files as a patch (size-capped, redacted)."""
    if not cwd:
        return {}, b""
    root = _run(["git", "rev-parse", "--show-toplevel"], cwd)
    if not root:
        return {}, b""
    info: dict[str, Any] = {"root": root.strip()}
    commit = _run(["git", "rev-parse", "HEAD"], cwd)
    if commit:
        info["commit"] = commit.strip()
    branch = _run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd)
    if branch and branch.strip() != "HEAD":
        info["branch"] = branch.strip()
    remote = _run(["git", "remote", "get-url", "origin"], cwd)
    if remote is None:
        remotes = (_run(["git", "remote"], cwd) or "").split()
        remote = _run(["git", "remote", "get-url", remotes[0]], cwd) if remotes else None
    if remote:
        info["remote"] = redact_text(strip_url_credentials(remote.strip()))
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd)
    if status is not None:
        info["dirty"] = bool(status.strip())
    diff = b""
    if info.get("dirty") and commit:
        text = _run(["git", "diff", "--no-color", "--no-ext-diff", "HEAD"], cwd) or ""
        data = redact_text(text).encode()
        if len(data) > MAX_DIFF_BYTES:
            cut = data[:MAX_DIFF_BYTES].decode("utf-8", errors="ignore")
            data = (
                cut + f"\n# gradexp: diff cut at {MAX_DIFF_BYTES} bytes of {len(data)}\n"
            ).encode()
        diff = data
    return info, diff


def _requirements() -> bytes:
    """Installed distributions as ``name==version`` lines, sorted (importlib.metadata)."""
    from importlib import metadata

    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            continue
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return ("\n".join(seen[k] for k in sorted(seen)) + "\n").encode()
