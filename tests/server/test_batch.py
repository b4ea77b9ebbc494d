"""Batch validation: the columnar path (whole columns at a time) gives exactly what the
record-by-record path gives, and declines what it must not take."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from gradexp.server.domain import batch as b
from gradexp.server.domain.errors import DomainError
from gradexp.server.http.errors import status_for

from .helpers import history

HIST = {
    "_type": "histogram",
    "bins": [0, 1, 2],
    "counts": [1, 2],
    "min": 0,
    "max": 2,
    "mean": 1,
    "std": 0.5,
    "norm": 2,
    "count": 3,
    "nan": 0,
    "inf": 0,
    "ninf": 0,
    "zeros": 1,
}


def _renumber(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for i, rec in enumerate(records):
        rec["seq"] = i + 1
    return records


def _config_and_finish() -> list[dict[str, Any]]:
    recs = [history(0, i, {"a": float(i)}) for i in range(20)]
    recs.insert(5, {"seq": 0, "type": "config", "update": {"x": 1}})
    recs.append({"seq": 0, "type": "summary", "update": {"best": 2.5}})
    recs.append({"seq": 0, "type": "finish", "exit_code": 0, "time": 1.7e9})
    return _renumber(recs)


BATCHES = {
    "plain": [history(i + 1, i, {"a": i * 0.5, "b": i}) for i in range(100)],
    "two key sets": [
        history(i + 1, i, {"a": 1.5} if i % 3 else {"a": 2.0, "b": 3}) for i in range(100)
    ],
    "strings now and then": [
        history(i + 1, i, {"a": 1.5, "s": "x"} if i % 5 == 0 else {"a": float(i)})
        for i in range(50)
    ],
    "a null in a plain key set": [
        history(i + 1, i, {"a": None} if i % 7 == 0 else {"a": float(i)}) for i in range(50)
    ],
    "bools": [history(i + 1, i, {"a": True if i % 2 else 1.0}) for i in range(50)],
    "histograms": [history(i + 1, i, {"h": dict(HIST), "l": 0.1}) for i in range(20)],
    "encoded NaN": [
        history(i + 1, i, {"a": {"_type": "float", "value": "NaN"}}) for i in range(20)
    ],
    "integer times": [history(i + 1, i, {"a": 1.0}, t=1_700_000_000 + i) for i in range(20)],
    "other records between": _config_and_finish(),
    "steps going down": [history(i + 1, 100 - i, {"a": float(i)}) for i in range(20)],
    "empty values": [history(i + 1, i, {}) for i in range(5)],
    "a second's rows": [history(i + 1, 40 + i, {"a": 1.0 / (i + 1), "b": i}) for i in range(10)],
    "across a rollup bucket": [history(i + 1, 28 + i, {"a": -0.0, "b": 1e300}) for i in range(10)],
    "big integers": [history(i + 1, i, {"a": 2**63 - 1 - i, "b": -(2**63)}) for i in range(10)],
}


def _both(records: list[dict[str, Any]]) -> tuple[Any, Any]:
    raw = orjson.dumps({"first_seq": 1, "last_seq": len(records), "records": records})
    one, two = orjson.loads(raw), orjson.loads(raw)
    columnar = b._columnar(one["records"], 1)
    by_record = b._columns_record_by_record(two["records"], 1)
    return columnar, by_record


def _view(cols: Any) -> tuple[Any, ...]:
    key_ids = {k: i + 1 for i, k in enumerate(cols.key_order)}
    nan = "nan"

    def norm(xs: Any) -> Any:
        return [nan if isinstance(x, float) and math.isnan(x) else x for x in xs]

    rollups = sorted(tuple(norm(r)) for r in cols.rollup_rows(key_ids))
    numeric = {k: (p.tolist(), norm(v.tolist())) for k, (p, v) in cols.numeric.items()}
    return (
        cols.seqs,
        cols.steps,
        cols.times,
        cols.jsons,
        list(cols.key_order),
        numeric,
        cols.typed,
        cols.max_step,
        cols.key_rows(key_ids),
        rollups,
        [r["seq"] for r in cols.others],
    )


@pytest.mark.parametrize("small", [0, 5, 10**6])
@pytest.mark.parametrize("chunk", [1024, 7])
@pytest.mark.parametrize("name", list(BATCHES))
def test_columnar_equals_record_by_record(name, chunk, small, monkeypatch):
    # 7: batches cut into chunks mid-group, mid-special-run, around other records.
    # small: chunks of up to that many history rows are checked without numpy (0: never;
    # 10**6: always; 5: with chunks of 7, the last chunk, or one holding other records,
    # takes the other path than full ones, so one key set's group mixes both).
    monkeypatch.setattr(b, "_CHUNK", chunk)
    monkeypatch.setattr(b, "_SMALL_CHUNK", small)
    columnar, by_record = _both(BATCHES[name])
    assert columnar is not None, "the columnar path declined a valid batch"
    assert _view(columnar.finish()) == _view(by_record.finish())


BAD = {
    "a gap in the sequence": [history(1, 0, {"a": 1}), history(3, 1, {"a": 1})],
    "a negative step": [history(1, -1, {"a": 1})],
    "a reserved key": [history(1, 0, {"a#b": 1})],
    "a list value": [history(1, 0, {"a": [1]})],
    "a boolean seq": [{"seq": True, "type": "history", "step": 0, "time": 1.0, "values": {}}],
    "no time": [{"seq": 1, "type": "history", "step": 0, "values": {}}],
    "an unknown type": [{"seq": 1, "type": "bogus"}],
    "a bad config among history": [
        history(1, 0, {"a": 1.0}),
        {"seq": 2, "type": "config", "update": []},
    ],
}


@pytest.mark.parametrize("name", list(BAD))
def test_columnar_declines_bad_batches_and_the_error_names_the_record(name):
    records = BAD[name]
    raw = orjson.dumps({"first_seq": 1, "last_seq": len(records), "records": records})
    assert b._columnar(orjson.loads(raw)["records"], 1) is None
    with pytest.raises(DomainError) as err:
        b.decode_batch(raw)
    assert status_for(err.value) == 400
    assert "seq" in str(err.value)
