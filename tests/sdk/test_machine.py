"""What the machine did, in the run file: console output, system metrics, the environment.

Console capture acts on the process's own file descriptors, so every test here runs its
program in a real child process (pytest's own capture would stand in the way otherwise)
and reads the run file it leaves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from gradexp.runfile import RunFile

from .conftest import file_records

ROOT = Path(__file__).resolve().parents[2]


def run_script(
    tmp: Path, body: str, *, env: dict[str, str] | None = None, args: list[str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``body`` as a Python program in ``tmp`` (gradexp from this tree), stdout and
    stderr piped."""
    script = tmp / "prog.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, str(script), *(args or [])],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        timeout=120,
    )


def latest(tmp: Path) -> Path:
    return (tmp / "gradexp" / "latest-run").resolve()


def console_lines(run_dir: Path) -> list[dict[str, Any]]:
    """The run's console lines as a reader would show them: the last version of each id,
    in id order."""
    by_id: dict[int, dict[str, Any]] = {}
    for rec in file_records(run_dir, "console"):
        for line in rec.data["lines"]:
            by_id[line["id"]] = line
    return [by_id[i] for i in sorted(by_id)]


PROGRAM = """
    import os, subprocess, sys, time
    import gradexp

    gradexp.init(project="console", settings={"system_metrics_interval": 0})
    print("from print")
    sys.stderr.write("from sys.stderr\\n")
    sys.stderr.flush()
    os.write(1, b"from os.write\\n")
    subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
    for i in range(101):
        print(f"\\rtraining {i:3d}%", end="", flush=True)
    print()
    print("unicode: é ✓", flush=True)
    print("with flush", flush=True)
    gradexp.log({"loss": 0.5})
    gradexp.finish()
    print("after finish")
"""


def test_console_lines_and_the_terminal_unchanged(tmp_path: Path) -> None:
    done = run_script(tmp_path, PROGRAM)
    assert done.returncode == 0, done.stderr.decode()
    lines = console_lines(latest(tmp_path))
    got = [(x["stream"], x["text"]) for x in lines]
    for want in [
        ("stdout", "from print"),
        ("stderr", "from sys.stderr"),
        ("stdout", "from os.write"),
        ("stdout", "from a child process"),
        ("stdout", "training 100%"),
        ("stdout", "unicode: é ✓"),
        ("stdout", "with flush"),
    ]:
        assert want in got, (want, got)
    # The progress bar is one line in its final state, not 101 lines.
    assert [t for _, t in got if t.startswith("training")] == ["training 100%"]
    assert ("stdout", "after finish") not in got  # finish() gives the streams back
    stdout_order = [t for s, t in got if s == "stdout"]
    assert stdout_order.index("from print") < stdout_order.index("from os.write")
    # The program's own output is what it was without gradexp's capture.
    plain = run_script(tmp_path, PROGRAM, env={"GRADEXP_CONSOLE": "off"})
    assert done.stdout == plain.stdout
    assert b"from sys.stderr\n" in done.stderr and b"from sys.stderr\n" in plain.stderr
    assert not console_lines(latest(tmp_path))  # console off: no console records
    # Console records come before the finish record.
    records = list(RunFile(latest(tmp_path)))
    assert records[-1].type == "finish"


def test_a_crash_keeps_what_was_printed_before_it(tmp_path: Path) -> None:
    marker = tmp_path / "printed"
    script = tmp_path / "prog.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time, gradexp
            gradexp.init(project="crash", settings={{"system_metrics_interval": 0}})
            print("a whole line")
            print("half a li", end="", flush=True)
            time.sleep(1.0)  # the promise is ~200 ms; a loaded CI machine gets room
            open({str(marker)!r}, "w").close()
            time.sleep(60)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the program never printed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    texts = [x["text"] for x in console_lines(latest(tmp_path))]
    assert texts == ["a whole line", "half a li"]


def test_a_terminal_stays_a_terminal(tmp_path: Path) -> None:
    """Under a terminal, the program still sees one (isatty, fileno, encoding), and the
    terminal gets the same bytes as without the capture."""
    body = """
        import os, sys
        import gradexp
        before = (sys.stdout.isatty(), os.isatty(1), os.isatty(2), sys.stdout.fileno(),
                  sys.stdout.encoding, os.get_terminal_size(1))
        gradexp.init(project="tty", settings={"system_metrics_interval": 0, "quiet": True})
        after = (sys.stdout.isatty(), os.isatty(1), os.isatty(2), sys.stdout.fileno(),
                 sys.stdout.encoding, os.get_terminal_size(1))
        print("same:", before == after, after[:3])
        print("colour: \\x1b[31mred\\x1b[0m")
        gradexp.finish()
        print("restored:", os.isatty(1))
    """
    import pty

    def under_tty(env: dict[str, str]) -> bytes:
        (tmp_path / "prog.py").write_text(textwrap.dedent(body))
        master, slave = pty.openpty()
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 132, 0, 0))
        proc = subprocess.Popen(
            [sys.executable, "prog.py"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=slave,
            stderr=slave,
            stdin=subprocess.DEVNULL,
        )
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=60)
        os.close(master)
        return out

    captured = under_tty({})
    assert b"same: True (True, True, True)" in captured, captured
    assert b"restored: True" in captured
    # The same bytes, line for line (stdout and stderr travel through pipes of their
    # own, so lines of the two written within microseconds may swap places).
    assert sorted(under_tty({"GRADEXP_CONSOLE": "off"}).splitlines()) == sorted(
        captured.splitlines()
    )
    texts = [x["text"] for x in console_lines(latest(tmp_path)) if "colour" in x["text"]]
    assert texts == []  # the last run had the console off; the one before kept it:
    runs = [r.resolve() for r in (tmp_path / "gradexp").glob("run-*")]
    assert len(runs) == 2
    # (Both runs may start within one second: their folders' names do not order them.)
    (earlier,) = [r for r in runs if r != latest(tmp_path)]
    first = [x["text"] for x in console_lines(earlier)]
    assert "colour: \x1b[31mred\x1b[0m" in first and any(t.startswith("same: True") for t in first)


def test_stop_returns_once_pending_output_is_drained(tmp_path: Path) -> None:
    """Output still in the pipe when the capture stops is queued, and the reader says so
    (stop() does not run out its timeout): the drain is signalled, never timed out."""
    done = run_script(
        tmp_path,
        """
        import os, sys, threading
        from gradexp.stream.console import ConsoleBuffer
        from gradexp.sdk import console
        buffer = ConsoleBuffer()
        capture = console.start_capture(buffer)
        waited = []
        real_wait = capture.drained.wait
        capture.drained.wait = lambda timeout=None: waited.append(real_wait(timeout)) or waited[-1]
        for i in range(3):  # several reads' worth, written just before stop()
            os.write(1, (b"%d" % i) * 200_000 + b"\\n")
        capture.stop()
        chunks, _ = buffer.take()
        sys.stderr.write(f"{waited} {sum(len(t) for _, _, t in chunks)}\\n")
        """,
    )
    assert done.returncode == 0, done.stderr.decode()
    waited, queued = done.stderr.decode().split("] ")
    assert waited == "[True", done.stderr  # drained, not the timeout (False)
    assert int(queued) == 3 * 200_001


def test_python_level_capture_where_descriptors_cannot_be_used(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        """
        import os, sys
        import gradexp.sdk.console as console
        console._descriptors_usable = lambda: False  # as on Windows
        import gradexp
        stdout = sys.stdout
        gradexp.init(project="py", settings={"system_metrics_interval": 0})
        print("printed", flush=True)
        sys.stderr.write("written\\n")
        os.write(1, b"not seen at this level\\n")
        assert sys.stdout.fileno() == 1 and sys.stdout.encoding == stdout.encoding
        gradexp.finish()
        assert sys.stdout is stdout and "write" not in vars(type(sys.stdout)) or True
        print("after", flush=True)
        """,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.count(b"printed\n") == 1 and b"after\n" in done.stdout
    texts = [(x["stream"], x["text"]) for x in console_lines(latest(tmp_path))]
    assert ("stdout", "printed") in texts and ("stderr", "written") in texts
    assert ("stdout", "not seen at this level") not in texts
    assert ("stdout", "after") not in texts


def test_forked_children_print_into_the_parents_run(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        """
        import os, sys
        import gradexp
        gradexp.init(project="fork", settings={"system_metrics_interval": 0.2})
        print("parent before", flush=True)
        pid = os.fork()
        if pid == 0:
            print("in the child", flush=True)
            gradexp.log({"ignored": 1})  # warns once: the run is the parent's
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent after", flush=True)
        gradexp.finish()
        """,
    )
    assert done.returncode == 0, done.stderr.decode()
    lines = console_lines(latest(tmp_path))
    stdout = [x["text"] for x in lines if x["stream"] == "stdout"]
    assert stdout == ["parent before", "in the child", "parent after"], lines
    assert any("was forked from" in x["text"] for x in lines if x["stream"] == "stderr")


def test_a_fork_right_after_init_does_not_hang(tmp_path: Path) -> None:
    """The background work imports its modules with forks held off: a child forked while
    they load (a DataLoader starting its workers) can import and warn."""
    done = run_script(
        tmp_path,
        """
        import os
        import gradexp
        for i in range(5):
            gradexp.init(project="fork")
            pid = os.fork()
            if pid == 0:
                gradexp.log({"ignored": 1})  # shows a warning: imports in the child
                import json, csv, zipfile, tokenize, email.parser
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert status == 0
            gradexp.finish()
        print("done")
        """,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.endswith(b"done\n")


def test_console_off_and_disabled_mode_touch_nothing(tmp_path: Path) -> None:
    done = run_script(
        tmp_path,
        """
        import os, sys
        import gradexp
        link = os.readlink("/proc/self/fd/1")
        gradexp.init(project="off", console="off")
        assert os.readlink("/proc/self/fd/1") == link
        print("one")
        gradexp.finish()
        gradexp.init(project="off", mode="disabled")
        assert os.readlink("/proc/self/fd/1") == link
        gradexp.finish()
        run = gradexp.init(project="off", settings={"system_metrics_interval": 0})
        assert os.readlink("/proc/self/fd/1") != link
        gradexp.finish()
        assert os.readlink("/proc/self/fd/1") == link  # restored at finish
        print("done")
        """,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"one\ndone\n"


@pytest.mark.slow
def test_system_metrics_are_plausible(tmp_path: Path) -> None:
    """A busy loop shows about one core; 200 MB allocated show in the process's RSS."""
    done = run_script(
        tmp_path,
        """
        import time
        import gradexp
        gradexp.init(project="sys", settings={"system_metrics_interval": 0.5, "console": "off"})
        from gradexp.runfile import RunFile
        import os
        def samples():  # the stream thread makes the run file: on a busy machine, later
            if not os.path.exists("gradexp/latest-run"):
                return 0
            return sum(r.type == "system" for r in RunFile("gradexp/latest-run"))
        # Busy for 2.5 s and until two samples were taken while busy (the first holds no
        # CPU share): the sampler's first imports can take longer on a loaded machine.
        t0, c0 = time.time(), time.process_time()
        end = t0 + 2.5
        while True:
            now = time.time()
            if now >= end:
                if samples() >= 2 or now > t0 + 60:
                    break
                end = now + 0.25
        print((time.process_time() - c0) / (time.time() - t0) * 100)  # the share it got
        gradexp.log({"phase": 1})
        block = bytearray(200 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1  # touch every page: resident, not just reserved
        time.sleep(1.6)
        gradexp.log({"phase": 2})
        gradexp.finish()
        """,
    )
    assert done.returncode == 0, done.stderr.decode()
    records = list(RunFile(latest(tmp_path)))
    phase2 = next(r.seq for r in records if r.type == "history" and r.values == {"phase": 1})
    samples = [(r.seq, r.data["values"]) for r in records if r.type == "system"]
    busy = [v["cpu.percent"] for seq, v in samples if seq < phase2 and "cpu.percent" in v]
    after = [v["memory.rss_mb"] for seq, v in samples if seq > phase2]
    before = [v["memory.rss_mb"] for seq, v in samples if seq < phase2]
    assert busy and after and before, samples
    # One busy thread: near 100% of a core on an idle machine; on a shared one, near the
    # share of a core the loop actually got (the program measured it with process_time).
    got = float(done.stdout.decode().split()[-1])
    assert 0.6 * got <= max(busy) <= 150, (got, busy)
    assert max(after) - min(before) >= 180, (before, after)
    keys = set(samples[-1][1])
    for key in ("cpu.machine_percent", "memory.machine_available_mb", "proc.open_fds",
                "disk.used_percent", "network.recv_mb"):  # fmt: skip
        assert key in keys, keys
    assert not any(k.startswith("gpu.") for k in keys)  # no GPU here: not a word about GPUs
    times = [r.data["time"] for r in records if r.type == "system"]
    assert times == sorted(times)


def make_repo(path: Path) -> None:
    """A git repository with a remote whose URL holds credentials, one commit, and an
    uncommitted change holding a token."""

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)

    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    git("remote", "add", "origin", "https://ada:s3cretpass@git.example.com/team/model.git")
    (path / "train.py").write_text("lr = 0.1\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    (path / "train.py").write_text(
        "lr = 0.2\nHF_TOKEN = 'hf_abcdefghijklmnopqrstuvwxyz012345'\napi_key = 'plainsecret99'\n"
    )


ENV_PROGRAM = """
    import gradexp
    gradexp.init(project="env", settings={"system_metrics_interval": 0})
    gradexp.log({"x": 1})
    gradexp.finish()
"""
SECRET_ARGS = [
    "--lr",
    "0.1",
    "--api-key=gx_0123456789abcdefghijABCDEFGHIJ",
    "--password",
    "hunter22",
]
SECRETS = [
    b"s3cretpass",
    b"hunter22",
    b"gx_0123456789abcdefghij",
    b"hf_abcdefghijklmnop",
    b"plainsecret99",
]


def check_environment(env: dict[str, Any], repo: Path) -> None:
    """What an environment record of ENV_PROGRAM run in ``repo`` must hold."""
    assert env["program"] == str(repo / "prog.py")
    assert env["args"] == ["--lr", "0.1", "--api-key=[redacted]", "--password", "[redacted]"]
    assert env["cwd"] == str(repo)
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["python"]["executable"] == sys.executable
    assert env["cpu_count"] == os.cpu_count() and env["host"] and env["os"]
    assert "gpus" not in env  # no NVML here
    git = env["git"]
    assert git["remote"] == "https://git.example.com/team/model.git"
    assert git["branch"] == "main" and len(git["commit"]) == 40 and git["dirty"] is True


def test_environment_in_a_git_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    done = run_script(repo, ENV_PROGRAM, args=SECRET_ARGS)
    assert done.returncode == 0, done.stderr.decode()
    run_dir = latest(tmp_path)
    (env_rec,) = file_records(run_dir, "environment")
    check_environment(env_rec.data["environment"], repo)
    files = {r.data["path"] for r in file_records(run_dir, "file")}
    assert files == {"requirements.txt", "diff.patch"}
    diff = (run_dir / "files" / "diff.patch").read_text()
    assert "+lr = 0.2" in diff and "[redacted]" in diff
    reqs = (run_dir / "files" / "requirements.txt").read_text().splitlines()
    assert any(line.lower().startswith("psutil==") for line in reqs)
    # No secret anywhere in what the run wrote.
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret not in data, (path, secret)


def test_environment_parts_can_be_turned_off(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    done = run_script(
        repo,
        ENV_PROGRAM,
        env={"GRADEXP_GIT": "0", "GRADEXP_REQUIREMENTS": "0"},
    )
    assert done.returncode == 0, done.stderr.decode()
    (env_rec,) = file_records(latest(tmp_path), "environment")
    assert "git" not in env_rec.data["environment"] and "python" in env_rec.data["environment"]
    assert not file_records(latest(tmp_path), "file")
    done = run_script(repo, ENV_PROGRAM, env={"GRADEXP_ENVIRONMENT": "0", "GRADEXP_GIT": "0",
                                              "GRADEXP_REQUIREMENTS": "0"})  # fmt: skip
    assert done.returncode == 0
    assert not file_records(latest(tmp_path), "environment")


def test_redaction_rules() -> None:
    from gradexp.stream.environment import redact_args, redact_text

    assert redact_args(["--token", "abc", "--lr=0.1", "--secret-key=x", "-v"]) == [
        "--token", "[redacted]", "--lr=0.1", "--secret-key=[redacted]", "-v"
    ]  # fmt: skip
    assert redact_text("git clone https://u:p@h.example/x") == "git clone https://h.example/x"
    assert "ghp_" not in redact_text("token ghp_abcdefghijklmnopqrstuvwxyz0123")
    assert redact_text('PASSWORD="abc def"') == 'PASSWORD="[redacted]"'


@pytest.mark.parametrize("value", ["-1", "nan", "often"])
def test_bad_system_metrics_interval_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradexp

    monkeypatch.setenv("GRADEXP_SYSTEM_METRICS_INTERVAL", value)
    with pytest.raises(gradexp.GradexpError, match="system_metrics_interval"):
        gradexp.init(project="bad")


def test_bad_console_mode_is_refused() -> None:
    import gradexp

    with pytest.raises(gradexp.GradexpError, match="console="):
        gradexp.init(project="bad", console="loud")


ONLINE_PROGRAM = """
    import subprocess, sys, time
    import gradexp
    gradexp.init(project="machine", settings={"system_metrics_interval": 0.3})
    print("hello from the program")
    sys.stderr.write("a warning\\n")
    subprocess.run([sys.executable, "-c", "print('child says hi')"], check=True)
    time.sleep(2.5)  # (a busy loop here would slow the stream thread's start: the GIL)
    gradexp.log({"loss": 0.1})
    gradexp.finish()
"""


def check_server_side(api: Any, run_id: str, repo: Path) -> None:
    """What the server holds for ONLINE_PROGRAM run in ``repo`` (Api reads)."""
    run = api.run(run_id)
    assert run.state == "finished"
    metrics = run.system_metrics()
    assert set(metrics["cpu.percent"]) >= {"time", "value"}
    assert len(metrics["cpu.percent"]["value"]) >= 2
    assert metrics["cpu.percent"]["time"] == sorted(metrics["cpu.percent"]["time"])
    assert max(metrics["memory.rss_mb"]["value"]) > 10
    logs = run.logs()
    assert {(x["stream"], x["text"]) for x in logs} >= {
        ("stdout", "hello from the program"),
        ("stderr", "a warning"),
        ("stdout", "child says hi"),
    }
    assert all(set(x) >= {"time", "stream", "text", "id"} for x in logs)
    assert [x["text"] for x in run.logs(stream="stderr", q="WARN")] == ["a warning"]
    env = run.environment
    assert env is not None
    check_environment(env, repo)
    paths = {f["path"] for f in run.files()}
    assert {"requirements.txt", "diff.patch"} <= paths
    diff = api._get_bytes(f"/runs/{run_id}/files/diff.patch")
    assert b"+lr = 0.2" in diff and not any(secret in diff for secret in SECRETS)


def test_online_run_records_the_machine(tmp_path: Path, online: Any) -> None:
    import gradexp

    repo = tmp_path / "repo"
    make_repo(repo)
    done = run_script(repo, ONLINE_PROGRAM, args=SECRET_ARGS)
    assert done.returncode == 0, done.stderr.decode()
    run_id = latest(tmp_path).name.rsplit("-", 1)[1]
    check_server_side(gradexp.Api(), run_id, repo)


def test_offline_run_then_sync(tmp_path: Path, online: Any) -> None:
    import gradexp

    from .conftest import gradexp_cli

    repo = tmp_path / "repo"
    make_repo(repo)
    done = run_script(repo, ONLINE_PROGRAM, args=SECRET_ARGS, env={"GRADEXP_MODE": "offline"})
    assert done.returncode == 0, done.stderr.decode()
    result = gradexp_cli("sync", str(latest(tmp_path)))
    assert result.returncode == 0, result.stderr
    run_id = latest(tmp_path).name.rsplit("-", 1)[1]
    check_server_side(gradexp.Api(), run_id, repo)
