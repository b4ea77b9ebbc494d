"""The server's side of what the machine did: records ``system``, ``console`` and
``environment`` ingested, deduplicated, capped, and read back (every database)."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import SSE, batch, get, history, new_id, post, post_as, put_run, put_writer, run_async

KEEPALIVE_SECONDS = 15  # the server's default (GRADEXP_SERVER_KEEPALIVE)

T0 = 1.75e9


def system(seq: int, t: float, rank: int | None = None, **values: float) -> dict[str, Any]:
    rec: dict[str, Any] = {"seq": seq, "type": "system", "time": t, "values": values}
    if rank is not None:
        rec["rank"] = rank
    return rec


def console(seq: int, *lines: tuple[int, str, str], rank: int | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "seq": seq,
        "type": "console",
        "lines": [
            {"id": i, "time": T0 + seq, "stream": stream, "text": text} for i, stream, text in lines
        ],
    }
    if rank is not None:
        rec["rank"] = rank
    return rec


ENV = {"program": "/w/train.py", "args": ["--lr", "0.1"], "python": {"version": "3.11.7"}}


def test_machine_records_round_trip(db_server: Any) -> None:
    srv = db_server
    run_id = new_id()
    assert put_run(srv, run_id)[0] == 201
    first = batch(
        [
            history(1, 0, {"loss": 1.0}),
            system(2, T0 + 1, **{"cpu.percent": 50.0, "memory.rss_mb": 100.0}),
            console(3, (3 << 16, "stdout", "epoch 1"), (3 << 16 | 1, "stdout", "train 10%")),
            {"seq": 4, "type": "environment", "environment": ENV},
            system(5, T0 + 2, **{"cpu.percent": 150.0, "memory.rss_mb": 300.0}),
            console(6, (6 << 16, "stderr", "Warning: Something"), (3 << 16 | 1, "stdout", "train 55%")),
            system(7, T0 + 3, rank=1, **{"cpu.percent": 7.0}),
        ]
    )  # fmt: skip
    assert post(srv, run_id, first) == (200, {"acked_seq": 7})
    assert post(srv, run_id, first) == (200, {"acked_seq": 7})  # a replay changes nothing
    # A later record replaces line 3<<16|1 (a progress bar's final state).
    second = batch([console(8, (3 << 16 | 1, "stdout", "train 100%"), (8 << 16, "stdout", "done"))])
    assert post(srv, run_id, second) == (200, {"acked_seq": 8})

    series = get(srv, f"/api/v1/runs/{run_id}/system")["series"]
    assert series["cpu.percent"]["value"] == [50.0, 150.0]
    assert series["cpu.percent"]["time"] == [T0 + 1, T0 + 2]
    assert series["memory.rss_mb"]["value"] == [100.0, 300.0]
    one = get(srv, f"/api/v1/runs/{run_id}/system?samples=1")["series"]["cpu.percent"]
    assert one == {"time": [T0 + 2], "value": [100.0], "min": [50.0], "max": [150.0]}
    rank1 = get(srv, f"/api/v1/runs/{run_id}/system?rank=1")["series"]
    assert rank1["cpu.percent"]["value"] == [7.0] and "memory.rss_mb" not in rank1

    logs = get(srv, f"/api/v1/runs/{run_id}/logs")
    assert [(x["stream"], x["text"]) for x in logs["lines"]] == [
        ("stdout", "epoch 1"),
        ("stdout", "train 100%"),
        ("stderr", "Warning: Something"),
        ("stdout", "done"),
    ]
    assert logs["total_lines"] == 4 and logs["dropped_lines"] == 0
    found = get(srv, f"/api/v1/runs/{run_id}/logs?q=warning")["lines"]
    assert [x["text"] for x in found] == ["Warning: Something"]
    assert get(srv, f"/api/v1/runs/{run_id}/logs?q=50%25")["lines"] == []  # % is literal
    assert [x["text"] for x in get(srv, f"/api/v1/runs/{run_id}/logs?stream=stderr")["lines"]] == [
        "Warning: Something"
    ]
    tail = get(srv, f"/api/v1/runs/{run_id}/logs?tail=1&limit=2")["lines"]
    assert [x["text"] for x in tail] == ["Warning: Something", "done"]
    page = get(srv, f"/api/v1/runs/{run_id}/logs?limit=3")
    rest = get(srv, f"/api/v1/runs/{run_id}/logs?limit=3&after_id={page['next_after_id']}")
    assert [x["text"] for x in page["lines"] + rest["lines"]] == [
        x["text"] for x in logs["lines"]
    ] and rest["next_after_id"] is None
    status, text = srv.request("GET", f"/api/v1/runs/{run_id}/logs.txt")
    assert status == 200 and text == b"epoch 1\ntrain 100%\nWarning: Something\ndone\n"

    assert get(srv, f"/api/v1/runs/{run_id}/environment") == {"environment": ENV, "rank": 0}
    assert get(srv, f"/api/v1/runs/{run_id}/environment?rank=1")["environment"] is None

    status, data = srv.request("GET", f"/api/v1/runs/{run_id}/system.parquet")
    assert status == 200
    import io

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    assert table.column("time").to_pylist() == [T0 + 1, T0 + 2, T0 + 3]
    assert table.column("rank").to_pylist() == [0, 0, 1]
    assert table.column("cpu.percent").to_pylist() == [50.0, 150.0, 7.0]
    assert table.column("memory.rss_mb").to_pylist() == [100.0, 300.0, None]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"type": "system", "time": "now", "values": {}}, "time"),
        ({"type": "system", "time": T0, "values": {"cpu": "high"}}, "finite number"),
        ({"type": "system", "time": T0, "values": {"x": 1}, "rank": -1}, "rank"),
        ({"type": "console", "lines": []}, "lines"),
        ({"type": "console", "lines": [{"id": 1, "time": T0, "stream": "stdin", "text": "x"}]}, "stream"),
        ({"type": "console", "lines": [{"id": 1, "time": T0, "stream": "stdout", "text": "x" * 20000}]}, "characters"),
        ({"type": "environment", "environment": ["x"]}, "object"),
    ],
)  # fmt: skip
def test_bad_machine_records_are_refused(server: Any, record: dict[str, Any], message: str) -> None:
    run_id = new_id()
    put_run(server, run_id)
    status, body = post(server, run_id, batch([{"seq": 1, **record}]))
    assert status == 400 and body["error"]["code"] == "bad_batch"
    assert message in body["error"]["message"]


def test_the_log_cap_drops_new_lines_and_counts_them(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradexp.server.domain import machine, machine_reads
    from gradexp.server.storage.db import Database
    from gradexp.server.storage.migrate import migrate

    monkeypatch.setattr(machine, "MAX_LOG_BYTES", 30)

    async def scenario() -> tuple[list[str], dict[str, int]]:
        db = Database(db_url)
        try:
            await migrate(db)
            first = [console(1, (1, "stdout", "0123456789"), (2, "stdout", "abcdefghij"))]
            await db.write(machine.apply_machine_records, db.kind, 7, first)
            # Over the cap: the new line is dropped; the known line may still change.
            more = [console(2, (3, "stdout", "klmnopqrst"), (2, "stdout", "ABCDEFGHIJ"))]
            await db.write(machine.apply_machine_records, db.kind, 7, more)
            async with db.read() as conn:
                lines, _ = await machine_reads.console_page(conn, 7, 0)
                totals = await machine_reads.console_totals(conn, 7, 0)
            return [x["text"] for x in lines], totals
        finally:
            await db.dispose()

    texts, totals = run_async(scenario())
    assert texts == ["0123456789", "ABCDEFGHIJ"]
    assert totals == {"lines": 2, "bytes": 22, "dropped_lines": 1, "dropped_bytes": 11}


def test_live_log_events_resume(server: Any) -> None:
    run_id = new_id()
    put_run(server, run_id)
    post(server, run_id, batch([console(1, (1 << 16, "stdout", "hello")), history(2, 0, {"a": 1})]))
    stream = SSE(server, f"/api/v1/runs/{run_id}/logs/events")
    try:
        event = stream.next(event="console")
        assert event["id"] == "1"
        assert [(x["text"], x["id"], x["seq"], x["rank"]) for x in event["data"]["lines"]] == [
            ("hello", 1 << 16, 1, 0)
        ]
        post(
            server,
            run_id,
            batch([console(3, (1 << 16, "stdout", "hello world"), (3 << 16, "stderr", "oops"))]),
        )
        # A batch of console lines only wakes the stream (not the next keepalive, 15 s on).
        event = stream.next(event="console", timeout=KEEPALIVE_SECONDS - 5)
        assert [(x["text"], x["stream"]) for x in event["data"]["lines"]] == [
            ("hello world", "stdout"),
            ("oops", "stderr"),
        ]
        assert event["id"] == "3"
    finally:
        stream.close()
    again = SSE(server, f"/api/v1/runs/{run_id}/logs/events", headers={"Last-Event-ID": "1"})
    try:
        event = again.next(event="console")
        assert [x["text"] for x in event["data"]["lines"]] == ["hello world", "oops"]
    finally:
        again.close()


def test_live_log_events_of_another_rank(server: Any) -> None:
    """A distributed run's rank 1 commits to its own writer row: its log stream follows
    that row, so each of its batches arrives at once."""
    run_id = new_id()
    assert put_writer(server, run_id, 0)[0] == 201
    assert put_writer(server, run_id, 1)[0] in (200, 201)
    post_as(server, run_id, 1, batch([console(1, (1 << 16, "stdout", "rank one"))]))
    stream = SSE(server, f"/api/v1/runs/{run_id}/logs/events?rank=1")
    try:
        event = stream.next(event="console")
        assert [(x["text"], x["rank"]) for x in event["data"]["lines"]] == [("rank one", 1)]
        post_as(server, run_id, 1, batch([console(2, (2 << 16, "stderr", "later"))]))
        event = stream.next(event="console", timeout=KEEPALIVE_SECONDS - 5)
        assert [(x["text"], x["stream"]) for x in event["data"]["lines"]] == [("later", "stderr")]
        # Rank 0's own lines are not this stream's.
        post(server, run_id, batch([console(1, (1 << 16, "stdout", "rank zero"))]))
        post_as(server, run_id, 1, batch([console(3, (3 << 16, "stdout", "last"))]))
        event = stream.next(event="console", timeout=KEEPALIVE_SECONDS - 5)
        assert [x["text"] for x in event["data"]["lines"]] == ["last"]
    finally:
        stream.close()
