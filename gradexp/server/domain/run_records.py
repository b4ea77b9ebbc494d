"""The records that describe a run rather than its history: checked, then applied.

- a ``config`` record's ``run`` object: the run's own fields set after ``init()`` (name,
  notes, tags, group, job_type);
- ``metric``: a ``define_metric`` definition, kept by name in ``runs.metrics``;
- ``alert``: kept in the ``alerts`` table, shown on the run page and sent to the
  server's webhook.

The checks are pure (no database) and raise ``Invalid(code="bad_batch")`` like the
batch's other checks; ``merge_metrics`` and ``store_alerts`` run inside the ingest
transaction; the limits are the SDK's (``gradexp.sdk.run_fields``,
``gradexp.sdk.metrics``, ``gradexp.sdk.alerts``).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from gradexp.protocol.wire import (
    ALERT_LEVELS,
    MAX_ALERT_TEXT,
    MAX_ALERT_TITLE,
    MAX_KEY_LENGTH,
    STAT_SEPARATOR,
)
from gradexp.server.domain.errors import Invalid
from gradexp.server.storage import schema as s

__all__ = [
    "GOALS",
    "SUMMARIES",
    "check_alert",
    "check_metric",
    "check_run_fields",
    "merge_metrics",
    "run_field_columns",
    "store_alerts",
]

SUMMARIES = frozenset(("min", "max", "mean", "first", "last", "best", "none"))
GOALS = frozenset(("minimize", "maximize"))
# The run's settable fields -> the most characters each may hold (tags: per tag).
_TEXT_FIELDS = {"name": 256, "notes": 1_000_000, "group": 256, "job_type": 64}
MAX_TAG = 128
MAX_TAGS = 1000


def _bad(message: str) -> Invalid:
    return Invalid(message, code="bad_batch")


def _is_key(value: Any) -> bool:
    return (
        type(value) is str
        and 0 < len(value) <= MAX_KEY_LENGTH
        and STAT_SEPARATOR not in value
        and value.isprintable()
    )


def check_run_fields(fields: Any, where: str) -> None:
    """A config record's ``run`` object. Unknown fields are ignored (a newer SDK may send
    more than this server keeps)."""
    if type(fields) is not dict:
        raise _bad(f"{where} must be an object")
    for name, limit in _TEXT_FIELDS.items():
        if name not in fields:
            continue
        value = fields[name]
        if value is None and name != "name":
            continue
        if type(value) is not str or len(value) > limit or (name == "name" and not value):
            what = "a non-empty string" if name == "name" else "a string or null"
            raise _bad(f"{where}.{name} must be {what} of at most {limit} characters")
    if "tags" in fields:
        tags = fields["tags"]
        if (
            type(tags) is not list
            or len(tags) > MAX_TAGS
            or not all(type(t) is str and 0 < len(t) <= MAX_TAG for t in tags)
        ):
            raise _bad(
                f"{where}.tags must be a list of non-empty strings up to {MAX_TAG} characters"
            )


def run_field_columns(fields: dict[str, Any]) -> dict[str, Any]:
    """The ``runs`` columns a (checked) ``run`` object sets."""
    out: dict[str, Any] = {}
    if "name" in fields:
        out["name"] = fields["name"]
    if "notes" in fields:
        notes = fields["notes"]
        out["notes"] = None if notes is None else orjson.dumps(notes).decode()
    if "tags" in fields:
        out["tags"] = orjson.dumps(list(dict.fromkeys(fields["tags"]))).decode()
    if "group" in fields:
        out["group_name"] = fields["group"]
    if "job_type" in fields:
        out["job_type"] = fields["job_type"]
    return out


def check_metric(rec: dict[str, Any], where: str) -> None:
    """A ``metric`` record: ``name`` (a key or a glob with ``*``), ``step_metric`` (a key
    or null), ``summary`` (a list of aggregates), ``goal`` and ``hidden``."""
    if not _is_key(rec.get("name")):
        raise _bad(f"{where}.name must be a metric key (or a glob such as 'val/*')")
    step_metric = rec.get("step_metric")
    if step_metric is not None and (not _is_key(step_metric) or "*" in step_metric):
        raise _bad(f"{where}.step_metric must be one metric key or null")
    summary = rec.get("summary", [])
    if type(summary) is not list or not all(type(s) is str and s in SUMMARIES for s in summary):
        raise _bad(f"{where}.summary must be a list of {', '.join(sorted(SUMMARIES))}")
    goal = rec.get("goal")
    if goal is not None and goal not in GOALS:
        raise _bad(f"{where}.goal must be 'minimize', 'maximize' or null")
    if "best" in summary and goal is None:
        raise _bad(f"{where}: summary 'best' needs a goal")
    if type(rec.get("hidden", False)) is not bool:
        raise _bad(f"{where}.hidden must be true or false")


def metric_entry(rec: dict[str, Any]) -> dict[str, Any]:
    """What ``runs.metrics`` keeps of a (checked) ``metric`` record, under its name (its
    ``seq`` orders the definitions: of two globs that match a key, the later one wins)."""
    return {
        "seq": rec["seq"],
        "step_metric": rec.get("step_metric"),
        "summary": list(rec.get("summary", [])),
        "goal": rec.get("goal"),
        "hidden": bool(rec.get("hidden", False)),
    }


def merge_metrics(metrics_text: str | None, recs: list[dict[str, Any]]) -> str:
    """``runs.metrics`` with the batch's ``metric`` records in: one definition per name,
    the one of the highest sequence (batches may arrive out of order)."""
    defs = orjson.loads(metrics_text) if metrics_text else {}
    for rec in recs:
        known = defs.get(rec["name"])
        if known is None or known["seq"] < rec["seq"]:
            defs[rec["name"]] = metric_entry(rec)
    return orjson.dumps(defs).decode()


def store_alerts(conn: Connection, run_pk: int, recs: list[dict[str, Any]]) -> None:
    """Insert the batch's (new, checked) ``alert`` records."""
    rows = [
        {k: a[k] for k in ("seq", "time", "level", "title", "text")} | {"run_pk": run_pk}
        for a in recs
    ]
    conn.execute(insert(s.alerts), rows)


def check_alert(rec: dict[str, Any], where: str) -> None:
    """An ``alert`` record: ``title``, ``text``, ``level`` and ``time``."""
    title, text = rec.get("title"), rec.get("text")
    if type(title) is not str or not 0 < len(title) <= MAX_ALERT_TITLE:
        raise _bad(f"{where}.title must be a string of 1 to {MAX_ALERT_TITLE} characters")
    if type(text) is not str or len(text) > MAX_ALERT_TEXT:
        raise _bad(f"{where}.text must be a string of at most {MAX_ALERT_TEXT} characters")
    if rec.get("level") not in ALERT_LEVELS:
        raise _bad(f"{where}.level must be one of {', '.join(ALERT_LEVELS)}")
    t: Any = rec.get("time")
    if type(t) not in (int, float) or t - t != 0:
        raise _bad(f"{where}.time must be a finite number (Unix seconds)")
