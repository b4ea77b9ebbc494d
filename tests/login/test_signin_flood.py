"""A flood of sign-in attempts cannot keep a real user out, nor grow the wrong-password
table: the flood is refused before hashing (429 with Retry-After) past what one address may
send and past a bounded queue, a known browser is served first, and made-up names leave no
row. (How long the real sign-in takes during a flood is measured, not asserted:
benchmarks/bench_signin_flood.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from .attempts import (
    SIGNED_IN,
    THROTTLED,
    Attempt,
    all_at_once,
    attempt,
    checked,
    failure_rows,
    outcome,
    session_ends,
)
from .conftest import WebClient, add_user

FLOOD = 80


def _known_browser(srv: Any, name: str, forwarded_for: str | None) -> WebClient:
    own = WebClient(srv.url)
    assert outcome(attempt(srv.url, name, forwarded_for=forwarded_for, client=own).send()) == (
        SIGNED_IN
    )
    session_ends(own)
    return own


@pytest.mark.slow
@pytest.mark.parametrize("spread", ["one address", "many addresses"])
def test_a_sign_in_flood_is_refused_early_and_leaves_no_rows(
    start_server: Any, spread: str
) -> None:
    many = spread == "many addresses"
    srv = start_server(env={"GRADEXP_SERVER_TRUSTED_PROXIES": "127.0.0.1"} if many else None)
    name = add_user(srv)
    own = _known_browser(srv, name, "192.0.2.1" if many else None)
    rows_before = failure_rows(srv)
    flood: list[Attempt] = [
        attempt(
            srv.url,
            f"nobody-{i}",
            "wrong password",
            forwarded_for=f"10.0.{i // 250}.{i % 250 + 1}" if many else None,
        )
        for i in range(FLOOD)
    ]
    real = attempt(srv.url, name, forwarded_for="192.0.2.1" if many else None, client=own)
    replies = all_at_once([*flood, real])  # the real sign-in arrives amid the flood
    assert outcome(replies[-1]) == SIGNED_IN
    outcomes = [outcome(r) for r in replies[:-1]]
    refused = [r for r, o in zip(replies, outcomes, strict=False) if o == THROTTLED]
    assert refused, "the whole flood waited for the hasher"
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    # One address spends its burst; many addresses fill the bounded queue: either way
    # most of the flood is answered without a password check.
    assert checked(outcomes) <= FLOOD // 3, checked(outcomes)
    # Made-up names are counted in memory: the table did not grow by a row per name.
    assert failure_rows(srv) == rows_before
