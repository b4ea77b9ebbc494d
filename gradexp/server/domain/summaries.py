"""A run's summary under its ``define_metric`` definitions.

Without a definition, a key's summary is its last value (``run_keys.last_value``). A
definition (``runs.metrics``: name or glob -> step_metric, summary, goal, hidden) may
choose another aggregate: ``min``, ``max`` or ``mean`` of the finite values, the
``first`` value, ``best`` (min or max by ``goal``), or ``none`` (left out). With several
aggregates the key holds the first and ``<key>.<aggregate>`` each of the others.

What the aggregates need is kept per key at ingest (``run_keys``: vmin, vmax, vsum,
vcount, first_value), so a summary costs no scan of the history. This module turns those
into summary values, for reads (:func:`summary_entries`) and for the sort key the runs
table orders by (:func:`refresh_summary_values`, ``run_keys.summary_value``).

Which definition applies to a key: one with exactly its name, else the last-defined glob
that matches it (``*`` matches any characters, ``/`` included). Derived ``K#stat``
series never match.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from gradexp.protocol.wire import STAT_SEPARATOR
from gradexp.server.storage import schema as s

__all__ = [
    "SUMMARY_COLUMNS",
    "MetricDefs",
    "aggregates",
    "refresh_summary_values",
    "summary_entries",
]

_loads = orjson.loads


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(map(re.escape, pattern.split("*"))), re.DOTALL)


class MetricDefs:
    """A run's definitions, ready to be matched against keys."""

    def __init__(self, defs: dict[str, dict[str, Any]]) -> None:
        # in the order they were defined (by sequence: batches may arrive out of order)
        defs = dict(sorted(defs.items(), key=lambda item: item[1].get("seq", 0)))
        self.defs = defs
        self._exact = {name: d for name, d in defs.items() if "*" not in name}
        self._globs = [(_glob(name), d) for name, d in reversed(defs.items()) if "*" in name]

    @classmethod
    def parse(cls, text: str | None) -> MetricDefs | None:
        """The definitions stored in ``runs.metrics`` (None when there are none)."""
        if not text:
            return None
        defs = _loads(text)
        return cls(defs) if defs else None

    def for_key(self, key: str) -> dict[str, Any] | None:
        """The definition that applies to ``key``, if any."""
        if STAT_SEPARATOR in key:
            return None
        found = self._exact.get(key)
        if found is not None:
            return found
        for pattern, d in self._globs:
            if pattern.fullmatch(key):
                return d
        return None

    @property
    def chooses_aggregates(self) -> bool:
        """Whether any definition asks for more than the last value."""
        return any(aggregates(d) != ["last"] for d in self.defs.values())


def aggregates(definition: dict[str, Any] | None) -> list[str]:
    """The aggregates a definition asks for, ``best`` resolved by its goal (["last"]
    without a definition or a summary; [] for ``none``)."""
    if definition is None:
        return ["last"]
    names = list(definition.get("summary") or ["last"])
    if names == ["none"]:
        return []
    goal = definition.get("goal")
    out: list[str] = []
    for name in names:
        if name == "best":
            name = "min" if goal == "minimize" else "max"
        if name not in out:
            out.append(name)
    return out


def _aggregate(name: str, row: Any) -> Any:
    """One aggregate of a key's ``run_keys`` row; the last value where it has none (a key
    without finite numbers, or stored before the aggregates were kept)."""
    last = _loads(row.last_value) if row.last_value is not None else None
    if name == "first":
        return _loads(row.first_value) if row.first_value is not None else last
    if name in ("min", "max", "mean") and row.vcount:
        if name == "mean":
            return row.vsum / row.vcount
        value = row.vmin if name == "min" else row.vmax
        # an integer key keeps integer extremes (the values were stored as doubles)
        if type(last) is int and float(value).is_integer():
            return int(value)
        return value
    return last


def summary_entries(key: str, definition: dict[str, Any] | None, row: Any) -> dict[str, Any]:
    """The summary entries of one key: ``{key: value}``, ``{}`` for ``none``, plus
    ``{key.<aggregate>: value}`` for each aggregate after the first."""
    names = aggregates(definition)
    if not names:
        return {}
    out = {key: _aggregate(names[0], row)}
    for name in names[1:]:
        out[f"{key}.{name}"] = _aggregate(name, row)
    return out


#: The ``run_keys`` columns a summary is made from (``summary_entries`` reads them by name).
SUMMARY_COLUMNS = (
    s.run_keys.c.key_id,
    s.run_keys.c.key_name,
    s.run_keys.c.last_value,
    s.run_keys.c.vmin,
    s.run_keys.c.vmax,
    s.run_keys.c.vsum,
    s.run_keys.c.vcount,
    s.run_keys.c.first_value,
    s.run_keys.c.summary_value,
)


def update_summaries(
    conn: Connection, run_pk: int, metrics_text: str, redefined: bool, touched: list[str]
) -> None:
    """After a batch of a run with definitions: every key's summary value when the
    definitions changed (``redefined``), else those of the ``touched`` keys whose
    definition chooses an aggregate."""
    defs = MetricDefs.parse(metrics_text)
    if redefined:
        refresh_summary_values(conn, run_pk, defs, None)
    elif defs is not None and defs.chooses_aggregates:
        names = [k for k in touched if aggregates(defs.for_key(k)) != ["last"]]
        if names:
            refresh_summary_values(conn, run_pk, defs, names)


def refresh_summary_values(
    conn: Connection, run_pk: int, defs: MetricDefs | None, key_names: list[str] | None
) -> None:
    """Bring ``run_keys.summary_value`` up to date for ``key_names`` (None: every key, after
    the definitions changed): the first aggregate a definition chose, or NULL where the
    last value is the summary. Runs inside the ingest transaction, run row locked."""
    k = s.run_keys
    query = select(*SUMMARY_COLUMNS).where(k.c.run_pk == run_pk)
    if key_names is None:
        rows = list(conn.execute(query))
    else:
        rows = []
        for i in range(0, len(key_names), 500):
            chunk = key_names[i : i + 500]
            rows.extend(conn.execute(query.where(k.c.key_name.in_(chunk))))
    changes = []
    for row in rows:
        definition = defs.for_key(row.key_name) if defs is not None else None
        names = aggregates(definition)
        value = None
        if names and names[0] != "last":
            value = orjson.dumps(_aggregate(names[0], row)).decode()
        if value != row.summary_value:
            changes.append({"pk_": run_pk, "id_": row.key_id, "value_": value})
    if changes:
        conn.execute(
            update(k)
            .where(k.c.run_pk == bindparam("pk_"), k.c.key_id == bindparam("id_"))
            .values(summary_value=bindparam("value_")),
            changes,
        )
