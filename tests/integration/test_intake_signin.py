"""Staff sign-in on the real MongoDB-wire server: the right name and token sign in, failures count per account
name, five of them lock the account (even the right token is then refused), and the lock expires."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from heard_devstack import Stack
from heard_intake.auth import TokenStore
from heard_intake.signin import AccountLocked, LockoutPolicy, SignInGuard, SignInRefused
from heard_shared.events import utc_now
from heard_shared.mongo import MongoResource
from tests.helpers import unique

pytestmark = pytest.mark.integration


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class SignIn:
    guard: SignInGuard
    tokens: TokenStore
    clock: Clock


@pytest.fixture
async def signin(stack: Stack) -> AsyncIterator[SignIn]:
    database = unique("intake_signin").replace("-", "_")
    mongo = MongoResource(stack.mongodb_uri, database, app_name="intake-signin-test")
    tokens = TokenStore(mongo.db["tokens"])
    clock = Clock(utc_now())
    guard = SignInGuard(tokens=tokens, failures=mongo.db["signin_failures"], policy=LockoutPolicy(), clock=clock)
    yield SignIn(guard, tokens, clock)
    await mongo.client.drop_database(database)
    await mongo.close()


async def test_the_right_name_and_token_sign_in(signin: SignIn) -> None:
    token = await signin.tokens.issue(name="Officer Diaz", roles=["unit_member"], unit_id="north-patrol")
    signed_in = await signin.guard.sign_in(name=" Officer Diaz ", token=token)
    assert (signed_in.name, signed_in.roles, signed_in.unit_id) == ("Officer Diaz", ["unit_member"], "north-patrol")


async def test_a_token_of_another_account_a_revoked_token_and_a_city_system_are_refused(signin: SignIn) -> None:
    diaz = await signin.tokens.issue(name="Officer Diaz", roles=["unit_member"], unit_id="north-patrol")
    city = await signin.tokens.issue(name="City 311", roles=["city_system"])
    with pytest.raises(SignInRefused):
        await signin.guard.sign_in(name="Sergeant Lee", token=diaz)
    with pytest.raises(SignInRefused):
        await signin.guard.sign_in(name="City 311", token=city)
    await signin.tokens.revoke(name="Officer Diaz")
    with pytest.raises(SignInRefused):
        await signin.guard.sign_in(name="Officer Diaz", token=diaz)


async def test_five_failures_lock_the_account_until_the_lock_expires(signin: SignIn) -> None:
    token = await signin.tokens.issue(name="Officer Diaz", roles=["unit_member"], unit_id="north-patrol")
    left = []
    for _ in range(4):
        with pytest.raises(SignInRefused) as refused:
            await signin.guard.sign_in(name="officer diaz", token="heard_wrong")
        left.append(refused.value.attempts_left)
    assert left == [4, 3, 2, 1]
    with pytest.raises(AccountLocked) as locked:
        await signin.guard.sign_in(name="Officer Diaz", token="heard_wrong")
    assert locked.value.until == signin.clock.now + timedelta(minutes=15)

    signin.clock.now += timedelta(minutes=14)
    with pytest.raises(AccountLocked):
        await signin.guard.sign_in(name="Officer Diaz", token=token)  # the right token too, while locked

    signin.clock.now += timedelta(minutes=2)
    assert (await signin.guard.sign_in(name="Officer Diaz", token=token)).name == "Officer Diaz"
    other = await signin.tokens.issue(name="Sergeant Lee", roles=["supervisor"], unit_id="north-sergeants")
    assert (await signin.guard.sign_in(name="Sergeant Lee", token=other)).roles == ["supervisor"], "others unaffected"


async def test_a_success_or_a_closed_window_starts_the_count_again(signin: SignIn) -> None:
    token = await signin.tokens.issue(name="Officer Diaz", roles=["unit_member"], unit_id="north-patrol")
    for _ in range(3):
        with pytest.raises(SignInRefused):
            await signin.guard.sign_in(name="Officer Diaz", token="heard_wrong")
    await signin.guard.sign_in(name="Officer Diaz", token=token)
    with pytest.raises(SignInRefused) as refused:
        await signin.guard.sign_in(name="Officer Diaz", token="heard_wrong")
    assert refused.value.attempts_left == 4, "a success clears earlier failures"

    for _ in range(3):
        with pytest.raises(SignInRefused):
            await signin.guard.sign_in(name="Officer Diaz", token="heard_wrong")
    signin.clock.now += timedelta(minutes=16)
    with pytest.raises(SignInRefused) as refused:
        await signin.guard.sign_in(name="Officer Diaz", token="heard_wrong")
    assert refused.value.attempts_left == 4, "failures older than the window no longer count"
