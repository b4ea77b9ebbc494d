"""Run every ``benchmarks/bench_*.py`` in its own interpreter and print what each measured.

Usage: ``python benchmarks/run_all.py [NAME_SUBSTRING ...]`` (``nox -s bench`` calls this).

Each benchmark prints its own table: the figure, a baseline measured in the same run and
their ratio, and the target beside it. Machines here are shared and noisy, so every
benchmark reports medians and ratios, never a lone absolute time, and none of them fails
on a number: they inform, tests assert.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.stem for a in argv)]
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} " + "=" * max(0, 70 - len(script.stem)), flush=True)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        print(f"--- {script.stem}: exit {proc.returncode} in {time.perf_counter() - started:.1f} s")
        if proc.returncode:
            failed.append(script.stem)
    if failed:
        print(f"\nbenchmarks that did not complete: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
