"""The runs table's order by a summary or config column, on SQLite, PostgreSQL and MariaDB:
numbers in numeric (not text) order, everything else after them, missing values last in
both directions; explicit summary values win over the last logged value."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.server.helpers import batch, history, post, put_run

NAN = {"_type": "float", "value": "NaN"}

# name -> (logged val/acc or None, explicit summary or None, config)
RUNS: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "nine": (9, None, {"model": {"width": 64}, "lr": 0.001}),
    "ten": (10, None, {"model": {"width": 128}, "lr": 0.01}),
    "hundred": (100, None, {"model": {"width": 8}, "lr": 0.1}),
    "overridden": (2.5, {"val/acc": 1000}, {"model": {"width": "wide"}}),
    "missing": (None, None, {"lr": 1e-4}),
    "nan": (NAN, None, {"model": {"depth": 3}}),
    "text": ("n/a", None, {"model.width": 16}),  # a top-level key with a dot in its name
    "false": (False, None, {}),
}


def order(srv: Any, project: str, spec: str, limit: int = 1000) -> list[str]:
    """The run names in the order the API gives, following the pages."""
    names: list[str] = []
    cursor = ""
    while True:
        status, body = srv.request(
            "GET",
            f"/api/v1/projects/{srv.user}/{project}/runs?order={quote(spec)}&limit={limit}"
            + (f"&cursor={cursor}" if cursor else ""),
        )
        assert status == 200, body
        names += [r["name"] for r in body["runs"]]
        if body["next_cursor"] is None:
            return names
        cursor = body["next_cursor"]


@pytest.mark.slow
def test_order_by_summary_and_config_values(start_server: Any, db_url: str) -> None:
    srv = start_server(db_url=db_url)
    project = "sorting"
    for i, (name, (logged, explicit, config)) in enumerate(RUNS.items()):
        run_id = f"sort{i}"
        status, body = put_run(srv, run_id, project=project, name=name, config=config)
        assert status in (200, 201), body
        records = [history(1, 0, {"loss": 1.0} if logged is None else {"val/acc": logged})]
        if explicit is not None:
            records.append({"seq": 2, "type": "summary", "update": explicit})
        status, body = post(srv, run_id, batch(records))
        assert status == 200, body

    # Numbers by value (9 < 10 < 100, not "10" < "100" < "9"), booleans as 0/1, the explicit
    # summary (1000) over the logged value (2.5); then text, then the run without one.
    assert order(srv, project, "summary:val/acc") == [
        "false",
        "nine",
        "ten",
        "hundred",
        "overridden",
        "text",
        "nan",
        "missing",
    ]
    assert order(srv, project, "-summary:val/acc") == [
        "overridden",
        "hundred",
        "ten",
        "nine",
        "false",
        "nan",
        "text",
        "missing",
    ]
    # Pages of 3 follow the same order.
    assert order(srv, project, "-summary:val/acc", limit=3)[:4] == [
        "overridden",
        "hundred",
        "ten",
        "nine",
    ]

    # Nested config by its dotted path; a top-level key named "model.width" wins over the
    # path for its run; a string after the numbers; runs without the key last either way.
    by_width = order(srv, project, "config:model.width")
    assert by_width[:5] == ["hundred", "text", "nine", "ten", "overridden"]
    assert set(by_width[5:]) == {"missing", "nan", "false"}
    by_width_desc = order(srv, project, "-config:model.width")
    assert by_width_desc[:5] == ["ten", "nine", "text", "hundred", "overridden"]
    assert set(by_width_desc[5:]) == {"missing", "nan", "false"}
    assert order(srv, project, "config:lr")[:4] == ["missing", "nine", "ten", "hundred"]

    # A key with a quote and a slash, logged, and set explicitly: PostgreSQL and MySQL
    # address it exactly; SQLite's JSON paths cannot name it inside the explicit summary, so
    # there the explicit value is passed over for the logged one rather than failing.
    odd = 'we"ird/key'
    for run_id, v in (("sortq1", 2), ("sortq2", 1), ("sortq3", 3)):
        put_run(srv, run_id, project="odd", name=f"v{v}")
        records = [history(1, 0, {odd: v})]
        if v == 3:
            records.append({"seq": 2, "type": "summary", "update": {odd: 0}})
        post(srv, run_id, batch(records))
    expected = ["v1", "v2", "v3"] if db_url.startswith("sqlite") else ["v3", "v1", "v2"]
    assert order(srv, "odd", f"summary:{odd}") == expected

    # A key nobody has: every run "missing", still a valid order (by id).
    assert len(order(srv, project, "summary:nope")) == len(RUNS)
    for bad in ("summary:", "config:", "bogus", "-"):
        status, body = srv.request(
            "GET", f"/api/v1/projects/{srv.user}/{project}/runs?order={quote(bad)}"
        )
        assert status == 400 and "summary:KEY" in body["error"]["message"], bad


@pytest.mark.parametrize("key", ['quote"d', "back\\slash", "unicode/ключ"])
def test_odd_summary_keys_sort_without_errors(server: Any, key: str) -> None:
    project = f"odd-{abs(hash(key)) % 10**8}"
    for i, v in enumerate([3, 1, 2]):
        run_id = f"odd{abs(hash(key)) % 10**8}x{i}"
        put_run(server, run_id, project=project, name=f"v{v}")
        post(server, run_id, batch([history(1, 0, {key: v})]))
    assert order(server, project, f"summary:{key}") == ["v1", "v2", "v3"]
