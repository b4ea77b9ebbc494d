"""History records -> columns: the shape the hot ingest path writes from.

A training run logs the same few keys at every step, so most rows of a batch share one key
tuple and hold only plain numbers. Such a row costs a handful of C-level operations here:
its values go into a per-key-tuple group as one tuple, and each group becomes a 2-D numpy
array in a single call. No Python code runs per value. Rows holding anything else (bools,
non-finite floats, strings, histograms, tensors, images, nulls) take a slower per-value
path. The per-key results (numeric points for rollups, key-index statistics) come out of
numpy either way.
"""

from __future__ import annotations

import math
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from gradexp.protocol.values import numeric_value
from gradexp.protocol.wire import HISTOGRAM_STATS, STAT_SEPARATOR
from gradexp.server.domain import rollup

_dumps = orjson.dumps
TYPED_KINDS = ("histogram", "tensor", "image", "gallery", "table")
MEDIA_KINDS = ("image", "gallery", "table")  # typed values without statistics
_EMPTY_I = np.empty(0, dtype=np.intp)
_EMPTY_F = np.empty(0, dtype=np.float64)


def value_kind(value: Any) -> str:
    """The key-index kind of a (non-None) value."""
    t = type(value)
    if t is float or t is int:
        return "number"
    if t is bool:
        return "bool"
    if t is dict:
        kind = value.get("_type")
        return "number" if kind == "float" else str(kind)
    return "string"


class HistoryColumns:
    """A batch's history records, by column.

    Feed records in sequence order with ``add_plain`` (every value an int or a finite
    float) or ``add_special`` (anything else), then call ``finish``. The columnar
    validator (``batch._columnar``) fills the per-record columns itself and then adds
    whole groups (``add_group``) and the odd row (``add_plain_at``/``add_special_at``).
    """

    def __init__(self) -> None:
        self.seqs: list[int] = []  # per position (a history record)
        self.steps: list[int] = []
        self.times: list[float] = []
        self.jsons: list[str] = []
        self.values: list[dict[str, Any]] = []
        # plain rows grouped by key tuple: keys -> (positions, value tuples)
        self.groups: dict[tuple[str, ...], tuple[list[int], list[tuple[Any, ...]]]] = {}
        self._matrices: dict[tuple[str, ...], Any] = {}  # ready float64 matrices (add_group)
        # per-value path: key -> ([positions], [floats]) of numeric points
        self._extra: dict[str, tuple[list[int], list[float]]] = {}
        # per-value path: key -> [count, min_step, max_step, last_pos, kind, last_value,
        # first_pos, first_value]
        self._meta: dict[str, list[Any]] = {}
        self.typed: list[tuple[str, int, int, float, str]] = []  # (key, seq, step, time, json)
        self._special_first: dict[str, int] = {}  # key -> first position (per-value path)
        self.key_order: dict[str, None] = {}  # set by finish(): keys by first appearance
        self.max_step = -1
        # set by finish(): key -> (positions, values) of every numeric point
        self.numeric: dict[str, tuple[Any, Any]] = {}
        self._steps_np: Any = None
        self._plain: dict[str, list[tuple[Any, Any]]] = {}  # set by finish()
        self._plain_last: dict[str, Any] = {}  # set by finish()
        self._plain_first: dict[str, tuple[int, Any]] = {}  # set by finish(): (pos, value)
        # The batch's other records (config, summary, ...), gathered while validating.
        self.others: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.seqs)

    def add_plain(self, seq: int, step: int, t: float, values: dict[str, Any]) -> None:
        """A record whose values are all ints or finite floats (the hot path)."""
        pos = self._append(seq, step, t, values)
        self.add_plain_at(pos, values)

    def add_special(self, seq: int, step: int, t: float, values: dict[str, Any]) -> None:
        """Any other (validated) record: one value at a time."""
        pos = self._append(seq, step, t, values)
        self.add_special_at(pos, values)

    def _append(self, seq: int, step: int, t: float, values: dict[str, Any]) -> int:
        pos = len(self.seqs)
        self.seqs.append(seq)
        self.steps.append(step)
        self.times.append(t)
        self.jsons.append(_dumps(values).decode())
        self.values.append(values)
        if step > self.max_step:
            self.max_step = step
        return pos

    def add_group(self, keys: tuple[str, ...], positions: Any, matrix: Any) -> None:
        """Rows already in the columns (at ``positions``, an ascending int array past
        every row added before) that share the key tuple ``keys`` and hold only ints and
        finite floats, as a float64 ``matrix`` (one row per position, one column per
        key). The columnar validator's way in, a chunk of rows at a time."""
        old = self._matrices.get(keys)
        if old is not None:  # the same keys in an earlier chunk: one group
            positions = np.concatenate((self.groups[keys][0], positions))
            matrix = np.concatenate((old, matrix))
        elif keys in self.groups:  # rows that came one by one: add these to them
            group = self.groups[keys]
            group[0].extend(positions.tolist())
            group[1].extend(map(tuple, matrix.tolist()))
            return
        self.groups[keys] = (positions, [])
        self._matrices[keys] = matrix

    def add_rows(
        self, keys: tuple[str, ...], positions: list[int], rows: list[tuple[Any, ...]]
    ) -> None:
        """Rows already in the columns (at ``positions``, ascending, past every row added
        before) that share the key tuple ``keys`` and hold only ints and finite floats,
        as value tuples: the columnar validator's way in for a small chunk."""
        group = self._list_group(keys)
        group[0].extend(positions)
        group[1].extend(rows)

    def add_plain_at(self, pos: int, values: dict[str, Any]) -> None:
        """The plain record already in the columns at ``pos``: into its key tuple's group."""
        group = self._list_group(tuple(values))
        group[0].append(pos)
        group[1].append(tuple(values.values()))

    def _list_group(self, keys: tuple[str, ...]) -> tuple[list[int], list[tuple[Any, ...]]]:
        """The group of key tuple ``keys`` as lists, to add rows to: new, or a ready-made
        one (``add_group``'s matrix) unpacked."""
        group = self.groups.get(keys)
        if group is None:
            group = self.groups[keys] = ([], [])
        elif keys in self._matrices:
            matrix = self._matrices.pop(keys)
            positions = np.asarray(group[0]).tolist()
            group = self.groups[keys] = (positions, list(map(tuple, matrix.tolist())))
        return group

    def add_special_at(self, pos: int, values: dict[str, Any]) -> None:
        """The record already in the columns at ``pos``, one value at a time."""
        seq, step, t = self.seqs[pos], self.steps[pos], self.times[pos]
        first = self._special_first
        for key, value in values.items():
            first.setdefault(key, pos)
            if value is None:
                continue
            kind = value_kind(value)
            num = numeric_value(value)
            self._note(key, pos, step, kind, value)
            if num is not None:
                self._add_extra(key, pos, num)
            elif kind in TYPED_KINDS:
                self.typed.append((key, seq, step, t, _dumps(value).decode()))
                if kind in MEDIA_KINDS:
                    continue
                for stat in HISTOGRAM_STATS:
                    if stat in value:
                        sv = numeric_value(value[stat])
                        if sv is not None:
                            derived = f"{key}{STAT_SEPARATOR}{stat}"
                            first.setdefault(derived, pos)
                            self._note(derived, pos, step, "number", value[stat])
                            self._add_extra(derived, pos, sv)

    def _add_extra(self, key: str, pos: int, value: float) -> None:
        col = self._extra.get(key)
        if col is None:
            self._extra[key] = ([pos], [value])
        else:
            col[0].append(pos)
            col[1].append(value)

    def _note(self, key: str, pos: int, step: int, kind: str, value: Any) -> None:
        meta = self._meta.get(key)
        if meta is None:
            self._meta[key] = [1, step, step, pos, kind, value, pos, value]
            return
        meta[0] += 1
        if step < meta[1]:
            meta[1] = step
        if step > meta[2]:
            meta[2] = step
        meta[3], meta[4], meta[5] = pos, kind, value  # positions only grow

    def finish(self) -> HistoryColumns:
        """Assemble the per-key numeric columns."""
        plain: dict[str, list[tuple[Any, Any]]] = {}
        # Keys in order of first appearance (key ids follow it).
        firsts = self._special_first
        for keys, (positions, _rows) in self.groups.items():
            if not len(positions):
                continue
            for key in keys:
                if positions[0] < firsts.get(key, 2**62):
                    firsts[key] = positions[0]
        self.key_order = dict.fromkeys(sorted(firsts, key=firsts.__getitem__))
        for keys, (positions, rows) in self.groups.items():
            if len(keys) == 0:
                continue
            if type(positions) is range:  # np.asarray would walk it in Python
                pos = np.arange(positions.start, positions.stop, dtype=np.intp)
            else:
                pos = np.asarray(positions, dtype=np.intp)
            matrix = self._matrices.get(keys)
            if matrix is None:
                matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(keys))
            for j, key in enumerate(keys):
                plain.setdefault(key, []).append((pos, matrix[:, j]))
        self._plain = plain
        # Each plain key's value in its last row, as logged (an int stays an int).
        values = self.values
        self._plain_last = {
            key: values[max(int(pos[-1]) for pos, _ in parts)][key] for key, parts in plain.items()
        }
        # ... and its first row, as logged (the "first" summary of define_metric)
        firsts_pos = {key: min(int(pos[0]) for pos, _ in parts) for key, parts in plain.items()}
        self._plain_first = {key: (p, values[p][key]) for key, p in firsts_pos.items()}
        numeric: dict[str, tuple[Any, Any]] = {}
        for key in self.key_order:
            parts = plain.get(key, [])
            extra = self._extra.get(key)
            if extra is not None:
                parts = [*parts, (np.asarray(extra[0], np.intp), np.asarray(extra[1], np.float64))]
            if not parts:
                continue
            if len(parts) == 1:
                numeric[key] = parts[0]
            else:  # in position (= sequence) order, which the rollups' fast path wants
                pos = np.concatenate([p for p, _ in parts])
                order = np.argsort(pos, kind="stable")
                numeric[key] = (pos[order], np.concatenate([v for _, v in parts])[order])
        self.numeric = numeric
        return self

    # A finished HistoryColumns crosses from a decode worker process to the server by
    # pickle (decode_pool.py). What crosses is what the writer uses, in compact form:
    # int/float columns as arrays, the rows' JSON texts as one string, no per-record
    # dicts (key_rows needs each key's last value only: _plain_last).
    _STATE = (
        "_plain",
        "_plain_last",
        "_plain_first",
        "_meta",
        "typed",
        "key_order",
        "max_step",
        "numeric",
    )

    def __getstate__(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in self._STATE}
        state["others"] = self.others
        state["seqs"] = np.asarray(self.seqs, dtype=np.int64)
        state["steps"] = self._steps_array()
        state["times"] = np.asarray(self.times, dtype=np.float64)
        state["jsons"] = "\n".join(self.jsons)  # orjson never writes a raw newline
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self._steps_np = state.pop("steps")
        self.steps = self._steps_np.tolist()
        self.seqs = state.pop("seqs").tolist()
        self.times = state.pop("times").tolist()
        jsons = state.pop("jsons")
        self.jsons = jsons.split("\n") if self.seqs else []
        self.__dict__.update(state)

    def history_rows(self, run_pk: int) -> list[tuple[int, int, int, float, str]]:
        """Rows for the ``history`` table."""
        return list(zip(repeat(run_pk), self.seqs, self.steps, self.times, self.jsons))

    def _steps_array(self) -> Any:
        if self._steps_np is None:
            self._steps_np = np.asarray(self.steps, dtype=np.int64)
        return self._steps_np

    def _points(self) -> int:
        """How many numeric points the batch holds (every key)."""
        return sum(len(pos) for pos, _vals in self.numeric.values())

    def rollup_rows(self, key_ids: dict[str, int]) -> list[rollup.RollupRow]:
        """Rollup rows (every level) for every numeric key."""
        if not self.numeric:
            return []
        if self._points() < rollup.NUMPY_MIN_POINTS:  # a few points: plain Python is quicker
            steps_l, seqs_l, times_l = self.steps, self.seqs, self.times
            by_key = []
            for key in sorted(self.numeric, key=key_ids.__getitem__):
                key_pos, key_vals = self.numeric[key]
                pos = key_pos.tolist()
                by_key.append(
                    (
                        key_ids[key],
                        [steps_l[p] for p in pos],
                        [seqs_l[p] for p in pos],
                        [times_l[p] for p in pos],
                        key_vals.tolist(),
                    )
                )
            rows = rollup.one_bucket_rows(by_key)
            if rows is not None:
                return rows
            points = [
                point
                for key_id, steps, seqs, times, vals in by_key
                for point in zip(repeat(key_id), steps, seqs, times, vals)
            ]
            return rollup.rows_from_buckets(rollup.build(points))
        steps = self._steps_array()
        seqs = np.asarray(self.seqs, dtype=np.int64)
        times = np.asarray(self.times, dtype=np.float64)
        # By key id: build_columns then finds its input already sorted (usually).
        order = sorted(self.numeric, key=key_ids.__getitem__)
        positions = [self.numeric[key][0] for key in order]
        keys = np.concatenate(
            [
                np.full(len(pos), key_ids[key], dtype=np.int64)
                for key, pos in zip(order, positions, strict=True)
            ]
        )
        pos = np.concatenate(positions)
        vals = np.concatenate([self.numeric[key][1] for key in order])
        if len(pos) < rollup.NUMPY_MIN_POINTS:  # a few points: plain Python is quicker
            return rollup.rows_from_buckets(
                rollup.build(
                    list(
                        zip(
                            keys.tolist(),
                            steps[pos].tolist(),
                            seqs[pos].tolist(),
                            times[pos].tolist(),
                            vals.tolist(),
                            strict=True,
                        )
                    )
                )
            )
        return rollup.build_columns(keys, steps[pos], seqs[pos], times[pos], vals)

    def aggregates(self) -> dict[str, tuple[float | None, float | None, float, int]]:
        """Per numeric key: the finite values' (min, max, sum, count) in this batch.

        A few numpy calls for the whole batch, whatever the number of keys: every key's
        points are concatenated and reduced segment by segment (``reduceat``). Non-finite
        values are left out (min and max are None when a key has no finite value); each
        point adds at most ``SUM_CLAMP`` to the sum, as in the rollups.
        """
        if not self.numeric:
            return {}
        if self._points() < rollup.NUMPY_MIN_POINTS:
            return {key: _aggregate(vals.tolist()) for key, (_pos, vals) in self.numeric.items()}
        keys = list(self.numeric)
        arrays = [self.numeric[k][1] for k in keys]
        lens = np.fromiter(map(len, arrays), dtype=np.intp, count=len(arrays))
        vals = np.concatenate(arrays)
        starts = np.zeros(len(arrays), dtype=np.intp)
        np.cumsum(lens[:-1], out=starts[1:])
        finite = np.isfinite(vals)
        clamp = rollup.SUM_CLAMP
        with np.errstate(over="ignore", invalid="ignore"):
            if finite.all():
                counts = lens
                mins = np.minimum.reduceat(vals, starts)
                maxs = np.maximum.reduceat(vals, starts)
                sums = np.add.reduceat(np.clip(vals, -clamp, clamp), starts)
            else:
                counts = np.add.reduceat(finite.astype(np.intp), starts)
                mins = np.minimum.reduceat(np.where(finite, vals, np.inf), starts)
                maxs = np.maximum.reduceat(np.where(finite, vals, -np.inf), starts)
                sums = np.add.reduceat(np.where(finite, np.clip(vals, -clamp, clamp), 0.0), starts)
            np.clip(sums, -clamp, clamp, out=sums)
        return {
            key: (mn if n else None, mx if n else None, s, n)
            for key, mn, mx, s, n in zip(
                keys, mins.tolist(), maxs.tolist(), sums.tolist(), counts.tolist(), strict=True
            )
        }

    def key_rows(self, key_ids: dict[str, int]) -> list[tuple[Any, ...]]:
        """Key-index rows: (key_id, key, kind, count, first_step, last_step, last_seq,
        last_value, vmin, vmax, vsum, vcount, first_value, first_seq)."""
        out = []
        # A small batch's steps are read from the list: numpy's per-call cost is more
        # than the work for a few rows.
        small = len(self.seqs) < rollup.NUMPY_MIN_POINTS
        steps: Any = None if small else self._steps_array()
        steps_l = self.steps
        aggregates = self.aggregates()
        no_numbers = (None, None, 0.0, 0)
        for key in self.key_order:
            count, first_step, last_step, last_pos = 0, 2**63, -1, -1
            kind: str = "number"
            last_value: Any = None
            first_pos, first_value = 2**63, None
            for pos, _vals in self._plain.get(key, ()):
                count += len(pos)
                if small:
                    chosen = [steps_l[p] for p in pos.tolist()]
                    first_step = min(first_step, min(chosen))
                    last_step = max(last_step, max(chosen))
                else:
                    chosen = steps[pos]
                    first_step = min(first_step, int(chosen.min()))
                    last_step = max(last_step, int(chosen.max()))
                last_pos = max(last_pos, int(pos[-1]))  # positions in a group only grow
            if last_pos >= 0:
                last_value = self._plain_last[key]
                first_pos, first_value = self._plain_first[key]
            meta = self._meta.get(key)
            if meta is not None:
                count += meta[0]
                first_step, last_step = min(first_step, meta[1]), max(last_step, meta[2])
                if meta[3] > last_pos:
                    last_pos, kind, last_value = meta[3], meta[4], meta[5]
                if meta[6] < first_pos:
                    first_pos, first_value = meta[6], meta[7]
            if last_pos < 0:
                continue  # only nulls: not in the key index
            out.append(
                (
                    key_ids[key],
                    key,
                    kind,
                    count,
                    first_step,
                    last_step,
                    self.seqs[last_pos],
                    _dumps(last_value).decode(),
                    *aggregates.get(key, no_numbers),
                    _dumps(first_value).decode(),
                    self.seqs[first_pos],
                )
            )
        return out


def _aggregate(values: list[float]) -> tuple[float | None, float | None, float, int]:
    """``aggregates`` for one key's few values, in plain Python."""
    finite = [v for v in values if v - v == 0.0]
    if not finite:
        return (None, None, 0.0, 0)
    clamp = rollup.SUM_CLAMP
    total = 0.0
    for v in finite:
        total += v if -clamp <= v <= clamp else math.copysign(clamp, v)
    return (min(finite), max(finite), max(-clamp, min(clamp, total)), len(finite))


def columnize(records: list[dict[str, Any]]) -> HistoryColumns:
    """Columns from validated history records (sequence order)."""
    cols = HistoryColumns()
    plain_types = PLAIN_TYPES
    for rec in records:
        values = rec["values"]
        if set(map(type, values.values())) <= plain_types:
            cols.add_plain(rec["seq"], rec["step"], rec["time"], values)
        else:
            cols.add_special(rec["seq"], rec["step"], rec["time"], values)
    return cols.finish()


PLAIN_TYPES = frozenset((int, float))
