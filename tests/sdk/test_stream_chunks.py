"""The stream frames long runs of plain log() calls in chunks (``Framer._drain_bulk``):
the run file must hold exactly what the record-at-a-time path writes, whatever is mixed in.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest

import gradexp
import gradexp.stream.steps as steps

from .conftest import file_records


def _log_a_mix(n: int) -> None:
    """Plain steps with everything the per-record path must handle mixed in."""
    for i in range(n):
        if i % 997 == 5:
            gradexp.log({"loss": math.nan, "acc": math.inf})  # non-finite: encoded
        elif i % 991 == 7:
            gradexp.log({"extra": i})  # a key not seen before
        elif i % 983 == 11:
            gradexp.log({"bad#key": 1.0, "loss": 0.5})  # a refused key, a kept one
        elif i % 977 == 13:
            gradexp.log({"held": 1}, commit=False)  # merged into the next step
        elif i % 971 == 17:
            gradexp.log({"loss": 2.0}, step=i * 10)  # an explicit step
        elif i % 967 == 19:
            gradexp.log({"big": 2**70})  # beyond 64 bits: dropped
        else:
            gradexp.log({"loss": 1.0 / (i + 1), "acc": i % 7, "name": "x", "ok": True})


def _run_file(n: int) -> tuple[list[Any], dict[str, int], dict[str, Any]]:
    """(history records as (step, values), dropped-value counts, summary) of a fresh run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = gradexp.init(project="chunks", mode="offline")
        _log_a_mix(n)
        summary = dict(run.summary)
        gradexp.finish()
    assert run.dir is not None
    records = file_records(run.dir)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    history = [(r.data["step"], r.data["values"]) for r in records if r.type == "history"]
    dropped: dict[str, int] = {}
    # Telemetry records are written when a drain ends, so where they fall depends on
    # timing, not on framing: compare their totals.
    for r in records:
        for key, count in r.data.get("dropped_values", {}).items():
            dropped[key] = dropped.get(key, 0) + count
    return history, dropped, summary


def test_chunked_framing_writes_what_record_at_a_time_writes(monkeypatch: pytest.MonkeyPatch):
    n = 6000
    chunks: list[int] = []
    real = steps.Framer._drain_bulk

    def counting(self: Any, *args: Any) -> tuple[int, int]:
        taken, next_step = real(self, *args)
        chunks.append(taken)
        return taken, next_step

    monkeypatch.setattr(steps.Framer, "_drain_bulk", counting)
    chunked = _run_file(n)
    assert sum(chunks) > n // 2, "the chunked path was hardly used: the test proves nothing"

    monkeypatch.setattr(steps, "_BULK_MIN", 10**9)  # record at a time only
    before = len(chunks)
    one_by_one = _run_file(n)
    assert sum(chunks[before:]) == 0, "the record-at-a-time run still framed in chunks"

    assert chunked == one_by_one
    history, dropped, summary = chunked
    held = len([i for i in range(n) if i % 977 == 13])
    assert len(history) == n - held
    assert history[5][1] == {
        "loss": {"_type": "float", "value": "NaN"},
        "acc": {"_type": "float", "value": "Infinity"},
    }
    assert dropped == {"bad#key": 7, "big": 7}
    assert summary["loss"] == 1.0 / n and summary["extra"] == 5953


def _log_explicit_steps() -> list[int]:
    """What trainer integrations do, log(..., step=i), with every turn the step rules
    take mixed in; returns the step each history record must have."""
    want: list[int] = []
    for i in range(3000):  # increasing steps, as a trainer logs them
        gradexp.log({"loss": 1.0 / (i + 1), "lr": 0.1}, step=i)
        want.append(i)
    for _ in range(100):  # auto steps carry on after the highest step
        gradexp.log({"loss": 0.5})
    want += range(3000, 3100)
    for _ in range(50):  # the same step again: records at that step
        gradexp.log({"acc": 0.25}, step=3099)
    want += [3099] * 50
    for i in range(2000):  # steps with gaps
        gradexp.log({"loss": 0.1, "acc": i % 5}, step=5000 + 3 * i)
    want += range(5000, 11000, 3)
    gradexp.log({"loss": 9.0}, step=10)  # lower than the last step: kept there, warned
    want.append(10)
    for i in range(500):  # explicit after the lower step resumes above it
        gradexp.log({"loss": math.nan if i == 7 else 0.2}, step=11000 + i)
    want += range(11000, 11500)
    gradexp.log({"after": 1})  # an auto step after explicit ones
    want.append(11500)
    return want


def test_explicit_steps_are_framed_in_chunks_as_record_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
):
    chunks: list[int] = []
    real = steps.Framer._drain_bulk

    def counting(self: Any, *args: Any) -> tuple[int, int]:
        taken, next_step = real(self, *args)
        chunks.append(taken)
        return taken, next_step

    def history() -> tuple[list[int], list[Any], list[int]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = gradexp.init(project="chunks", mode="offline")
            want = _log_explicit_steps()
            gradexp.finish()
        assert run.dir is not None
        records = [r for r in file_records(run.dir) if r.type == "history"]
        lower = [w for w in caught if "lower than the last step" in str(w.message)]
        assert len(lower) == 1
        return [r.data["step"] for r in records], [r.data["values"] for r in records], want

    monkeypatch.setattr(steps.Framer, "_drain_bulk", counting)
    chunked_steps, chunked_values, want = history()
    assert sum(chunks) > 4000, "explicit steps were hardly framed in chunks"
    assert chunked_steps == want

    monkeypatch.setattr(steps, "_BULK_MIN", 10**9)  # record at a time only
    one_steps, one_values, _ = history()
    assert (one_steps, one_values) == (chunked_steps, chunked_values)
    assert chunked_values[want.index(11007)] == {"loss": {"_type": "float", "value": "NaN"}}
