"""Wrong-password lockouts over HTTP: parallel guesses cannot outrun them (on every database,
through two server processes at once), a lockout is kept to the address that earned it
(behind a trusted proxy) up to a higher limit per user, a known browser gets its user
through a lockout that others caused, and X-Forwarded-For counts only from a trusted proxy.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from .attempts import (
    LOCKED,
    SIGNED_IN,
    WRONG,
    WRONG_LOCKED,
    all_at_once,
    attempt,
    checked,
    failure_rows,
    outcome,
    session_ends,
    sign_in,
)
from .conftest import WebClient, add_user

PROXY = {"GRADEXP_SERVER_TRUSTED_PROXIES": "127.0.0.1"}
MAX_FAILURES = 5  # per user and address (docs/login.md)
MAX_USER_FAILURES = 20  # per user, from anywhere


@pytest.mark.slow
def test_parallel_guesses_through_two_processes_cannot_outrun_the_lockout(
    db_url: str, start_server: Any
) -> None:
    first = start_server(db_url=db_url)
    second = start_server(db_url=db_url, store_url=first.store_url)
    name = add_user(first)
    guesses = [
        attempt(srv.url, name, password=f"wrong guess {i}")
        for i in range(15)  # 30 in all, within what one address may send to each process
        for srv in (first, second)
    ]
    outcomes = [outcome(reply) for reply in all_at_once(guesses)]
    counts = Counter(outcomes)
    # Only as many passwords are checked as the limit allows; every other guess is refused
    # unchecked, in both processes.
    assert checked(outcomes) == MAX_FAILURES, counts
    assert counts[WRONG] == MAX_FAILURES - 1 and counts[WRONG_LOCKED] == 1, counts
    assert counts[LOCKED] == len(guesses) - MAX_FAILURES, counts
    for srv in (first, second):  # locked in both: even the right password waits now
        assert sign_in(srv.url, name) == LOCKED


@pytest.mark.slow
def test_a_lockout_stays_with_the_address_that_earned_it(start_server: Any) -> None:
    srv = start_server(env=PROXY)
    name = add_user(srv)
    user = "198.51.100.20"
    # The attacker writes the user's address into the header; the trusted proxy appends the
    # address it saw (some proxies with a port): the server reads from the right.
    attacker = f"{user}, 203.0.113.7:50123"
    tries = [sign_in(srv.url, name, "wrong password", attacker) for _ in range(MAX_FAILURES)]
    assert tries == [WRONG] * (MAX_FAILURES - 1) + [WRONG_LOCKED]
    assert sign_in(srv.url, name, forwarded_for="203.0.113.7") == LOCKED
    # The user, from their own address, is not locked out by someone else's guesses.
    assert sign_in(srv.url, name, forwarded_for=user) == SIGNED_IN


@pytest.mark.slow
def test_many_addresses_lock_the_user_but_not_their_known_browser(start_server: Any) -> None:
    srv = start_server(env=PROXY)
    name = add_user(srv)
    own = WebClient(srv.url)  # the user's browser: signed in before, so it is known
    assert sign_in(srv.url, name, forwarded_for="198.51.100.20", client=own) == SIGNED_IN
    assert own.cookie("gradexp_device")
    session_ends(own)
    # Guesses from many addresses, none past its own limit, reach the user's limit.
    addresses = [f"203.0.113.{i}" for i in range(1, MAX_USER_FAILURES + 1)]
    tries = [sign_in(srv.url, name, "wrong password", a) for a in addresses]
    assert tries == [WRONG] * (MAX_USER_FAILURES - 1) + [WRONG_LOCKED]
    # Locked for everyone: a new browser is refused even with the right password...
    assert sign_in(srv.url, name, forwarded_for="192.0.2.50") == LOCKED
    # ...but the user's own browser gets through, from wherever it is.
    assert sign_in(srv.url, name, forwarded_for="192.0.2.51", client=own) == SIGNED_IN


@pytest.mark.slow
def test_a_known_browser_gets_through_a_lockout_at_its_own_address(
    start_server: Any,
) -> None:
    srv = start_server()  # no proxy: everyone comes from 127.0.0.1
    name = add_user(srv)
    own = WebClient(srv.url)
    reply = attempt(srv.url, name, client=own).send()
    assert outcome(reply) == SIGNED_IN
    device = [c for c in reply.cookies() if c.startswith("gradexp_device=")]
    assert len(device) == 1
    flags = {part.strip().lower() for part in device[0].split(";")[1:]}
    assert {"httponly", "path=/login", "samesite=strict"} <= flags
    session_ends(own)
    # Someone at the same address locks the name for this address...
    tries = [sign_in(srv.url, name, "wrong password") for _ in range(MAX_FAILURES)]
    assert tries[-1] == WRONG_LOCKED
    assert sign_in(srv.url, name) == LOCKED  # a new browser, right password: refused
    # ...and the known browser signs in all the same.
    assert sign_in(srv.url, name, client=own) == SIGNED_IN
    session_ends(own)
    # Its own wrong passwords are limited too (a stolen browser cannot guess without end),
    # on a counter of its own.
    tries = [sign_in(srv.url, name, "wrong password", client=own) for _ in range(MAX_FAILURES)]
    assert tries == [WRONG] * (MAX_FAILURES - 1) + [WRONG_LOCKED]
    assert sign_in(srv.url, name, client=own) == LOCKED


@pytest.mark.slow
def test_forwarded_for_counts_only_from_a_trusted_proxy(start_server: Any) -> None:
    srv = start_server()  # trusts nobody
    name = add_user(srv)
    spoofed = [f"198.51.100.{i}" for i in range(MAX_FAILURES + 1)]
    tries = [sign_in(srv.url, name, "wrong password", a) for a in spoofed[:MAX_FAILURES]]
    assert tries[-1] == WRONG_LOCKED  # all counted on the connection's own address
    assert sign_in(srv.url, name, forwarded_for=spoofed[-1]) == LOCKED


@pytest.mark.slow
def test_an_unknown_name_locks_like_a_real_one_and_leaves_no_row(start_server: Any) -> None:
    srv = start_server()
    name = add_user(srv)
    nobody = "nobody-" + name
    rows = []
    for who in (nobody, name):
        tries = [sign_in(srv.url, who, "wrong password") for _ in range(MAX_FAILURES)]
        assert tries == [WRONG] * (MAX_FAILURES - 1) + [WRONG_LOCKED], who
        assert sign_in(srv.url, who, "wrong password") == LOCKED
        rows.append(failure_rows(srv))
    # The made-up name is counted in memory only; the real one has its counters' rows.
    assert rows[0] == 0 and rows[1] > 0
