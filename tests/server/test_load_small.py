"""A small version of ``benchmarks/bench_load.py``: runs sending a small batch a second to
either of two server processes on one PostgreSQL database and one S3 bucket, a project
live stream open on one of them. Not timed: every row must be stored exactly once and
seen exactly once by the live stream, also while the servers pace the writers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_database
from tests.helpers import run_async
from tests.load import generate

pytestmark = pytest.mark.slow  # two servers, S3 and PostgreSQL


@pytest.fixture
def pg_url(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    with fresh_database("postgresql", tmp_path) as url:
        yield url


def _pair(start_server: Any, pg_url: str, s3_store: Any, env: dict[str, str]) -> Any:
    a = start_server(db_url=pg_url, store_url=s3_store, env=env)
    b = start_server(db_url=pg_url, store_url=s3_store, env=env)
    return a, b


def test_small_batches_from_many_runs_arrive_exactly_once(
    start_server: Any, pg_url: str, s3_store: Any
) -> None:
    a, b = _pair(start_server, pg_url, s3_store, {})
    result = run_async(
        generate([a.url, b.url], a.api_key, a.user, "load", 30, 6, live_url=b.url, db_url=pg_url)
    )
    assert result.problems == []
    assert result.exact and result.live_exact
    assert result.rows >= 30 * 40  # ~10 rows a second per run
    assert result.refused == 0 and result.paced_runs == 0  # an easy load: nobody paced


def test_paced_writers_send_fewer_larger_batches_and_lose_nothing(
    start_server: Any, pg_url: str, s3_store: Any
) -> None:
    # A latency target no batch can meet: the servers ask every writer to slow down.
    a, b = _pair(start_server, pg_url, s3_store, {"GRADEXP_SERVER_INGEST_TARGET": "0.000001"})
    result = run_async(
        generate([a.url, b.url], a.api_key, a.user, "paced", 30, 8, live_url=b.url, db_url=pg_url)
    )
    assert result.problems == []
    assert result.exact and result.live_exact
    assert result.paced_runs == 30  # every run was asked for a longer interval ...
    assert result.max_interval > 1.0
    assert result.accepted < result.due  # ... so it sent fewer batches than one a second
    assert result.rows >= 30 * 50  # ... of more rows each: the same rows per second
