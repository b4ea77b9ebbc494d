"""The module-level API: ``gradexp.init()``, ``log()``, ``alog()``, ``flush()``,
``aflush()``, ``finish()``, and the current run they act on.

``init()`` runs on the caller's thread and never waits on the network: it resolves the
settings, makes the run id, creates the run directory (the one piece of file I/O here,
so a bad directory fails at once), and hands the run to the stream thread. Only
``resume=`` waits (bounded) for the server's last step.

The current run is process-wide state: see :class:`CurrentRun` (and its fork behaviour).
"""

from __future__ import annotations

import os
import sys
import threading
import time

from gradexp.core.output import say, set_quiet
from gradexp.core.settings import Settings, resolve_settings
from gradexp.errors import GradexpError
from gradexp.protocol.names import project_name_problem, run_id_problem
from gradexp.protocol.values import PLAIN_TYPES
from gradexp.sdk import hooks
from gradexp.sdk.config import as_config_dict
from gradexp.sdk.distributed import RANKS_MODES, job_run_id, writer_from_env
from gradexp.sdk.entity import check_entity, split_project
from gradexp.sdk.ids import random_id, random_name
from gradexp.sdk.run import Run
from gradexp.sdk.run_fields import check_field
from gradexp.stream.channel import ACTIVE, FINISHED
from gradexp.stream.thread import stream_handle

TYPE_CHECKING = False  # not typing's: init() imports this module, and typing costs ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from gradexp.sdk.metrics import Metric
    from gradexp.stream.channel import Channel

__all__ = [
    "aflush",
    "alert",
    "alog",
    "current_run",
    "define_metric",
    "finish",
    "flush",
    "init",
    "log",
    "log_artifact",
    "save",
    "use_artifact",
]

_time = time.time
_PLAIN_SUPERSET = PLAIN_TYPES.issuperset  # see Run.log


class CurrentRun:
    """The run the module-level functions act on (one per process).

    ``run`` is read without a lock (a plain attribute read is atomic); ``init()`` and
    ``finish()``, on any threads, replace it under ``lock`` so they agree. ``channel`` is
    the current run's channel, kept beside it for ``log()``'s fast path, which then looks
    up no more attributes than ``Run.log`` does. ``said_reinit``: the note that ``init()``
    finishes the previous run is printed once per process.

    Fork: in a forked child (a DataLoader worker, multiprocessing with fork ...) the
    parent's lock may have been held by a thread that does not exist there, so
    :meth:`after_fork_in_child` (registered with ``os.register_at_fork`` when this module
    is imported) gives it a new one. The inherited run stays current but is marked
    forked (``Channel.after_fork_in_child``): its ``log()`` warns once and does nothing,
    instead of raising "call gradexp.init() first" inside a DataLoader worker, and
    ``gradexp.init()`` in the child starts a run of its own.
    """

    __slots__ = ("channel", "lock", "run", "said_reinit")

    def __init__(self) -> None:
        self.run: Run | None = None
        self.channel: Channel | None = None
        self.lock = threading.Lock()
        self.said_reinit = False

    def set(self, run: Run) -> None:
        """Make ``run`` the current run."""
        with self.lock:
            self.channel = run._channel
            self.run = run

    def forget(self, run: Run) -> None:
        """``run`` finished: no current run any more (unless another one is current)."""
        with self.lock:
            if self.run is run:
                self.run = None
                self.channel = None

    def after_fork_in_child(self) -> None:
        """In a forked child: a new lock, and the inherited run marked forked."""
        self.lock = threading.Lock()
        run = self.run
        if run is not None:
            run._channel.after_fork_in_child()


_current = CurrentRun()
if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_current.after_fork_in_child)


def current_run() -> Run | None:
    """The run module-level functions act on (None before init() or after finish())."""
    return _current.run


def _require_run(what: str) -> Run:
    run = _current.run
    if run is None:
        raise GradexpError(
            f"gradexp.{what}() was called before gradexp.init(): call gradexp.init() "
            "first to start a run."
        )
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
    """Log a mapping of values to the current run (see :meth:`Run.log`)."""
    channel = _current.channel
    if channel is None:
        _require_run("log")
        return
    # The fast path of Run.log(), inlined: one Python call less for the common case.
    if (
        type(data) is dict
        and (step is None or (type(step) is int and step >= 0))
        and commit
        and channel.state is ACTIVE
        and _PLAIN_SUPERSET(map(type, data.values()))
    ):
        queue = channel.queue
        queue.append((_time(), data.copy()) if step is None else (_time(), data.copy(), step))
        if len(queue) > channel.check_at and channel.over(len(data)):
            channel.wait_for_room(len(data))
        return
    run = _current.run
    # None: another thread finished the run just now; this call is dropped with it.
    if run is not None and run._enqueue(data, step, commit):
        run._channel.wait_for_room()


async def alog(data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
    """``await gradexp.alog({...})``: log() for async code (see :meth:`Run.alog`)."""
    await _require_run("alog").alog(data, step=step, commit=commit)


def flush(timeout: float | None = None) -> bool:
    """Flush the current run (see :meth:`Run.flush`)."""
    return _require_run("flush").flush(timeout)


async def aflush(timeout: float | None = None) -> bool:
    """Flush the current run from async code (see :meth:`Run.aflush`)."""
    return await _require_run("aflush").aflush(timeout)


def finish(exit_code: int = 0, timeout: float | None = None) -> None:
    """Finish the current run (see :meth:`Run.finish`); a no-op without one."""
    run = _current.run
    if run is not None:
        run.finish(exit_code=exit_code, timeout=timeout)


def define_metric(
    name: str,
    step_metric: str | None = None,
    summary: str | list[str] | tuple[str, ...] | None = None,
    goal: str | None = None,
    hidden: bool = False,
) -> Metric:
    """Define how a key is charted and summarised in the current run (see
    :meth:`Run.define_metric`)."""
    return _require_run("define_metric").define_metric(name, step_metric, summary, goal, hidden)


def save(
    glob_or_path: str | os.PathLike[str],
    base_path: str | os.PathLike[str] | None = None,
    policy: str = "live",
) -> list[str]:
    """Save files of the current run (see :meth:`Run.save`)."""
    return _require_run("save").save(glob_or_path, base_path=base_path, policy=policy)


def alert(title: str, text: str, level: Any = "INFO", wait_duration: Any = None) -> None:
    """Send an alert about the current run (see :meth:`Run.alert`)."""
    _require_run("alert").alert(title, text, level=level, wait_duration=wait_duration)


def log_artifact(
    artifact: Any, aliases: Any = None, *, name: str | None = None, type: str | None = None
) -> Any:
    """Log an artifact from the current run (see :meth:`Run.log_artifact`)."""
    return _require_run("log_artifact").log_artifact(artifact, aliases, name=name, type=type)


def use_artifact(ref: Any, type: str | None = None) -> Any:
    """Record that the current run uses an artifact and return it (see
    :meth:`Run.use_artifact`)."""
    return _require_run("use_artifact").use_artifact(ref, type)


def init(
    project: str | None = None,
    *,
    name: str | None = None,
    id: str | None = None,
    config: Any = None,
    tags: list[str] | tuple[str, ...] | None = None,
    notes: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    mode: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    resume: bool | str | None = None,
    reinit: bool | str | None = None,
    save_code: bool = False,
    entity: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
    console: str | None = None,
    ranks: str = "all",
) -> Run:
    """Start a run and make it the current one.

    Never waits on the network: the run id is made here and the stream thread creates
    the run on the server. Only ``resume=`` waits (bounded) for the server's answer.
    ``resume``: ``True``/``"must"`` continues run ``id`` (an error if it does not exist),
    ``"allow"`` continues it if it exists and starts it otherwise, ``"never"`` refuses an
    id that already exists. ``reinit`` says what happens to a run that is still active:
    finished first (the default, said once; ``True`` or ``"finish_previous"``: silently),
    or returned as it is (``False`` or ``"return_previous"``). ``save_code=True`` saves
    the main script as the run file ``code/<name>``. ``entity`` (or
    ``project="TEAM/NAME"``, or ``GRADEXP_ENTITY``) logs to a team's project, when the
    key's user is a member or admin of the team (checked here when online). ``console``: ``"auto"`` (the default)
    tees stdout and stderr into the run, ``"off"`` does not (docs/sdk.md, "Console
    output"). ``ranks``: under a launcher of several processes (``torchrun``: ``RANK``
    and ``WORLD_SIZE`` set), ``"all"`` (the default) makes every rank a writer of one
    run for the job, ``"zero"`` logs rank 0 only and makes the other ranks' runs
    disabled (docs/distributed.md). Use as a context manager to finish on exit.
    """
    if ranks not in RANKS_MODES:
        raise GradexpError(f"ranks={ranks!r}: use 'all' or 'zero'.")
    writer = writer_from_env()
    reinit_mode = _REINIT.get(reinit) if isinstance(reinit, (bool, str, type(None))) else None
    if reinit_mode is None:
        raise GradexpError(
            f"reinit={reinit!r}: use True or 'finish_previous' (finish the active run "
            "first), or False or 'return_previous' (keep it and return it)."
        )
    previous = _current.run
    if previous is not None:
        if reinit_mode == "return_previous":
            return previous
        if reinit_mode == "default" and not _current.said_reinit:
            _current.said_reinit = True
            say(f"init() was called again: finishing run {previous.id} first.")
        previous.finish()

    overrides: dict[str, Any] = {}
    if isinstance(settings, Settings):
        overrides.update(settings.as_dict())
    elif settings is not None:
        overrides.update(settings)
    explicit = {
        "project": project,
        "mode": mode,
        "dir": os.fspath(dir) if dir is not None else None,
        "run_id": id,
        "base_url": base_url,
        "api_key": api_key,
        "console": console,
    }
    overrides.update({k: v for k, v in explicit.items() if v is not None})
    if writer is not None and writer.rank != 0 and ranks == "zero":
        overrides["mode"] = "disabled"  # only rank 0 logs
    resolved = resolve_settings(**overrides)
    set_quiet(resolved.quiet)  # this run's choice: a quiet run before it does not carry over
    if writer is not None and (resolved.mode == "disabled" or ranks == "zero"):
        writer = None  # a run of its own (rank 0 of "zero"), or none at all
    run_id = resolved.run_id
    if writer is not None and run_id is None:
        run_id = job_run_id(resolved.project)
        if run_id is None:
            if writer.rank == 0:
                say(
                    f"rank 0 of {writer.world_size}: nothing the launcher set names this job "
                    "alike on every node, so each rank logs a run of its own; set "
                    "GRADEXP_RUN_ID to one id for the whole job to make them one run"
                )
            writer = None
    run_id = run_id or random_id()
    problem = run_id_problem(run_id) or project_name_problem(
        resolved.project.partition("/")[2] or resolved.project
    )
    if problem is not None:
        raise GradexpError(f"{problem}.")
    resume_mode: str | None = {True: "must", False: None, None: None}.get(resume, resume)  # type: ignore[arg-type]
    if resume_mode not in (None, "must", "allow", "never"):
        raise GradexpError(f"resume={resume!r}: use True, 'must', 'allow' or 'never'.")
    if resume_mode == "must" and resolved.run_id is None:
        raise GradexpError("resume= needs the id of the run to continue: init(id=..., resume=True)")
    if resume_mode is not None and resolved.run_id is None:
        resume_mode = None  # 'allow' or 'never' a new id: nothing to continue, nothing to refuse
    run_name = check_field("name", name) if name else random_name()  # "" too: scripts pass it
    fields = {
        "notes": check_field("notes", notes),
        "group": check_field("group", group),
        "job_type": check_field("job_type", job_type),
        "tags": check_field("tags", tags),
    }
    config_dict = as_config_dict(config)
    team = None
    if resolved.mode != "disabled":
        project_name, team = split_project(resolved.project, entity or resolved.entity)
        resolved = resolved.with_(project=project_name)
    if team is not None and resolved.mode == "online":
        assert resolved.base_url is not None and resolved.api_key is not None
        check_entity(resolved.base_url, resolved.api_key, team)

    run_dir: str | None = None
    started_at = time.time()
    if resolved.mode != "disabled":
        stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(started_at))
        root = os.path.join(resolved.dir, "gradexp")
        # A distributed run's other writers keep their own run file beside rank 0's.
        tail = f".rank{writer.rank}" if writer is not None and writer.rank else ""
        run_dir = os.path.join(root, f"run-{stamp}-{run_id}{tail}")
        suffix = 1
        while os.path.exists(run_dir):  # the same id twice in one second (resume, tests)
            suffix += 1
            run_dir = os.path.join(root, f"run-{stamp}-{run_id}{tail}.{suffix}")
        # The one piece of file I/O on the caller's thread: a bad dir fails here, at once,
        # with a clear message, instead of later on the stream thread.
        try:
            os.makedirs(run_dir)
        except OSError as exc:
            raise GradexpError(
                f"cannot create the run directory {run_dir} ({exc.strerror}); pass "
                "dir= or set GRADEXP_DIR to a writable directory."
            ) from None
    hostname, system, machine = _host()
    host: dict[str, Any] = {
        "hostname": hostname,
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "platform": f"{system}-{machine}",
    }
    program = _program()
    if program is not None:
        host["program"] = program[0]
    meta: dict[str, Any] = {
        "id": run_id,
        "project": resolved.project,
        "entity": team,
        "name": run_name,
        "config": config_dict,
        **fields,
        "attempt": random_id(),
        "host": host,
        "started_at": started_at,
        "resume": resume_mode in ("must", "allow"),
        "dir": run_dir,
        "mode": resolved.mode,
        "base_url": resolved.base_url,
    }
    if writer is not None:
        meta["writer"] = writer.as_meta()
    if save_code and program is not None:
        meta["code"] = program[1]  # the stream saves it as the run file code/<name>
    run = Run(
        resolved,
        run_id=run_id,
        name=run_name,
        run_dir=run_dir,
        meta=meta,
        config=config_dict,
        resume=bool(resume_mode),
        on_finish=_current.forget,
    )
    if resolved.mode != "disabled":
        run._channel.resume_mode = resume_mode
        hooks.install(current_run)
        hooks.install_sigterm_handler()
        stream_handle().start_run(run._channel)
        if resume_mode:
            _wait_resumed(run, resume_mode)
    _current.set(run)
    if resolved.mode == "offline" and not resolved.quiet:
        say(f"logging offline to {run_dir} (upload later with `gradexp sync`)")
    elif resolved.mode == "online":
        say(f"run {run_name} ({run_id}): {run.url}")
    if "IPython" in sys.modules:  # only then can this be a notebook; never import IPython
        from gradexp.sdk.jupyter import display_run

        display_run(run)
    if resolved.mode != "disabled" and resolved.console == "auto":
        run._start_console()  # last: the run's log begins with the program's own output
    return run


# reinit= -> what init() does with a run that is still active
_REINIT: dict[Any, str] = {
    None: "default",
    "default": "default",
    True: "finish_previous",
    "finish_previous": "finish_previous",
    False: "return_previous",
    "return_previous": "return_previous",
}


def _program() -> tuple[str, str] | None:
    """The main script: (its path relative to the working directory when inside it, its
    absolute path); None in a notebook, a REPL or ``python -c``."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not os.path.isfile(path):
        return None
    full = os.path.abspath(path)
    try:
        shown = os.path.relpath(full)
    except ValueError:  # another drive (Windows)
        shown = full
    return (full if shown.startswith("..") else shown), full


def _host() -> tuple[str, str, str]:
    """(hostname, system, machine), cheaply: os.uname where it exists (not on Windows)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        u = uname()
        return u.nodename, u.sysname, u.machine
    import platform

    return platform.node(), platform.system(), platform.machine()


def _wait_resumed(run: Run, resume_mode: str) -> None:
    """Resuming needs the last step and sequence: wait (bounded) for the stream to learn them."""
    channel = run._channel
    limit = 30.0
    if not channel.started.wait(limit):
        channel.state = FINISHED
        what = "check" if resume_mode == "never" else "resume"
        raise GradexpError(
            f"could not {what} run {run.id}: no answer from {run.settings.base_url} within "
            f"{limit:.0f} s. Check the server (gradexp status), or start a new run."
        )
    if channel.start_error is not None:
        channel.state = FINISHED
        raise GradexpError(channel.start_error)
    if channel.resume_step >= 0:
        say(f"resuming run {run.id} at step {channel.resume_step + 1}")
