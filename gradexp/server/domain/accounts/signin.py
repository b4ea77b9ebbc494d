"""Signing in with a user name and a password: every limit, cheapest first.

1. The attempt spends a token of its address's bucket (a known browser: of its user's),
   in memory: an empty bucket is refused at once (``throttle.Buckets``). A right password
   from an address gives the token back.
2. The name is looked up, and the attempt is counted on its wrong-password counters in the
   database, atomically with the check that they are not locked (``lockout.py``): a locked
   counter is refused without hashing. A name that does not exist is counted in memory.
3. It waits for its turn at the hasher in the fair, bounded queue (``throttle.FairQueue``):
   known browsers first, then addresses in turn; a full queue is refused at once.
4. The password is checked (scrypt, on the hasher's threads), and the attempt settled.

Every refusal is a :class:`~gradexp.server.domain.errors.RateLimited` with a
``retry_after`` in seconds. A wrong name and a wrong password read the same and cost the
same (one hash). A right password also gets the browser its "known browser" cookie
(``devices.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gradexp.server.domain.accounts.devices import DeviceCookies
from gradexp.server.domain.accounts.lockout import (
    NOT_TRIED,
    RIGHT,
    WRONG,
    Lockouts,
    Reservation,
    UnknownNames,
    address_key,
    counters_for,
    wrong_and_locked_error,
)
from gradexp.server.domain.accounts.passwords import PASSWORD_MAX_LENGTH, PasswordHasher
from gradexp.server.domain.accounts.policy import Policy
from gradexp.server.domain.accounts.throttle import Buckets, FairQueue
from gradexp.server.domain.accounts.users import Account, find_account
from gradexp.server.domain.errors import RateLimited, Unauthorized
from gradexp.server.storage.db import Database


@dataclass(frozen=True)
class SignedIn:
    """A right password: whose, and the known-browser cookie to give the browser."""

    account: Account
    device_cookie: str


class PasswordSignIn:
    """Password sign-in for one server process (its buckets and queue are this process's;
    its counters are in the shared database)."""

    def __init__(self, db: Database, policy: Policy, passwords: PasswordHasher) -> None:
        self.db = db
        self.policy = policy
        self.passwords = passwords
        self.lockouts = Lockouts(db, policy)
        self.unknown_names = UnknownNames(policy)
        self.buckets = Buckets()
        self.queue = FairQueue(passwords.concurrency)
        self.devices = DeviceCookies(db, policy.known_device_ttl)

    async def check(
        self, name: str, password: str, *, ip: str, device_cookie: str | None
    ) -> SignedIn:
        """The account whose name and password these are (with a known-browser cookie for
        it), or Unauthorized ``wrong_password``, or RateLimited (``slow_down``: this address
        is sending too many; ``locked``: too many wrong passwords; ``busy``: too many
        sign-ins at once)."""
        address = address_key(ip)
        device = await self.devices.check(device_cookie)
        bucket = f"user {device.user_id}" if device else f"address {address}"
        self.buckets.take(bucket)
        found = await find_account(self.db, name)
        account, stored = found if found is not None else (None, None)
        known = device is not None and account is not None and device.user_id == account.id
        reservation: Reservation
        if account is None:
            reservation = self.unknown_names.reserve(name, address)
        else:
            counters = counters_for(
                account.id, address, device.device_id if known and device else None, self.policy
            )
            reservation = await self.lockouts.reserve(counters)
        try:
            async with self.queue.turn(address, known):
                right = await self.passwords.verify(password[:PASSWORD_MAX_LENGTH], stored)
        except RateLimited:  # no turn at the hasher: this attempt was never made
            await self._settle(name, address, account, reservation, NOT_TRIED)
            raise
        await self._settle(name, address, account, reservation, RIGHT if right else WRONG)
        if not right or account is None:
            wait = reservation.locked_for
            if wait > 0:
                raise wrong_and_locked_error(wait)
            raise Unauthorized("Wrong user name or password.", code="wrong_password")
        if not device:
            self.buckets.give_back(bucket)
        cookie = await self.devices.issue(
            account.id, device.device_id if known and device else None
        )
        return SignedIn(account, cookie)

    async def _settle(
        self,
        name: str,
        address: str,
        account: Account | None,
        reservation: Reservation,
        outcome: str,
    ) -> None:
        if account is None:
            self.unknown_names.settle(name, address, reservation, outcome)
        else:
            await self.lockouts.settle(reservation, outcome)
