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
``init()`` and its mapping of keywords and variables are in ``init_run``, the once-only
notes and ``termlog``/``termwarn``/``termerror`` in ``term``, wandb's reading of image
arrays in ``images``, ``Artifact`` in ``artifacts``, the run ``init`` returns in
``wandb_run``, the media types gradexp does not store in ``media``; all are re-exported
here. ``wandb.plot`` (charts, logged as their tables) and ``wandb.util`` are submodules.
"""

from __future__ import annotations

import enum
import os
import sys

from gradexp.errors import GradexpError
from gradexp.wandb.init_run import IGNORED as IGNORED
from gradexp.wandb.init_run import _server_known, init
from gradexp.wandb.term import _once, termerror, termlog, termwarn
from gradexp.wandb.term import _said as _said  # the once-only memory (tests reset it)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from gradexp.sdk.metrics import Metric
    from gradexp.sdk.values.histogram import Histogram as _Histogram
    from gradexp.sdk.values.image import Image as _Image
    from gradexp.sdk.values.table import Table as _Table

__all__ = [
    "AlertLevel",
    "Api",
    "Artifact",
    "Audio",
    "Error",
    "Histogram",
    "Html",
    "Image",
    "Molecule",
    "Object3D",
    "Plotly",
    "Settings",
    "Table",
    "Video",
    "agent",
    "alert",
    "config",
    "define_metric",
    "finish",
    "init",
    "log",
    "log_artifact",
    "login",
    "plot",
    "run",
    "save",
    "summary",
    "sweep",
    "termerror",
    "termlog",
    "termwarn",
    "unwatch",
    "use_artifact",
    "util",
    "watch",
]

#: ``except wandb.Error`` catches what gradexp raises.
Error = GradexpError


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


# --- the module API (init is in init_run, termlog and friends in term) ---------------------


def log(
    data: Mapping[str, Any],
    step: int | None = None,
    commit: bool | None = None,
    sync: bool | None = None,
) -> None:
    """``gradexp.log`` (``commit=None`` commits; ``sync`` is ignored). Values of wandb media
    types gradexp does not store (``wandb.Video``...) are left out, said once."""
    from gradexp.sdk.facade import log as gx_log

    media = sys.modules.get("gradexp.wandb.media")  # (not imported: no such value exists)
    if media is not None and any(isinstance(v, media.Unsupported) for v in data.values()):
        data = {k: v for k, v in data.items() if not isinstance(v, media.Unsupported)}
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


def setup(settings: Any = None) -> None:
    """Nothing to set up: gradexp starts its stream thread with the first run."""


def require(requirement: str | None = None) -> None:
    """wandb's feature flags have no meaning here."""


def teardown(exit_code: int | None = None) -> None:
    """Finish the current run, if any."""
    finish(exit_code)


#: wandb's media types gradexp does not store (``media``, loaded when first named).
_MEDIA = frozenset(("Audio", "Html", "Molecule", "Object3D", "Plotly", "Video"))


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
    if name in _MEDIA:
        from gradexp.wandb import media

        return getattr(media, name)
    if name in ("plot", "util"):
        import importlib

        return importlib.import_module(f"gradexp.wandb.{name}")
    raise AttributeError(f"module 'gradexp.wandb' has no attribute {name!r}")
