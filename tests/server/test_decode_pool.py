"""Big ingest bodies decoded in worker processes: same batches, same refusals, same rows,
and a dead worker costs nothing but a restart."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import time

import orjson
import pytest

from gradexp.server.domain import decode_pool
from gradexp.server.domain.batch import decode_batch
from gradexp.server.domain.decode_pool import MIN_WORKER_BODY, DecodePool
from gradexp.server.domain.errors import DomainError
from gradexp.server.http.errors import status_for

from .helpers import batch, get, history, new_id, post, put_run, rows
from .test_batch import BATCHES, _view


def _big(first: int, n: int, **extra: float) -> dict:
    return batch(
        [
            history(first + i, first + i - 1, {"loss": 1.0 / (first + i), "acc": i % 7, **extra})
            for i in range(n)
        ]
    )


async def _warm(pool: DecodePool, body: bytes) -> None:
    """Decode until a worker has (the first batches are decoded in-process, until the
    workers have started)."""
    before = pool.decoded_in_workers
    for _ in range(600):
        await pool.decode(body, True)
        if pool.decoded_in_workers > before:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the decode workers never started")


def test_workers_decode_what_the_server_process_decodes():
    async def main() -> None:
        pool = DecodePool(workers=1)
        try:
            await _warm(pool, gzip.compress(orjson.dumps(_big(1, 3000))))
            for name, records in BATCHES.items():
                doc = {"first_seq": 1, "last_seq": len(records), "records": records * 1}
                raw = orjson.dumps(doc)
                body = raw + b" " * max(0, MIN_WORKER_BODY - len(raw))  # worth a worker
                before = pool.decoded_in_workers
                got = await pool.decode(body, False)
                assert pool.decoded_in_workers == before + 1, name
                assert got.records is None  # only the columns crossed over
                want = decode_batch(raw)
                assert _view(got.columns) == _view(want.columns), name
                assert [r["seq"] for r in got.all_records()] == [
                    r["seq"] for r in want.all_records()
                ]
        finally:
            pool.close()

    asyncio.run(main())


@pytest.mark.slow
def test_refusals_cross_over_intact():
    async def main() -> None:
        pool = DecodePool(workers=1)
        try:
            await _warm(pool, gzip.compress(orjson.dumps(_big(1, 3000))))
            bad = _big(1, 3000)
            bad["records"][1500]["values"]["bad#key"] = 1.0
            with pytest.raises(DomainError) as err:
                await pool.decode(gzip.compress(orjson.dumps(bad)), True)
            assert status_for(err.value) == 400 and err.value.code == "bad_batch"
            assert "records[seq=1501]" in err.value.message and "'#'" in err.value.message
            bomb = gzip.compress(b" " * (300 * 1024 * 1024))  # 300 MiB of spaces
            with pytest.raises(DomainError) as err:
                await pool.decode(bomb, True)
            assert status_for(err.value) == 413
        finally:
            pool.close()

    asyncio.run(main())


def test_a_dead_worker_is_replaced(caplog):
    async def main() -> None:
        pool = DecodePool(workers=1)
        body = gzip.compress(orjson.dumps(_big(1, 3000)))
        try:
            await _warm(pool, body)
            assert pool._executor is not None
            for pid in list(pool._executor._processes):  # type: ignore[attr-defined]
                os.kill(pid, signal.SIGKILL)
            # The batch in hand is decoded in-process; the next ones by new workers.
            assert len((await pool.decode(body, True)).columns) == 3000
            await _warm(pool, body)
        finally:
            pool.close()

    asyncio.run(main())
    assert "decode worker died" in caplog.text


def test_workers_that_keep_dying_are_given_up_on(caplog):
    async def main() -> None:
        pool = DecodePool(workers=1)
        body = gzip.compress(orjson.dumps(_big(1, 3000)))
        try:
            for _ in range(decode_pool.MAX_DEATHS):
                await _warm(pool, body)
                assert pool._executor is not None
                for pid in list(pool._executor._processes):  # type: ignore[attr-defined]
                    os.kill(pid, signal.SIGKILL)
                assert len((await pool.decode(body, True)).columns) == 3000
            # Given up on: no new workers, every batch decoded here, still correctly.
            assert pool.workers == 0 and pool._executor is None
            before = pool.decoded_in_workers
            assert len((await pool.decode(body, True)).columns) == 3000
            assert pool._executor is None and pool.decoded_in_workers == before
        finally:
            pool.close()

    asyncio.run(main())
    assert "decoded in the server process from now on" in caplog.text


def test_workers_that_cannot_start_leave_decoding_in_process(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(decode_pool.concurrent.futures, "ProcessPoolExecutor", refuse)

    async def main() -> None:
        pool = DecodePool(workers=2)
        body = gzip.compress(orjson.dumps(_big(1, 3000)))
        assert len((await pool.decode(body, True)).columns) == 3000
        assert pool.workers == 0 and pool._executor is None

    asyncio.run(main())
    assert "could not start ingest decode workers" in caplog.text


def _children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(name))
            except OSError:
                continue
    return out


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to see the workers")
def test_big_batches_through_workers_dedup_and_ack(start_server):
    srv = start_server(env={"GRADEXP_INGEST_WORKERS": "1"})
    run = new_id()
    assert put_run(srv, run)[0] == 201
    first = _big(1, 3000)
    assert post(srv, run, first) == (200, {"acked_seq": 3000})
    # The first big batch started the workers (it was decoded in-process meanwhile):
    # wait for them, replaying that batch, so what follows goes through a worker.
    assert srv.proc is not None
    for _ in range(100):
        if _children(srv.proc.pid):
            break
        assert post(srv, run, first) == (200, {"acked_seq": 3000})
    assert _children(srv.proc.pid), "no decode worker started"
    for _ in range(20):  # the worker imports for a second or two before it answers
        assert post(srv, run, first) == (200, {"acked_seq": 3000})
    assert post(srv, run, _big(6001, 3000)) == (200, {"acked_seq": 3000})  # past a gap
    assert post(srv, run, first) == (200, {"acked_seq": 3000})  # a replay
    # Overlapping what is committed on both sides: only 3001..6000 are new.
    assert post(srv, run, _big(2001, 5000)) == (200, {"acked_seq": 9000})
    got = rows(srv, run, keys="loss")
    assert [r["_seq"] for r in got] == list(range(1, 9001))
    assert got[4999]["loss"] == 1.0 / 5000
    keys = {k["key"]: k for k in get(srv, f"/api/v1/runs/{run}/keys")["keys"]}
    assert keys["loss"]["count"] == 9000 and keys["acc"]["last_step"] == 8999
    status, health = srv.request("GET", "/healthz")
    assert status == 200 and health["worker_batches"] > 0  # the workers did decode
    # A graceful stop takes the workers with it, and leaves no traceback behind.
    workers = _children(srv.proc.pid)
    assert workers, "the decode workers were gone before the server stopped"
    srv.stop()
    assert srv.proc.returncode == 0, srv.log_tail()
    for pid in workers:
        for _ in range(100):
            if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"decode worker {pid} outlived the server")
    assert "Traceback" not in srv.log_path.read_text(errors="replace")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
