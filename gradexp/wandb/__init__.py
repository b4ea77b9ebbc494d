"""``import gradexp.wandb as wandb``: run a script written for wandb against gradexp.

A thin layer shaped like wandb's module API as training scripts use it; everything maps
onto gradexp's own API (``gradexp.init``, ``log``, ``Run``, ``Image``...), which keeps
its own names. What has no meaning here (``anonymous=``, ``sync_tensorboard=``...) is
accepted, said once, and ignored; ``docs/migrating-from-wandb.md`` has the table.

Environment: the ``WANDB_*`` variables scripts and launchers set are read as defaults
(``WANDB_PROJECT``, ``WANDB_MODE``, ``WANDB_DIR``, ``WANDB_NAME``, ``WANDB_RUN_ID``,
``WANDB_RUN_GROUP``, ``WANDB_JOB_TYPE``, ``WANDB_TAGS``, ``WANDB_NOTES``,
``WANDB_DISABLED``, ``WANDB_ENTITY``, ``WANDB_RESUME``, ``WANDB_SILENT``); an argument
wins over them, and so does gradexp's own variable for the same setting (``GRADEXP_MODE``
over ``WANDB_MODE``...). ``WANDB_API_KEY`` and ``WANDB_BASE_URL`` are not read: they
name wandb's service and its credentials, which must never be sent to a gradexp server.

Importing this module costs what ``import gradexp`` does: the SDK loads on first use.
"""

from __future__ import annotations

import enum
import os
import sys

from gradexp.errors import GradexpError, GradexpWarning

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from gradexp.sdk.metrics import Metric
    from gradexp.sdk.run import Run
    from gradexp.sdk.values.histogram import Histogram as _Histogram
    from gradexp.sdk.values.image import Image as _Image
    from gradexp.sdk.values.table import Table as _Table

__all__ = [
    "AlertLevel",
    "Api",
    "Artifact",
    "Error",
    "Histogram",
    "Image",
    "Settings",
    "Table",
    "agent",
    "alert",
    "config",
    "define_metric",
    "finish",
    "init",
    "log",
    "log_artifact",
    "login",
    "run",
    "save",
    "summary",
    "sweep",
    "termerror",
    "termlog",
    "termwarn",
    "unwatch",
    "use_artifact",
    "watch",
]

#: ``except wandb.Error`` catches what gradexp raises.
Error = GradexpError

_said: set[str] = set()  # the once-only notes already given


def _once(what: str, message: str) -> None:
    """A GradexpWarning, the first time only, pointing at the script's line that caused it."""
    if what not in _said:
        _said.add(what)
        import warnings

        # the first frame outside gradexp: the script's call
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        frame, level = sys._getframe(1), 2  # stacklevel 2: the frame that called _once
        while frame is not None and frame.f_code.co_filename.startswith(package):
            frame, level = frame.f_back, level + 1  # type: ignore[assignment]
        warnings.warn(f"gradexp: {message}", GradexpWarning, stacklevel=level)


class AlertLevel(str, enum.Enum):
    """The levels of :func:`alert`."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


class Settings(dict[str, "Any"]):
    """``wandb.Settings(...)``: its fields, for ``init(settings=...)`` (see :func:`init`)."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(**fields)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


# --- the environment ---------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on")


def _env(name: str, gradexp_name: str | None = None) -> str | None:
    """``WANDB_<name>`` unless gradexp's own variable for the same setting is set."""
    if gradexp_name is not None and os.environ.get(gradexp_name):
        return None
    value = os.environ.get(f"WANDB_{name}", "").strip()
    return value or None


def _mode(mode: str | None) -> str | None:
    """wandb's modes as gradexp's: ``dryrun`` is offline, ``run`` online."""
    if mode is None:
        return None
    return {"dryrun": "offline", "run": "online", "shared": "online"}.get(mode, mode)


def _team_or_none(entity: str, args: dict[str, Any]) -> str | None:
    """A wandb entity is usually a wandb account or team: log to the gradexp team of that
    name when the key's user may, else to the user's own project (said once)."""
    from gradexp.core.settings import resolve_settings
    from gradexp.errors import GradexpError
    from gradexp.sdk.entity import check_entity

    settings = resolve_settings(mode=args.get("mode"), base_url=args.get("base_url"))
    if settings.mode == "disabled":
        return None
    if settings.mode != "online" or settings.base_url is None or settings.api_key is None:
        # Not checkable now, and a wandb entity is most often a wandb account: a sync
        # refused later would help nobody. gradexp's own project="TEAM/NAME" is checked.
        _once(
            f"entity:{entity}",
            f"entity {entity!r} is ignored offline: runs go to the API key's user (log to "
            'a team offline with project="TEAM/NAME").',
        )
        return None
    try:
        check_entity(settings.base_url, settings.api_key, entity)
    except GradexpError:
        _once(
            f"entity:{entity}",
            f"entity {entity!r} is not a team you log to on this server: runs go to the API "
            "key's user.",
        )
        return None
    return entity


def _project(name: str | None) -> str | None:
    """A project name gradexp accepts: characters it does not allow become '-'."""
    if name is None:
        return None
    from gradexp.protocol.names import project_name_problem

    if project_name_problem(name) is None:
        return name
    import re

    fixed = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:128] or "default"
    _once(
        f"project:{name}",
        f"project name {name!r} has characters gradexp does not allow in names; "
        f"logging to project {fixed!r}.",
    )
    return fixed


# --- init ----------------------------------------------------------------------------------

#: init() keywords with no meaning in gradexp: accepted, said once, ignored.
IGNORED = {
    "anonymous": "gradexp has no anonymous runs; a run belongs to the API key's user",
    "force": "gradexp never asks to log in while a script runs",
    "magic": "gradexp does not patch frameworks on import",
    "monitor_gym": "gradexp does not record gym videos",
    "sync_tensorboard": "gradexp does not read TensorBoard event files",
    "tensorboard": "gradexp does not read TensorBoard event files",
}

# wandb.Settings fields gradexp takes, as init() arguments (the rest is ignored).
_SETTINGS = {
    "mode": "mode",
    "project": "project",
    "entity": "entity",
    "run_id": "id",
    "run_name": "name",
    "run_group": "group",
    "run_job_type": "job_type",
    "run_tags": "tags",
    "run_notes": "notes",
    "root_dir": "dir",
    "save_code": "save_code",
    "resume": "resume",
    "reinit": "reinit",
}
# wandb.Settings fields about wandb's own process and service: nothing to say about them.
_PLUMBING = ("start_method", "console", "init_timeout", "show_info")


def init(
    project: str | None = None,
    entity: str | None = None,
    config: Any = None,
    name: str | None = None,
    notes: str | None = None,
    tags: Sequence[str] | None = None,
    group: str | None = None,
    job_type: str | None = None,
    mode: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    id: str | None = None,
    resume: bool | str | None = None,
    reinit: bool | str | None = None,
    config_exclude_keys: Sequence[str] | None = None,
    config_include_keys: Sequence[str] | None = None,
    allow_val_change: bool | None = None,
    save_code: bool | None = None,
    settings: Mapping[str, Any] | None = None,
    anonymous: str | None = None,
    force: bool | None = None,
    magic: Any = None,
    monitor_gym: bool | None = None,
    sync_tensorboard: bool | None = None,
    tensorboard: bool | None = None,
    resume_from: str | None = None,
    fork_from: str | None = None,
) -> Run:
    """Start a run (``gradexp.init``) from the keywords wandb scripts pass.

    ``mode``: ``online``, ``offline``, ``disabled``, and wandb's ``dryrun`` (offline);
    ``online`` without a gradexp server and key configured logs offline instead (said
    once; upload later with ``gradexp sync``). ``resume``: ``True`` and ``"auto"`` mean
    ``"allow"``. ``config_include_keys``/``config_exclude_keys`` filter ``config``.
    ``allow_val_change`` is ignored: config changes are always allowed. The keywords in
    :data:`IGNORED` are said once and ignored; ``resume_from`` and ``fork_from`` raise.
    """
    from gradexp.sdk.facade import init as gx_init

    if resume_from is not None or fork_from is not None:
        raise GradexpError(
            "resume_from= and fork_from= (rewinding or forking a run) are not supported by "
            "gradexp: start a new run, or continue one with id= and resume='allow'."
        )
    passed = {
        "anonymous": anonymous not in (None, "never"),
        "force": bool(force),
        "magic": bool(magic),
        "monitor_gym": bool(monitor_gym),
        "sync_tensorboard": bool(sync_tensorboard),
        "tensorboard": bool(tensorboard),
    }
    for keyword, given in passed.items():
        if given:
            _once(f"init:{keyword}", f"init({keyword}=...) is ignored: {IGNORED[keyword]}.")
    args: dict[str, Any] = {}
    for field, value in (settings or {}).items():
        if field in _SETTINGS:
            args[_SETTINGS[field]] = value
        elif field in ("silent", "quiet"):
            args["quiet"] = bool(value)
        elif not field.startswith(("_", "x_")) and field not in _PLUMBING:
            _once(f"settings:{field}", f"wandb.Settings({field}=...) is ignored by gradexp.")
    explicit = {
        "project": project,
        "entity": entity,
        "name": name,
        "notes": notes,
        "tags": tags,
        "group": group,
        "job_type": job_type,
        "mode": mode,
        "dir": dir,
        "id": id,
        "resume": resume,
        "reinit": reinit,
        "save_code": save_code,
    }
    args.update({k: v for k, v in explicit.items() if v is not None})
    quiet = args.pop("quiet", None)
    if quiet is None and (_env("SILENT", "GRADEXP_QUIET") or "").lower() in _TRUE:
        quiet = True
    # The WANDB_* variables: defaults, below the arguments and gradexp's own variables.
    defaults: dict[str, Any] = {
        "project": _env("PROJECT", "GRADEXP_PROJECT"),
        "dir": _env("DIR", "GRADEXP_DIR"),
        "id": _env("RUN_ID", "GRADEXP_RUN_ID"),
        "name": _env("NAME"),
        "group": _env("RUN_GROUP"),
        "job_type": _env("JOB_TYPE"),
        "notes": _env("NOTES"),
        "entity": _env("ENTITY"),
        "resume": _env("RESUME"),
    }
    tags_env = _env("TAGS")
    if tags_env:
        defaults["tags"] = [t.strip() for t in tags_env.split(",") if t.strip()]
    if not os.environ.get("GRADEXP_MODE"):
        disabled = (_env("DISABLED") or "").lower() in _TRUE
        defaults["mode"] = "disabled" if disabled else _env("MODE")
    for key, value in defaults.items():
        if args.get(key) is None and value is not None:
            args[key] = value

    args["mode"] = _mode(args.get("mode"))
    args["project"] = _project(args.get("project"))
    if args.get("entity") is not None:
        args["entity"] = _team_or_none(str(args["entity"]), args)
    resume_arg = args.get("resume")
    if resume_arg is True or resume_arg in ("auto", "true", "True"):
        args["resume"] = "allow"
    elif resume_arg in ("false", "False"):
        args["resume"] = None
    if args["mode"] == "online" and not _server_known(args):
        _once(
            "offline",
            "mode='online' but no gradexp server and API key are configured (gradexp login, "
            "or GRADEXP_BASE_URL and GRADEXP_API_KEY): logging offline; upload later with "
            "`gradexp sync`.",
        )
        args["mode"] = "offline"
    if config is not None and (config_include_keys or config_exclude_keys):
        from gradexp.sdk.config import as_config_dict

        items = as_config_dict(config)
        if config_include_keys:
            items = {k: v for k, v in items.items() if k in set(config_include_keys)}
        if config_exclude_keys:
            items = {k: v for k, v in items.items() if k not in set(config_exclude_keys)}
        config = items
    if quiet:
        args["settings"] = {"quiet": True}
    del allow_val_change  # changes are always allowed and recorded
    return gx_init(config=config, **args)


def _server_known(args: dict[str, Any]) -> bool:
    """Whether gradexp would find a server and a key for an online run."""
    from gradexp.core.settings import resolve_settings

    try:
        resolved = resolve_settings(
            mode=None, dir=os.fspath(args["dir"]) if args.get("dir") else None
        )
    except GradexpError:
        return False
    return bool(resolved.base_url and resolved.api_key)


# --- the rest of the module API -------------------------------------------------------------


def log(
    data: Mapping[str, Any],
    step: int | None = None,
    commit: bool | None = None,
    sync: bool | None = None,
) -> None:
    """``gradexp.log`` (``commit=None`` commits; ``sync`` is ignored)."""
    from gradexp.sdk.facade import log as gx_log

    gx_log(data, step=step, commit=True if commit is None else commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run (``gradexp.finish``)."""
    from gradexp.sdk.facade import finish as gx_finish

    gx_finish(exit_code=0 if exit_code is None else int(exit_code))


def define_metric(
    name: str,
    step_metric: str | None = None,
    step_sync: bool | None = None,
    hidden: bool | None = None,
    summary: str | None = None,
    goal: str | None = None,
    overwrite: bool | None = None,
) -> Metric:
    """``gradexp.define_metric`` (``step_sync`` and ``overwrite`` are ignored: the server
    aligns keys by step, and a definition always replaces the one of the same name)."""
    from gradexp.sdk.facade import define_metric as gx_define_metric

    return gx_define_metric(
        name, step_metric=step_metric, summary=summary, goal=goal, hidden=bool(hidden)
    )


def alert(
    title: str, text: str, level: str | AlertLevel | None = None, wait_duration: Any = None
) -> None:
    """``gradexp.alert`` (``level`` default INFO; ``wait_duration`` in seconds or a timedelta)."""
    from gradexp.sdk.facade import alert as gx_alert

    gx_alert(title, text, level=level or "INFO", wait_duration=wait_duration)


def log_artifact(
    artifact_or_path: Any,
    name: str | None = None,
    type: str | None = None,
    aliases: Sequence[str] | None = None,
    **_ignored: Any,
) -> Any:
    """``wandb.log_artifact``: :meth:`gradexp.Run.log_artifact` on the current run."""
    from gradexp.sdk.facade import log_artifact as gx_log_artifact

    return gx_log_artifact(artifact_or_path, aliases, name=name, type=type)


def use_artifact(artifact_or_name: Any, type: str | None = None, **_ignored: Any) -> Any:
    """``wandb.use_artifact``: :meth:`gradexp.Run.use_artifact` on the current run."""
    from gradexp.sdk.facade import use_artifact as gx_use_artifact

    return gx_use_artifact(artifact_or_name, type)


def save(
    glob_str: str | os.PathLike[str] | None = None,
    base_path: str | os.PathLike[str] | None = None,
    policy: str = "live",
) -> list[str]:
    """``gradexp.save``: the files become run files (``policy`` live, now or end)."""
    from gradexp.sdk.facade import save as gx_save

    if glob_str is None:
        raise ValueError("save() needs a file name or a glob")
    return gx_save(glob_str, base_path=base_path, policy=policy)


def Histogram(sequence: Any = None, np_histogram: Any = None, num_bins: int = 64) -> _Histogram:
    """``gradexp.Histogram`` of ``sequence`` in ``num_bins`` bins, or of a precomputed
    ``np_histogram=(counts, edges)``."""
    from gradexp.sdk.values.histogram import Histogram as GxHistogram

    return GxHistogram(sequence, bins=num_bins, np_histogram=np_histogram)


def Image(
    data_or_path: Any,
    mode: str | None = None,
    caption: str | None = None,
    grouping: int | None = None,
    classes: Any = None,
    boxes: Any = None,
    masks: Any = None,
    file_type: str | None = None,
    normalize: bool = True,
) -> _Image:
    """``gradexp.Image``, with wandb's reading of arrays.

    Float pixels are read the way wandb reads them (``normalize=True``): values in [-1, 1]
    as -1..1, values above 1 as 0..255, others as 0..1. ``mode`` (``"L"``, ``"RGB"``,
    ``"RGBA"``) converts the channels. A batch of images (a 4-D tensor or array, NCHW or
    NHWC) becomes one grid image, as in wandb. ``boxes``, ``masks`` and ``classes`` are
    ignored (said once).
    """
    from gradexp.sdk.values.image import Image as GxImage
    from gradexp.wandb.images import as_pixels

    if boxes is not None or masks is not None or classes is not None:
        _once("image-overlays", "wandb.Image boxes=, masks= and classes= are ignored by gradexp.")
    return GxImage(as_pixels(data_or_path, mode, normalize), caption=caption)


def Table(
    columns: Sequence[Any] | None = None,
    data: Sequence[Sequence[Any]] | None = None,
    rows: Sequence[Sequence[Any]] | None = None,
    dataframe: Any = None,
    dtype: Any = None,
    optional: Any = True,
    allow_mixed_types: bool = False,
    log_mode: str | None = None,
) -> _Table:
    """``gradexp.Table`` (``rows=`` is ``data=``; column types are inferred, so ``dtype``,
    ``optional`` and ``allow_mixed_types`` are not needed; each log stores the table as
    it is then, whatever ``log_mode``)."""
    from gradexp.sdk.values.table import Table as GxTable

    return GxTable(columns=columns, data=data if data is not None else rows, dataframe=dataframe)


def login(
    anonymous: str | None = None,
    key: str | None = None,
    relogin: bool | None = None,
    host: str | None = None,
    force: bool | None = None,
    timeout: int | None = None,
    verify: bool = False,
    referrer: str | None = None,
) -> bool:
    """True when runs will be uploaded to a gradexp server.

    With a gradexp API key (``gx_...``) it is checked with the server (``host``, or the
    configured one) and stored, as ``gradexp login --key`` does; a key of wandb's is not
    sent anywhere. Without one, nothing interactive happens inside a script: it says how
    to log in when no key is known (runs are then saved offline).
    """
    from gradexp.errors import LoginError
    from gradexp.sdk.login import login as gx_login

    if key is not None and not key.strip().startswith("gx_"):
        termwarn(
            "wandb.login(key=...) was given a key that is not a gradexp API key (gx_...); "
            "it is not used or sent anywhere. Log in with `gradexp login`."
        )
        key = None
    if key is not None:
        gx_host = host if host and "wandb" not in host else None
        try:
            return gx_login(key=key, host=gx_host, relogin=bool(relogin))
        except LoginError as exc:
            termwarn(str(exc))
            return False
    if _server_known({}):
        return True
    termwarn(
        "no gradexp server and API key are configured: runs are saved offline. Run "
        "`gradexp login` (or set GRADEXP_BASE_URL and GRADEXP_API_KEY) to upload them."
    )
    return False


def watch(
    models: Any,
    criterion: Any = None,
    log: str | None = "gradients",
    log_freq: int = 1000,
    idx: int | None = None,
    log_graph: bool = False,
) -> None:
    """``gradexp.watch`` (``criterion``, ``idx`` and ``log_graph`` are ignored)."""
    from gradexp.integrations.torch import watch as gx_watch

    if log_graph:
        _once("log_graph", "watch(log_graph=True) is ignored: gradexp does not record graphs.")
    gx_watch(models, log=log, log_freq=log_freq)


def unwatch(models: Any = None) -> None:
    """``gradexp.unwatch``."""
    from gradexp.integrations.torch import unwatch as gx_unwatch

    gx_unwatch(models)


def sweep(*args: Any, **kwargs: Any) -> str:
    """Sweeps are not supported: raises :class:`GradexpError`."""
    raise GradexpError(_NO_SWEEPS)


def agent(*args: Any, **kwargs: Any) -> None:
    """Sweeps are not supported: raises :class:`GradexpError`."""
    raise GradexpError(_NO_SWEEPS)


_NO_SWEEPS = (
    "sweeps are not supported yet in gradexp: run your hyperparameter search yourself "
    "(one wandb.init() per trial, e.g. a loop or a job array), and compare the runs in a project."
)


def termlog(
    string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True
) -> None:
    """Print a line for the user on stderr (``gradexp:`` first; ``repeat=False``: once)."""
    _term(string, "", repeat, prefix, newline)


def termwarn(
    string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True
) -> None:
    """Print a warning line on stderr."""
    _term(string, "WARNING ", repeat, prefix, newline)


def termerror(
    string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True
) -> None:
    """Print an error line on stderr."""
    _term(string, "ERROR ", repeat, prefix, newline)


def _term(text: str, level: str, repeat: bool, prefix: bool, newline: bool) -> None:
    if not repeat:
        if f"term:{text}" in _said:
            return
        _said.add(f"term:{text}")
    line = f"gradexp: {level}{text}" if prefix else f"{level}{text}"
    try:
        print(line, end="\n" if newline else "", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def setup(settings: Any = None) -> None:
    """Nothing to set up: gradexp starts its stream thread with the first run."""


def require(requirement: str | None = None) -> None:
    """wandb's feature flags have no meaning here."""


def teardown(exit_code: int | None = None) -> None:
    """Finish the current run, if any."""
    finish(exit_code)


def __getattr__(name: str) -> Any:
    # ``wandb.run`` is the current run (None before init), looked up on every access;
    # config, summary and Api load the SDK on first use.
    if name == "run":
        from gradexp.sdk.facade import current_run

        return current_run()
    if name in ("config", "summary"):
        from gradexp.sdk import current

        return getattr(current, name)
    if name == "Api":
        from gradexp.sdk.api import Api

        return Api
    if name == "Artifact":
        from gradexp.wandb.artifacts import Artifact

        return Artifact
    raise AttributeError(f"module 'gradexp.wandb' has no attribute {name!r}")
