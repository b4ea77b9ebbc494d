"""``wandb.init()``: wandb's keywords, ``wandb.Settings`` and ``WANDB_*`` variables, mapped
onto ``gradexp.init``.

An argument wins over a ``WANDB_*`` variable, and gradexp's own variable for the same
setting (``GRADEXP_MODE`` over ``WANDB_MODE``...) wins over both; the list is in
``gradexp.wandb``'s docstring. Keywords with no meaning here (:data:`IGNORED`) are said
once and ignored. ``init`` is re-exported by ``gradexp.wandb``; the SDK loads on the
first call, so importing this module costs what ``import gradexp`` does.
"""

from __future__ import annotations

import os

from gradexp.errors import GradexpError
from gradexp.wandb.term import _once

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from gradexp.sdk.run import Run

__all__ = ["IGNORED", "init"]

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
    from gradexp.wandb.wandb_run import as_wandb_run

    return as_wandb_run(gx_init(config=config, **args))


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
