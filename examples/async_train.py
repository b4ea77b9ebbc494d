"""Logging from async code: ``await gradexp.alog(...)`` under asyncio or trio.

A toy "environment" produces episodes concurrently (as an async RL loop or an async data
pipeline would); each episode's return is logged without ever blocking the event loop.

    python examples/async_train.py               # asyncio
    python examples/async_train.py --trio        # trio (pip install trio)
"""

from __future__ import annotations

import argparse
import random

import anyio

import gradexp


async def episode(worker: int, n: int, results: list[tuple[int, float]]) -> None:
    await anyio.sleep(random.uniform(0, 0.01))  # waiting on an environment
    results.append((worker, sum(random.gauss(1.0, 0.5) for _ in range(n))))


async def main(episodes: int) -> None:
    run = gradexp.init(project="examples", name="async-episodes", config={"episodes": episodes})
    for step in range(episodes):
        results: list[tuple[int, float]] = []
        async with anyio.create_task_group() as tg:
            for worker in range(4):
                tg.start_soon(episode, worker, 20 + step, results)
        returns = [r for _, r in results]
        # alog() returns at once; under backpressure it awaits instead of blocking the loop.
        await gradexp.alog({"return/mean": sum(returns) / len(returns), "return/max": max(returns)})
    # aflush(): everything so far is in the run file (and acknowledged, when online).
    await gradexp.aflush(timeout=30)
    gradexp.finish()
    print(f"run {run.id}: {run.url or run.dir}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--trio", action="store_true", help="run under trio instead of asyncio")
    args = parser.parse_args()
    anyio.run(main, args.episodes, backend="trio" if args.trio else "asyncio")
