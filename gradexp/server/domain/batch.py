"""Decoding and validating ingest batches, before any transaction is opened.

Everything here is pure: bytes in, validated Python out, or an ``Invalid`` that names the
first problem. A batch that fails validation never reaches the database, so a rejected
request writes nothing.

This module checks the batch and each record's envelope (its sequence number, type and
the fields of that type), and turns history records into columns (columns.py);
value_checks.py checks what records carry: key names, file paths and hashes, values.

The checks are written for the hot path (100k+ records a second): plain ``type(x) is``
tests, a cache of key names already seen to be valid, and a copy of a row's values only in
the rare case a value needs normalising (a huge literal that orjson parsed as infinity).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from math import isfinite
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from gradexp.server.domain.artifacts import check_artifact
from gradexp.server.domain.bodies import ValueCounter, gunzip_batch, parse_json
from gradexp.server.domain.columns import PLAIN_TYPES, HistoryColumns
from gradexp.server.domain.errors import DomainError
from gradexp.server.domain.limits import (
    MAX_COUNTER,
    MAX_NESTING,
    MAX_TELEMETRY_NAMES,
    counter_ok,
    deeper_than,
)
from gradexp.server.domain.machine import MACHINE_KINDS, check_machine_record
from gradexp.server.domain.run_records import check_alert, check_metric, check_run_fields
from gradexp.server.domain.value_checks import (
    ValidKeys,
    bad_batch,
    check_file_path,
    check_key,
    check_sha256,
    check_time,
    check_values,
    is_int,
)

# --- records -----------------------------------------------------------------------------


@dataclass
class Batch:
    """A validated ingest batch.

    ``records`` is None for a batch decoded in a worker process (decode_pool.py): only
    the columns cross over. :meth:`all_records` then decodes ``body`` again, for the rare
    batch that partly repeats committed records.
    """

    first_seq: int
    last_seq: int
    records: list[dict[str, Any]] | None
    columns: HistoryColumns  # the history records, by column (see columns.py)
    others: list[dict[str, Any]]  # the records that are not history (config, finish...)
    body: bytes | None = None  # as received (gzip'ed or not), when records is None
    gzip: bool = False

    def all_records(self) -> list[dict[str, Any]]:
        """Every record of the batch, validated."""
        if self.records is None:
            assert self.body is not None
            self.records = decode_body(self.body, self.gzip).records
        assert self.records is not None
        return self.records


#: The record types this server accepts: the reply to "create or resume a run" advertises
#: them, so a newer client keeps any other type in its run file instead of sending it.
RECORD_KINDS = frozenset(
    (
        "history",
        "config",
        "summary",
        "file",
        "telemetry",
        "finish",
        "metric",
        "alert",
        "artifact",
        *MACHINE_KINDS,
    )
)


def _check_record(rec: Any, expected_seq: int, valid: ValidKeys) -> None:
    where = f"records[seq={expected_seq}]"
    if type(rec) is not dict:
        raise bad_batch(f"{where} must be an object")
    if rec.get("seq") != expected_seq or type(rec.get("seq")) is not int:
        raise bad_batch(
            f"records must be exactly the sequences first_seq..last_seq in order; "
            f"expected seq {expected_seq}, got {rec.get('seq')!r}"
        )
    kind = rec.get("type")
    if kind not in RECORD_KINDS:
        raise bad_batch(
            f"{where}.type {kind!r} is not one this server accepts: {', '.join(sorted(RECORD_KINDS))}"
        )
    if kind != "history" and deeper_than(rec, MAX_NESTING + 1):
        # Stored as JSON (config, alerts, machine records...): bounded so it can be written.
        raise bad_batch(f"{where} nests more than {MAX_NESTING} levels deep")
    if kind == "history":
        step = rec.get("step")
        if type(step) is not int or step < 0 or step >= 2**62:
            raise bad_batch(f"{where}.step must be an integer >= 0")
        rec["time"] = check_time(rec.get("time"), f"{where}.time")
        check_values(rec.get("values"), where, valid)
    elif kind == "config":
        update = rec.get("update")
        if type(update) is not dict:
            raise bad_batch(f"{where}.update must be an object")
        for key in update:
            if type(key) is not str or not key:
                raise bad_batch(f"{where}.update: keys must be non-empty strings")
        if rec.get("run") is not None:
            check_run_fields(rec["run"], f"{where}.run")
    elif kind == "metric":
        check_metric(rec, where)
    elif kind == "alert":
        check_alert(rec, where)
    elif kind == "artifact":
        check_artifact(rec, where)
    elif kind == "summary":
        update = rec.get("update")
        if type(update) is not dict:
            raise bad_batch(f"{where}.update must be an object")
        check_values(update, f"{where}.update", valid)
    elif kind == "file":
        check_file_path(rec.get("path"), f"{where}.path")
        check_sha256(rec.get("sha256"), f"{where}.sha256")
        if not is_int(rec.get("size")) or rec["size"] < 0:
            raise bad_batch(f"{where}.size must be an integer >= 0")
        ctype = rec.get("content_type", "application/octet-stream")
        if type(ctype) is not str or len(ctype) > 255:
            raise bad_batch(f"{where}.content_type must be a string")
        rec["content_type"] = ctype
    elif kind == "telemetry":
        if len(rec) > MAX_TELEMETRY_NAMES + 2:
            raise bad_batch(f"{where} holds more than {MAX_TELEMETRY_NAMES} counters")
        bound = f"finite numbers within +-2^53 ({MAX_COUNTER})"
        for name, value in rec.items():
            if name in ("seq", "type"):
                continue
            if type(value) is dict:
                if len(value) > MAX_TELEMETRY_NAMES or not all(map(counter_ok, value.values())):
                    raise bad_batch(
                        f"{where}.{name} must map at most {MAX_TELEMETRY_NAMES} names to {bound}"
                    )
            elif not counter_ok(value):
                raise bad_batch(f"{where}.{name} must be one of {bound}, or an object of them")
    elif kind == "finish":
        code = rec.get("exit_code")
        if type(code) is not int or not -(2**31) <= code < 2**31:
            raise bad_batch(f"{where}.exit_code must be a 32-bit integer")
        rec["time"] = check_time(rec.get("time"), f"{where}.time")
    elif kind in MACHINE_KINDS:
        check_machine_record(rec, where)
    else:
        raise bad_batch(
            f"{where}.type {kind!r} is not one of history, config, summary, file, telemetry, "
            "finish, metric, alert, system, console, environment, artifact"
        )


def _columns_record_by_record(
    records: list[Any], first: int, valid: ValidKeys | None = None
) -> HistoryColumns:
    """Validate and columnise one record at a time (mixed or unusual batches, and the
    source of the precise error message when the columnar path declines a batch)."""
    cols = HistoryColumns()
    valid = valid or ValidKeys()
    good_keys, plain_types, dumps, int_, float_, dict_ = (
        valid.names,
        PLAIN_TYPES,
        orjson.dumps,
        int,
        float,
        dict,
    )
    # Bound methods of the columns' lists: the loop below is the hottest code in the server.
    seqs, steps, times = cols.seqs.append, cols.steps.append, cols.times.append
    jsons, all_values, groups = cols.jsons.append, cols.values.append, cols.groups
    seq = first
    step: Any
    t: Any
    values: Any
    for rec in records:
        if type(rec) is dict_:
            step, t, values = rec.get("step"), rec.get("time"), rec.get("values")
            fast = (
                rec.get("type") == "history"
                and type(step) is int_
                and type(t) is float_
                and type(values) is dict_
                and rec.get("seq") == seq
                and type(rec["seq"]) is int_
                and 0 <= step < 2**62
                and t - t == 0.0  # orjson never parses inf/NaN; belt and braces
            )
        else:
            fast = False
        if fast:
            if values.keys() <= good_keys and set(map(type, values.values())) <= plain_types:
                # The common record: plain numbers under known keys, straight into a group.
                pos = len(cols.seqs)
                seqs(seq)
                steps(step)
                times(t)
                jsons(dumps(values).decode())
                all_values(values)
                keys = tuple(values)
                group = groups.get(keys)
                if group is None:
                    group = groups[keys] = ([], [])
                group[0].append(pos)
                group[1].append(tuple(values.values()))
                if step > cols.max_step:
                    cols.max_step = step
                seq += 1
                continue
            check_values(values, f"records[seq={seq}]", valid)
        else:
            _check_record(rec, seq, valid)
            if rec["type"] != "history":
                cols.others.append(rec)
                seq += 1
                continue
            values = rec["values"]
        if set(map(type, values.values())) <= plain_types:
            cols.add_plain(seq, rec["step"], rec["time"], values)
        else:
            cols.add_special(seq, rec["step"], rec["time"], values)
        seq += 1
    return cols


_SEQ_TYPE = (itemgetter("seq"), itemgetter("type"))
_STEP_TIME_VALUES = itemgetter("step", "time", "values")
_MAX_STEP = 2**62
MAX_SEQ = 2**62


def _columnar(
    records: list[Any], first: int, valid: ValidKeys | None = None
) -> HistoryColumns | None:
    """Validate and columnise a batch a column at a time, or None to decline it.

    Takes batches whose records are objects numbered ``first, first+1, ...``, with
    history records whose envelope (step, time, values) is well-typed and whose keys
    are valid. Other record types are checked one by one (they are rare); history rows
    holding anything but ints and finite floats are checked and columnised one by one
    too, per group of rows sharing a key tuple. Declines (None) anything else, so every
    error message comes from the record-by-record path.

    Works through the batch in chunks of ``_CHUNK`` records: each chunk's column passes
    then stay in the CPU's cache (a 1 MiB batch's parsed records are several MB, and
    pass after pass over all of them measured ~1.5x slower per record).
    """
    cols = HistoryColumns()
    valid = valid or ValidKeys()
    for start in range(0, len(records), _CHUNK):
        if not _columnar_chunk(records[start : start + _CHUNK], first + start, cols, valid):
            return None
    return cols


_CHUNK = 1024
# Up to this many history rows, a chunk is validated and grouped without numpy.
_SMALL_CHUNK = 64
_ENVELOPE = itemgetter("seq", "type", "step", "time", "values")


def _columnar_chunk(records: list[Any], first: int, cols: HistoryColumns, valid: ValidKeys) -> bool:
    """Add one chunk of records (numbered from ``first``) to ``cols``; False to decline."""
    n = len(records)
    offset = len(cols.seqs)  # this chunk's first history row in cols
    try:
        if set(map(type, records)) != {dict}:
            return False
        try:  # one pass for the usual chunk: history records only
            seqs, types, steps, times, values = zip(*map(_ENVELOPE, records), strict=True)
            hist, hist_seqs = records, seqs
        except KeyError:  # other kinds of records have other fields
            seqs = tuple(map(_SEQ_TYPE[0], records))
            types = tuple(map(_SEQ_TYPE[1], records))
            hist = None
        if seqs != tuple(range(first, first + n)) or set(map(type, seqs)) != {int}:
            return False  # also rejects True/1.0 posing as 1: their type is not int
        kinds = set(types)
        if kinds != {"history"}:
            if not kinds <= RECORD_KINDS:
                return False
            for rec, kind in zip(records, types, strict=True):
                if kind != "history":
                    _check_record(rec, rec["seq"], valid)
                    cols.others.append(rec)
            hist = [r for r, k in zip(records, types, strict=True) if k == "history"]
            if not hist:
                return True
            hist_seqs = tuple(r["seq"] for r in hist)
            steps, times, values = zip(*map(_STEP_TIME_VALUES, hist), strict=True)
        elif hist is None:
            return False  # history records without their fields
        if (
            set(map(type, steps)) != {int}
            or min(steps) < 0
            or max(steps) >= _MAX_STEP
            or set(map(type, values)) != {dict}
            or not set(map(type, times)) <= PLAIN_TYPES
        ):
            return False
        # A small chunk (the usual batch of a second's rows) is checked in plain Python:
        # numpy's per-call cost (~4 us a call here) is more than the work for a few rows.
        small = len(hist) <= _SMALL_CHUNK
        if small:
            if not all(map(isfinite, times)):  # (an int past float's range: OverflowError)
                return False
        else:
            times_np = np.array(times, dtype=np.float64)
            if not np.isfinite(times_np).all():
                return False
    except (KeyError, TypeError, OverflowError, ValueError, DomainError):
        return False  # the record-by-record path finds (and names) the first problem
    m = len(hist)
    cols.seqs.extend(hist_seqs)
    cols.steps.extend(steps)
    # Integer times are allowed; rows store floats (and partial replays read the record).
    if int in set(map(type, times)):
        floats = list(map(float, times)) if small else times_np.tolist()
        cols.times.extend(floats)
        for rec, t in zip(hist, floats, strict=True):
            rec["time"] = t
    else:
        cols.times.extend(times)
    cols.values.extend(values)
    cols.max_step = max(cols.max_step, max(steps))
    # Group rows by key tuple; usually there is one (the same keys at every step).
    key_tuples = list(map(tuple, values))
    distinct = dict.fromkeys(key_tuples)  # in order of first appearance
    for keys in distinct:
        if not valid.names.issuperset(keys):
            try:
                for key in keys:
                    check_key(key, "", valid)
            except DomainError:
                return False  # the record-by-record path names the record
    groups: dict[tuple[str, ...], Sequence[int]]
    if len(distinct) == 1:
        groups = {key_tuples[0]: range(m)}
    else:
        by_keys: dict[tuple[str, ...], list[int]] = {k: [] for k in distinct}
        for pos, keys in enumerate(key_tuples):
            by_keys[keys].append(pos)
        groups = dict(by_keys)
    special: list[int] = []  # positions in this chunk
    for keys, positions in groups.items():
        rows = values if type(positions) is range else map(values.__getitem__, positions)
        if small:
            tuples = list(map(tuple, map(dict.values, rows)))
            flat_t = list(chain.from_iterable(tuples))
            # (orjson keeps integers in 64 bits: float() of one cannot overflow)
            if set(map(type, flat_t)) <= PLAIN_TYPES and all(map(isfinite, flat_t)):
                cols.add_rows(keys, [offset + p for p in positions], tuples)
            else:
                special.extend(positions)  # checked and normalised row by row below
            continue
        flat = list(chain.from_iterable(map(dict.values, rows)))  # row-major
        matrix = None
        if set(map(type, flat)) <= PLAIN_TYPES:
            # (orjson parses neither NaN nor a literal like 1e999, and keeps integers in 64
            # bits; the checks below are for the day a parser does otherwise)
            try:
                matrix = np.array(flat, dtype=np.float64).reshape(len(positions), len(keys))
            except OverflowError:
                matrix = None
            if matrix is not None and not np.isfinite(matrix).all():
                matrix = None  # checked and normalised row by row below
        if matrix is None:
            special.extend(positions)
        else:
            cols.add_group(keys, np.asarray(positions, dtype=np.intp) + offset, matrix)
    for pos in sorted(special):
        # Checked (and non-finite floats encoded) in place, before the rows are dumped.
        try:
            vals = check_values(values[pos], f"records[seq={hist_seqs[pos]}]", valid)
        except DomainError:
            return False  # let the record-by-record path name the first problem
        if set(map(type, vals.values())) <= PLAIN_TYPES:
            cols.add_plain_at(offset + pos, vals)
        else:
            cols.add_special_at(offset + pos, vals)
    cols.jsons.extend(map(bytes.decode, map(orjson.dumps, values)))
    return True


def decode_body(body: bytes, gzip: bool, valid: ValidKeys | None = None) -> Batch:
    """Inflate (bounded, see :class:`~gradexp.server.domain.bodies.Inflater`) and decode a
    request body as received."""
    if gzip:
        return decode_batch(gunzip_batch(body), valid)
    ValueCounter().feed(body)
    return decode_batch(body, valid)


def decode_batch(body: bytes | bytearray, valid: ValidKeys | None = None) -> Batch:
    """Parse and validate an ingest body (already decompressed); ``valid``: the process's
    cache of valid key names (none: a fresh one for this batch)."""
    doc = parse_json(body)
    if type(doc) is not dict:
        raise bad_batch('the body must be an object {"first_seq", "last_seq", "records"}')
    first, last, records = doc.get("first_seq"), doc.get("last_seq"), doc.get("records")
    if type(first) is not int or type(last) is not int or first < 1 or last < first:
        raise bad_batch("first_seq and last_seq must be integers with 1 <= first_seq <= last_seq")
    if last >= MAX_SEQ:
        raise bad_batch("sequence numbers must be below 2**62")
    if type(records) is not list or len(records) != last - first + 1:
        raise bad_batch(
            f"records must hold exactly last_seq - first_seq + 1 = {last - first + 1} records"
        )
    # Most batches are history rows of plain numbers under a few key sets: validated and
    # columnised a column at a time by C-level map/zip/set/numpy calls (no Python code
    # per record). Anything unusual takes the record-by-record path, which also names
    # the first problem precisely.
    valid = valid or ValidKeys()
    cols = _columnar(records, first, valid)
    if cols is None:
        cols = _columns_record_by_record(records, first, valid)
    return Batch(
        first_seq=first, last_seq=last, records=records, columns=cols.finish(), others=cols.others
    )
