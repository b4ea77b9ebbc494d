"""The server's check of ``table`` values: a malformed one is a precise 400 and nothing of
its batch is written."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import batch, history, new_id, post, put_run, rows

GOOD = {
    "_type": "table",
    "path": f"media/{'a' * 64}.table.json",
    "sha256": "a" * 64,
    "size": 10,
    "rows": 1,
    "columns": [{"name": "a", "type": "number"}],
}


def test_a_well_formed_table_value_is_kept(server: Any) -> None:
    run_id = new_id()
    assert put_run(server, run_id)[0] == 201
    assert post(server, run_id, batch([history(1, 0, {"t": GOOD})]))[0] == 200
    assert rows(server, run_id)[0]["t"] == GOOD


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": -1}, "rows must be an integer"),
        ({"rows": 10**7}, "rows must be an integer"),
        ({"columns": [{"name": "a", "type": "tensor"}]}, r"columns[0] must be"),
        ({"columns": [{"name": "", "type": "number"}]}, r"columns[0] must be"),
        ({"columns": [{"name": "a", "type": "number", "x": 1}]}, r"columns[0] must be"),
        ({"columns": "a,b"}, "columns must be a list"),
        ({"size": 1 << 40}, "size must be an integer"),
        ({"sha256": "nope"}, "sha256"),
        ({"path": "../../etc/passwd"}, "path"),
        ({"extra": {"deep": {"er": 1}}}, "exactly path, sha256, size, rows, columns"),
    ],
)
def test_a_malformed_table_value_is_refused_whole(
    server: Any, change: dict[str, Any], message: str
) -> None:
    run_id = new_id()
    assert put_run(server, run_id)[0] == 201
    status, body = post(
        server,
        run_id,
        batch([history(1, 0, {"loss": 1.0}), history(2, 1, {"t": {**GOOD, **change}})]),
    )
    assert status == 400, body
    assert message in body["error"]["message"], body
    assert rows(server, run_id) == []  # the good record of the batch was not written either
