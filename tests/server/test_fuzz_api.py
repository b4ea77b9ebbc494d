"""Property-based tests against the HTTP API of a real server: no input a client can send
is answered 500. Every refusal is a 4xx with a JSON error.

Hypothesis draws JSON documents (deep, wide, odd numbers, odd strings) for every record
type, run bodies and query parameters, and sends them to the shared SQLite server. A failing
example is shrunk to the smallest input that still fails and printed.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import batch, gz, history, new_id, put_run

pytestmark = pytest.mark.slow

SETTINGS = settings(
    # GRADEXP_FUZZ_EXAMPLES=2000 hunts longer (a few minutes).
    max_examples=int(os.environ.get("GRADEXP_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # no example database left in the working tree
)

# Integers at the edges of what SQL and JSON hold, beside ordinary ones.
EDGE_INTS = st.sampled_from(
    [0, -1, 1, 2**31, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), -(2**63) - 1]
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**64) + 1, max_value=2**64 - 1),
    EDGE_INTS,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0]),
)
TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "\x00", "a\x00b", "#", "a#b", "..", "/", "a/../b", "'", '"', "\\", "%"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)


def _deep(depth: int, leaf: Any, as_list: bool) -> Any:
    doc = leaf
    for _ in range(depth):
        doc = [doc] if as_list else {"a": doc}
    return doc


# Documents nested up to 400 deep (orjson reads 1,024 levels but writes only 254).
DEEP = st.builds(_deep, st.integers(min_value=1, max_value=400), SCALARS, st.booleans())
JSON = st.one_of(
    st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)
        ),
        max_leaves=20,
    ),
    DEEP,
)
TYPED = st.fixed_dictionaries(
    {"_type": st.sampled_from(["float", "histogram", "tensor", "image", "gallery", "x"])},
    optional={
        "bins": st.one_of(st.lists(NUMBERS, max_size=5), JSON),
        "counts": st.one_of(st.lists(NUMBERS, max_size=4), JSON),
        "value": st.one_of(st.sampled_from(["NaN", "Infinity", "-Infinity"]), JSON),
        "path": TEXT,
        "sha256": st.one_of(TEXT, st.just("a" * 64)),
        "size": NUMBERS,
        "shape": st.one_of(st.lists(NUMBERS, max_size=3), JSON),
        "dtype": TEXT,
        "images": JSON,
        "mean": st.one_of(NUMBERS, JSON),
        "extra": JSON,
    },
)
VALUES = st.dictionaries(TEXT, st.one_of(SCALARS, TYPED, JSON), max_size=5)


def _records(seq: int) -> st.SearchStrategy[dict[str, Any]]:
    """One record of any type at ``seq``, its fields drawn from plausible and hostile ones."""
    base = {"seq": st.just(seq)}
    kinds = {
        "history": {"step": st.one_of(NUMBERS, JSON), "time": NUMBERS, "values": VALUES},
        "config": {"update": st.one_of(st.dictionaries(TEXT, JSON, max_size=4), JSON)},
        "summary": {"update": st.one_of(VALUES, JSON)},
        "file": {"path": TEXT, "sha256": TEXT, "size": NUMBERS, "content_type": JSON},
        "telemetry": {
            "dropped_values": st.one_of(st.dictionaries(st.sampled_from("ab"), NUMBERS), JSON),
            "dropped_records": NUMBERS,
        },
        "finish": {"exit_code": st.one_of(NUMBERS, JSON), "time": NUMBERS},
        "metric": {"name": TEXT, "step_metric": JSON, "summary": JSON, "goal": JSON},
        "alert": {"title": TEXT, "text": TEXT, "level": TEXT, "time": NUMBERS},
        "system": {"time": NUMBERS, "values": st.one_of(VALUES, JSON), "rank": NUMBERS},
        "console": {"lines": JSON, "stream": JSON, "rank": NUMBERS},
        "environment": {"env": JSON, "rank": NUMBERS},
        "nonsense": {"x": JSON},
    }
    return st.one_of(
        *(
            st.fixed_dictionaries({**base, "type": st.just(kind)}, optional=fields)
            for kind, fields in kinds.items()
        )
    )


def assert_no_500(result: tuple[int, Any], what: Any) -> None:
    status, body = result
    assert status < 500, (what, status, body)
    if status >= 400:
        assert isinstance(body, dict) and body.get("error", {}).get("code"), (what, body)


@pytest.fixture(scope="module")
def fuzz_run(server):
    """One run the record fuzzing appends to (each example goes after what it holds)."""
    run_id = new_id("fuzz")
    assert put_run(server, run_id)[0] == 201
    return run_id


def _acked(server, run_id: str) -> int:
    status, body = server.request("GET", f"/api/v1/runs/{run_id}")
    assert status == 200
    return int(body["acked_seq"])


@SETTINGS
@given(data=st.data())
def test_records_of_every_type(server, fuzz_run, data):
    seq = _acked(server, fuzz_run) + 1
    n = data.draw(st.integers(min_value=1, max_value=3))
    recs = [data.draw(_records(seq + i)) for i in range(n)]
    doc = batch(recs)
    result = server.request(
        "POST",
        f"/api/v1/runs/{fuzz_run}/records",
        raw=gz(doc),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert_no_500(result, doc)
    # The run still takes an ordinary batch afterwards (nothing got stuck).
    seq = _acked(server, fuzz_run) + 1
    ok = batch([history(seq, 0, {"loss": 1.0})])
    status, body = server.request(
        "POST",
        f"/api/v1/runs/{fuzz_run}/records",
        raw=gz(ok),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert status == 200, (doc, body)


@SETTINGS
@given(
    body=st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"project": st.one_of(st.just("fuzz"), TEXT), "attempt": st.one_of(TEXT, JSON)},
            optional={
                "name": JSON,
                "config": JSON,
                "tags": JSON,
                "notes": JSON,
                "group": JSON,
                "job_type": JSON,
                "host": JSON,
                "started_at": NUMBERS,
                "resume": JSON,
            },
        ),
    )
)
def test_run_bodies(server, body):
    assert_no_500(server.request("PUT", f"/api/v1/runs/{new_id('fz')}", body), body)


READS = [
    "/api/v1/projects/ada/fuzz/runs",
    "/api/v1/projects/ada/fuzz/columns",
    "/api/v1/runs/{run}",
    "/api/v1/runs/{run}/keys",
    "/api/v1/runs/{run}/history",
    "/api/v1/runs/{run}/history/rows",
    "/api/v1/runs/{run}/histograms",
    "/api/v1/runs/{run}/alerts",
    "/api/v1/runs/{run}/files",
    "/api/v1/runs/{run}/tensor",
    "/api/v1/runs/{run}/tensor.npy",
    "/api/v1/runs/{run}/system",
    "/api/v1/runs/{run}/logs",
    "/api/v1/runs/{run}/logs.txt",
    "/api/v1/runs/{run}/environment",
]
INT_TEXT = st.one_of(
    EDGE_INTS.map(str),
    st.integers().map(str),
    st.sampled_from(["9" * 30, "-1", "1e3", " 1", "0x10", "", "+5", "١٢"]),
)
ORDER = st.one_of(
    st.sampled_from(["-started_at", "name", "summary:loss", "-config:a.b"]),
    st.builds(lambda sign, src, key: sign + src + key, st.sampled_from(["", "-", "+"]),
              st.sampled_from(["summary:", "config:"]), TEXT),
)  # fmt: skip
PARAMS = {
    "order": ORDER,
    "cursor": st.one_of(INT_TEXT, TEXT),
    "limit": INT_TEXT,
    "state": TEXT,
    "q": TEXT,
    "tag": TEXT,
    "group": TEXT,
    "keys": st.one_of(TEXT, st.lists(TEXT, max_size=5).map(",".join)),
    "samples": INT_TEXT,
    "min_step": INT_TEXT,
    "max_step": INT_TEXT,
    "after_seq": INT_TEXT,
    "key": TEXT,
    "path": TEXT,
    "index": st.one_of(TEXT, st.lists(st.one_of(INT_TEXT, st.just(":")), max_size=4).map(",".join)),
    "max": INT_TEXT,
    "name": TEXT,
    "stream": TEXT,
    "tail": TEXT,
    "rank": INT_TEXT,
}


@SETTINGS
@given(
    path=st.sampled_from(READS),
    params=st.fixed_dictionaries({}, optional=PARAMS),
)
def test_read_parameters(server, fuzz_run, path, params):
    url = path.format(run=fuzz_run) + "?" + urllib.parse.urlencode(params)
    assert_no_500(server.request("GET", url), url)


@SETTINGS
@given(run=TEXT, key=TEXT)
def test_odd_ids_in_paths(server, run, key):
    quoted = urllib.parse.quote(run, safe="")
    for url in (
        f"/api/v1/runs/{quoted}",
        f"/api/v1/runs/{quoted}/history?keys={urllib.parse.quote(key)}",
        f"/api/v1/runs/{quoted}/files/{urllib.parse.quote(key)}",
        f"/api/v1/projects/{quoted}/{urllib.parse.quote(key, safe='')}/runs",
    ):
        if "/runs/" in url and not quoted:
            continue
        assert_no_500(server.request("GET", url), url)
    assert_no_500(server.request("PUT", f"/api/v1/runs/{quoted or 'x'}", {"project": key}), run)


def test_the_fuzzed_run_reads_back(server, fuzz_run):
    # After everything above, the run's reads all still answer.
    for path in READS[2:9]:
        status, body = server.request("GET", path.format(run=fuzz_run) + "?key=loss&path=x")
        assert status < 500, (path, body)
    status, body = server.request("GET", f"/api/v1/runs/{fuzz_run}")
    assert status == 200 and json.dumps(body)
