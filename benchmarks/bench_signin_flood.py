"""A real sign-in during a flood of wrong-password attempts, beside the same sign-in alone.

The flood: 80 anonymous attempts at once, with made-up user names and wrong passwords,
sent together with one real sign-in (the right password). Measured against a real server
(SQLite, started with ``--trusted-proxy 127.0.0.1`` so that ``X-Forwarded-For`` can stand
for many addresses):

- ``one address``: the flood and the user share an address (127.0.0.1); the user signs in
  from a browser that has signed in before (its "known browser" cookie);
- ``many addresses``: each flood attempt comes from its own address; the user signs in
  from a new browser at an address of their own, and again from a known browser.

The baseline is the same sign-in with no flood, in the same run. Each figure is the median
of a few rounds; the POST's latency only (the sign-in page was fetched before).

Target (from the hardening issue): a real sign-in under 2 s during the flood.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import running_server
from bench_login import PASSWORD, set_password

FLOOD = 80
ROUNDS = 3
REFILL_PAUSE = 25.0  # seconds between floods from one address (its sign-in budget refills)


class Browser:
    """An aiohttp session that keeps cookies, as a browser does."""

    def __init__(self, url: str, forwarded_for: str | None = None) -> None:
        self.url = url
        self.headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.retries = 0

    async def ready(self) -> str:
        """Fetch the sign-in page; its form token."""
        self.session.cookie_jar.clear(lambda c: c.key in ("gradexp_session", "gradexp_csrf"))
        async with self.session.get(self.url + "/login", headers=self.headers) as resp:
            match = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert match, "no sign-in form"
        return match.group(1)

    async def post(
        self, token: str, user: str, password: str, *, retry: bool = False
    ) -> tuple[int, float]:
        """Post the sign-in form: (status, seconds). With ``retry``, a 429 is posted again
        after its Retry-After, as a person would press the button again: the seconds are
        then until the last answer."""
        form = {"csrf": token, "next": "/", "username": user, "password": password}
        started = time.perf_counter()
        while True:
            async with self.session.post(
                self.url + "/login",
                data=form,
                allow_redirects=False,
                headers={"Origin": self.url, **self.headers},
            ) as resp:
                await resp.read()
                if not (retry and resp.status == 429):
                    return resp.status, time.perf_counter() - started
                self.retries += 1
                await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))

    async def close(self) -> None:
        await self.session.close()


async def real_sign_in(browser: Browser, flood: list[Browser], names: list[str]) -> float:
    """The real sign-in's latency, sent at the same moment as ``flood`` (may be empty)."""
    tokens = await asyncio.gather(*(b.ready() for b in [*flood, browser]))
    go = asyncio.Event()

    async def one(
        b: Browser, token: str, user: str, password: str, retry: bool = False
    ) -> tuple[int, float]:
        await go.wait()
        return await b.post(token, user, password, retry=retry)

    tasks = [
        asyncio.create_task(one(b, t, n, "wrong password"))
        for b, t, n in zip(flood, tokens, names, strict=False)
    ]
    real = asyncio.create_task(one(browser, tokens[-1], "bench", PASSWORD, retry=True))
    go.set()
    status, seconds = await real
    await asyncio.gather(*tasks)
    assert status == 303, f"the real sign-in answered {status}"
    return seconds


async def measure(url: str) -> None:
    known_here = Browser(url)
    await known_here.post(await known_here.ready(), "bench", PASSWORD)  # now a known browser
    known_there = Browser(url, "192.0.2.1")
    await known_there.post(await known_there.ready(), "bench", PASSWORD)
    results: dict[str, list[float]] = {}
    refused: dict[str, int] = {}  # 429 answers the real sign-in met (then retried)

    def add(label: str, seconds: float) -> None:
        results.setdefault(label, []).append(seconds)

    for r in range(ROUNDS):
        add("no flood, known browser (baseline)", await real_sign_in(known_here, [], []))
        fresh = Browser(url, f"192.0.2.{100 + r}")
        add("no flood, new browser (baseline)", await real_sign_in(fresh, [], []))
        await fresh.close()

        flood = [Browser(url) for _ in range(FLOOD)]
        names = [f"nobody-{r}-{i}" for i in range(FLOOD)]
        retries_before = known_here.retries
        add("one address, known browser", await real_sign_in(known_here, flood, names))
        label = "one address, known browser"
        refused[label] = refused.get(label, 0) + known_here.retries - retries_before
        await asyncio.gather(*(b.close() for b in flood))

        for k, (label, browser) in enumerate(
            (
                ("many addresses, new browser", Browser(url, f"192.0.2.{200 + r}")),
                ("many addresses, known browser", known_there),
            )
        ):
            flood = [Browser(url, f"10.{r}.{k}.{i + 1}") for i in range(FLOOD)]
            names = [f"nobody-{r}-{k}-{i}" for i in range(FLOOD)]
            retries_before = browser.retries
            add(label, await real_sign_in(browser, flood, names))
            await asyncio.gather(*(b.close() for b in flood))
            refused[label] = refused.get(label, 0) + browser.retries - retries_before
            if browser is not known_there:
                await browser.close()
        if r < ROUNDS - 1:
            await asyncio.sleep(REFILL_PAUSE)
    await known_here.close()
    await known_there.close()

    base = statistics.median(results["no flood, known browser (baseline)"])
    print(f"{'real sign-in (POST /login)':<40}{'median s':>10}{'max s':>8}{'ratio':>8}{'429s':>6}")
    for label, values in results.items():
        median = statistics.median(values)
        print(
            f"  {label:<38}{median:>10.3f}{max(values):>8.3f}{median / base:>7.1f}x"
            f"{refused.get(label, 0):>6}"
        )
    print(f"({FLOOD} wrong-password attempts with made-up names, sent with the real one;")
    print(" a real sign-in answered 429 is posted again after its Retry-After, and its time")
    print(f" runs until it is signed in; {ROUNDS} rounds)")
    print("target: under 2 s during the flood")


def main() -> None:
    os.environ["GRADEXP_SERVER_TRUSTED_PROXIES"] = "127.0.0.1"  # read by the server
    with running_server() as (url, _key, db_url, _pid):
        data = db_url.removeprefix("sqlite:///").rsplit("/", 1)[0]
        set_password(db_url, data)
        asyncio.run(measure(url))


if __name__ == "__main__":
    main()
