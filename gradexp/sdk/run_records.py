"""What a run records besides ``log()``: metric definitions, alerts, artifacts, saved files.

Each is a record of its own in the run file (``metric``, ``alert``, ``artifact``,
``file``: docs/protocol.md). The methods here run on the caller's thread and only check
what they are given and queue it on the run's channel (``_control``) or hand it to the
stream (``save``); the stream thread writes and uploads it, as for ``log()``.

:class:`RunRecords` is a base class of :class:`gradexp.sdk.run.Run`, which provides
``_channel``, ``_id``, ``_alerts``, ``_control`` and ``_warn_once``. The work behind
each method is in its own module (``metrics``, ``alerts``, ``run_artifacts``,
``gradexp.stream.save_spec``), imported on first use so that ``init()`` does not pay
for it.
"""

from __future__ import annotations

from gradexp.core.output import say
from gradexp.stream.channel import ALERT, DISABLED, METRIC, OPEN

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from collections.abc import Sequence
    from typing import Any

    from gradexp.sdk.alerts import AlertGate
    from gradexp.sdk.artifacts import Artifact
    from gradexp.sdk.metrics import Metric
    from gradexp.stream.channel import Channel

__all__ = ["RunRecords"]


class RunRecords:
    """``define_metric``, ``alert``, ``log_artifact``, ``use_artifact`` and ``save``.

    See the module docstring for what the subclass provides.
    """

    _channel: Channel
    _id: str
    _alerts: AlertGate | None  # wait_duration's memory, made by the first alert()

    if TYPE_CHECKING:  # provided by Run

        def _control(self, kind: int, body: Any) -> None: ...

        def _warn_once(self, what: str, message: str, depth: int = 0) -> None: ...

    # --- define_metric and alert ---

    def define_metric(
        self,
        name: str,
        step_metric: str | None = None,
        summary: str | list[str] | tuple[str, ...] | None = None,
        goal: str | None = None,
        hidden: bool = False,
    ) -> Metric:
        """Say how key ``name`` (or a glob such as ``"val/*"``) is charted and summarised.

        ``step_metric``: chart it against that key (``"epoch"``) by default; ``summary``:
        ``min``, ``max``, ``mean``, ``first``, ``last``, ``best`` or ``none`` (or several,
        comma-separated) for the run's summary; ``goal``: ``minimize`` or ``maximize``
        (what ``best`` means); ``hidden``: not charted by default. Recorded in the run; a
        later definition of the same name replaces it. See ``gradexp.sdk.metrics``.
        """
        from gradexp.sdk.metrics import metric_definition, metric_record

        metric = metric_definition(name, step_metric, summary, goal, hidden)
        self._control(METRIC, metric_record(metric))
        return metric

    def alert(self, title: str, text: str, level: Any = "INFO", wait_duration: Any = None) -> None:
        """Record an alert: shown on the run's page and sent to the server's webhook.

        ``level``: ``"INFO"``, ``"WARN"`` or ``"ERROR"``. ``wait_duration`` (seconds or a
        ``timedelta``): skip this alert if one with the same title was sent less than
        that long ago. See ``gradexp.sdk.alerts``.
        """
        from gradexp.sdk.alerts import AlertGate, alert_record

        record = alert_record(title, text, level)
        if self._alerts is None:
            self._alerts = AlertGate()
        if self._alerts.allow(record["title"], wait_duration):
            self._control(ALERT, record)

    # --- artifacts ---

    def log_artifact(
        self,
        artifact: Artifact | str | os.PathLike[str],
        aliases: Sequence[str] | None = None,
        *,
        name: str | None = None,
        type: str | None = None,
    ) -> Artifact:
        """Log an artifact as this run's output: the next version (``v0``, ``v1``...) of
        its name, or the latest one again if the content is the same; ``aliases`` (and
        ``latest``) move to it. A path makes an artifact of that file or folder (``name``
        and ``type`` default to its file name and ``"unspecified"``). Only the files the
        server lacks are uploaded. See ``gradexp.sdk.artifacts``.
        """
        from gradexp.sdk.run_artifacts import log_artifact

        return log_artifact(self, artifact, name=name, type=type, aliases=aliases)

    def use_artifact(self, ref: Artifact | str, type: str | None = None) -> Artifact:
        """Record that this run uses ``"name:alias"``, ``"name:v3"`` or ``"name"`` (its
        latest) and return it (``.download()`` fetches its files)."""
        from gradexp.sdk.run_artifacts import use_artifact

        return use_artifact(self, ref, type)

    # --- files ---

    def save(
        self,
        glob_or_path: str | os.PathLike[str],
        base_path: str | os.PathLike[str] | None = None,
        policy: str = "live",
    ) -> list[str]:
        """Save files as run files: shown in the run's Files tab, downloadable, in ``Api``.

        ``glob_or_path``: a file or a glob (``"ckpt/*.pt"``, ``"**/*.json"``), relative
        to ``base_path`` (default: the current folder; for an absolute path, its folder).
        Each file's run file name is its path relative to ``base_path``. ``policy``:
        ``"live"`` saves it now and again whenever it changes, ``"now"`` once as it is,
        ``"end"`` once when the run finishes. Files are copied into the run folder first
        (so offline runs and ``gradexp sync`` carry them) and uploaded in the background,
        large ones in parts. Returns the names the glob matches now.
        """
        from gradexp.stream.save_spec import match_files, resolve_save

        spec = resolve_save(glob_or_path, base_path, policy)
        channel = self._channel
        if channel.state is DISABLED:
            return []
        if channel.state not in OPEN:
            self._warn_once("save", f"save(): run {self._id} has finished; nothing is saved")
            return []
        matches, _ = match_files(spec)  # what is left out is said by the stream, once
        if not matches:
            what = str(glob_or_path)
            if policy == "now":
                say(f"save({what!r}): no file matches {spec.pattern}; nothing was saved")
            else:
                when = "as they appear and change" if policy == "live" else "when the run ends"
                say(
                    f"save({what!r}): no file matches {spec.pattern} yet; files that match it are saved {when}"
                )
        with channel.lock:
            channel.saves.append(spec)
        channel.wake_stream()
        return [name for name, _ in matches]
