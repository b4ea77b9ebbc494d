"""Listing a project of 10,000 runs: the runs table's first page and the projects list.

A team's long-lived project collects thousands of runs. Here one project holds
``BENCH_LISTING_RUNS`` (10,000) small finished runs, created through the HTTP API, and the
API's first page of the runs table (50 runs) is timed ordered by start time (an indexed
column) and by a summary value (``order=-summary:val/acc``, a JSON extraction per run),
with ``GET /projects`` beside them. Baseline: the same requests on a project of 20 runs,
same server, same run. Medians of 21 requests each, on SQLite (``BENCH_DB=postgresql``
or ``both`` for PostgreSQL, when it is reachable).

Target: the first page in well under 300 ms.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _server import fresh_postgres, get_ms, running_server
from bench_ui import many_runs, order_latency

RUNS = int(os.environ.get("BENCH_LISTING_RUNS", "10000"))
BASELINE_RUNS = 20
DBS = os.environ.get("BENCH_DB", "sqlite")  # sqlite, postgresql or both


def measure(label: str, db_url: str | None) -> None:
    with running_server(db_url) as (url, key, *_):
        started = time.perf_counter()
        many_runs(url, key, "big", RUNS)
        made = time.perf_counter() - started
        many_runs(url, key, "small", BASELINE_RUNS)
        rows = [
            ("first page, by start time", "-started_at"),
            ("first page, by summary val/acc", "-summary:val/acc"),
        ]
        print(f"{label}: {RUNS:,} runs created in {made:.0f} s")
        print(f"  {'median ms':>44} {RUNS:>8,} runs {BASELINE_RUNS:>6} runs   ratio")
        for name, order in rows:
            big = order_latency(url, key, "big", order)
            small = order_latency(url, key, "small", order)
            print(f"  {name:<36} {big:>12.1f} {small:>11.1f} {big / small:>7.1f}")
        projects = get_ms(url, key, "/api/v1/projects")
        print(f"  {'GET /projects (both projects)':<36} {projects:>12.1f}")
        print("  target: first page well under 300 ms")


def main() -> None:
    if DBS in ("sqlite", "both"):
        measure("SQLite", None)
    if DBS in ("postgresql", "both"):
        with fresh_postgres() as pg:
            if pg is None:
                print("PostgreSQL not reachable: skipped")
            else:
                measure("PostgreSQL", pg)


if __name__ == "__main__":
    main()
