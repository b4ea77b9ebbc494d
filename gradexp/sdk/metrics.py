"""``define_metric``: how a key is charted and summarised, recorded in the run.

A definition names a key, or a glob of keys (``"val/*"``: ``*`` matches any characters,
``/`` included), and says:

- ``step_metric``: the key to chart it against by default (``epoch``, ``global_step``)
  instead of the step;
- ``summary``: what the run's summary holds for it: ``min``, ``max``, ``mean``,
  ``first``, ``last`` (the default without a definition), ``best`` (``min`` or ``max``,
  by ``goal``) or ``none`` (left out). Several, comma-separated (``"min,max"``): the key
  holds the first, and ``<key>.<aggregate>`` each of the others;
- ``goal``: ``minimize`` or ``maximize``, what ``best`` means (alone, it implies
  ``summary="best"``);
- ``hidden``: not charted by default.

The definition is a ``metric`` record (docs/protocol.md): the server keeps the latest
definition of each name and applies it to the runs table, the run page and ``Api``.
Nothing of this touches ``log()``: the server computes the summaries as it stores the
values.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from gradexp.errors import GradexpError
from gradexp.protocol.names import key_problem

__all__ = ["GOALS", "SUMMARIES", "Metric", "metric_definition"]

SUMMARIES = ("min", "max", "mean", "first", "last", "best", "none")
GOALS = ("minimize", "maximize")


class Metric(NamedTuple):
    """What ``define_metric`` recorded (its return value)."""

    name: str
    step_metric: str | None
    summary: tuple[str, ...]
    goal: str | None
    hidden: bool


def _summaries(summary: Any) -> tuple[str, ...]:
    if summary is None:
        return ()
    items = summary.split(",") if isinstance(summary, str) else list(summary)
    out: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if name not in SUMMARIES:
            raise GradexpError(
                f"define_metric summary {item!r} is not one of {', '.join(SUMMARIES)}."
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def metric_definition(
    name: str,
    step_metric: str | None = None,
    summary: str | list[str] | tuple[str, ...] | None = None,
    goal: str | None = None,
    hidden: bool = False,
) -> Metric:
    """Check a definition: the :class:`Metric` to record, or GradexpError saying what is wrong."""
    problem = key_problem(name)
    if problem is not None:
        raise GradexpError(f"define_metric name {name!r} is not valid: {problem}.")
    if step_metric is not None:
        problem = key_problem(step_metric)
        if problem is not None or "*" in step_metric:
            reason = problem or "it must name one key, not a glob"
            raise GradexpError(f"define_metric step_metric {step_metric!r} is not valid: {reason}.")
    if goal is not None:
        goal = {"min": "minimize", "max": "maximize"}.get(str(goal).lower(), str(goal).lower())
        if goal not in GOALS:
            raise GradexpError(f"define_metric goal {goal!r}: use 'minimize' or 'maximize'.")
    summaries = _summaries(summary)
    if goal is not None and not summaries:
        summaries = ("best",)
    if "best" in summaries and goal is None:
        raise GradexpError("define_metric summary='best' needs goal='minimize' or goal='maximize'.")
    if "none" in summaries and len(summaries) > 1:
        raise GradexpError("define_metric summary='none' cannot be combined with others.")
    return Metric(name, step_metric, summaries, goal, bool(hidden))


def metric_record(metric: Metric) -> dict[str, Any]:
    """The body of the ``metric`` record for a definition."""
    return {
        "name": metric.name,
        "step_metric": metric.step_metric,
        "summary": list(metric.summary),
        "goal": metric.goal,
        "hidden": metric.hidden,
    }
