"""Interactive staff sign-in: checks a presented token against an account name, and locks the account after
repeated failures.

The staff console (services/web) signs people in with the name and token intake issued them
(`heard_intake.cli issue-token`); it asks this endpoint, then keeps the token in its own server-side session and
sends it as the bearer token of every call it makes for that person, so intake goes on deciding what each one
may see and do. Tokens are long random strings and cannot be guessed, but an interactive sign-in still locks an
account that keeps failing: it makes any guessing pointless and tells the account's owner that someone tried.
An attacker who knows a name can keep that account locked; the lock is short, and it expires on its own.

No `from __future__ import annotations` here: FastAPI resolves the request model in annotations at runtime.
"""

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from heard_intake.auth import STAFF_ROLES, TokenStore
from heard_intake.sessions import Storable
from heard_shared.events import utc_now
from heard_shared.http import ApiError
from heard_shared.logs import get_logger
from heard_shared.mongo import Document

log = get_logger(__name__)


@dataclass(frozen=True)
class LockoutPolicy:
    """`max_failures` failed sign-ins within `window` lock the account for `lock_for`."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lock_for: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class SignedIn:
    name: str
    roles: list[str]
    unit_id: str | None


class SignInRefused(Exception):
    def __init__(self, *, attempts_left: int) -> None:
        super().__init__("sign-in refused")
        self.attempts_left = attempts_left


class AccountLocked(Exception):
    def __init__(self, *, until: datetime) -> None:
        super().__init__("account locked")
        self.until = until


def account_key(name: str) -> str:
    """Failures are counted per account name, case and surrounding space ignored; only a digest is stored."""
    return hashlib.sha256(name.strip().casefold().encode("utf-8", "surrogatepass")).hexdigest()


class SignInGuard:
    def __init__(
        self,
        *,
        tokens: TokenStore,
        failures: AsyncCollection[Document],
        policy: LockoutPolicy = LockoutPolicy(),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.tokens = tokens
        self.failures = failures
        self.policy = policy
        self.clock = clock

    async def sign_in(self, *, name: str, token: str) -> SignedIn:
        """The account behind `token`, if it is a staff account named `name` and the name is not locked."""
        key, now = account_key(name), self.clock()
        record = await self.failures.find_one({"_id": key})
        locked_until = record.get("locked_until") if record else None
        if locked_until is not None and locked_until > now:
            raise AccountLocked(until=locked_until)
        try:
            principal = await self.tokens.authenticate(f"Bearer {token}")
        except ApiError:
            principal = None
        if principal is None or principal.name != name.strip() or not principal.roles & STAFF_ROLES:
            raise await self._failure(key, now, name=name)
        await self.failures.delete_one({"_id": key})
        return SignedIn(name=principal.name, roles=sorted(principal.roles), unit_id=principal.unit_id)

    async def _failure(self, key: str, now: datetime, *, name: str) -> SignInRefused | AccountLocked:
        """Counts a failed sign-in and returns what to tell the caller: refused, or locked from now on."""
        policy = self.policy
        counted = await self.failures.find_one_and_update(
            {"_id": key, "window_started_at": {"$gt": now - policy.window}},
            {"$inc": {"failures": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if counted is None:  # the first failure, or the first since the last window closed
            try:
                counted = await self.failures.find_one_and_update(
                    {"_id": key},
                    {"$set": {"failures": 1, "window_started_at": now}, "$unset": {"locked_until": ""}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:  # a concurrent first failure created it; this one is not worth a retry
                counted = {"failures": 1}
        failures = int((counted or {}).get("failures", 1))
        if failures >= policy.max_failures:
            until = now + policy.lock_for
            await self.failures.update_one(
                {"_id": key}, {"$set": {"locked_until": until, "failures": 0, "window_started_at": now}}
            )
            log.warning("staff account locked after failed sign-ins", account=name.strip()[:200], until=until)
            return AccountLocked(until=until)
        return SignInRefused(attempts_left=policy.max_failures - failures)


class SignInRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[Storable, Field(min_length=1, max_length=200)]
    # Tokens are printable ASCII (the issued ones are url-safe base64 behind a prefix).
    token: Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")]


class SignInResponse(BaseModel):
    name: str
    roles: list[str]
    unit_id: str | None = None


def build_signin_router(guard: SignInGuard) -> APIRouter:
    router = APIRouter(prefix="/v1/auth", tags=["staff"])

    @router.post(
        "/sign-in",
        response_model=SignInResponse,
        summary="Check a staff member's name and token for an interactive sign-in (locks after repeated failures)",
        responses={
            401: {"description": "The name or the token is wrong (`details.attempts_left` before the lock)."},
            429: {"description": "The account is locked for a while after repeated failures; see Retry-After."},
        },
    )
    async def sign_in(body: SignInRequest) -> SignInResponse:
        try:
            signed_in = await guard.sign_in(name=body.name, token=body.token)
        except SignInRefused as refused:
            raise ApiError(
                401,
                "sign_in_failed",
                "The name or the token is wrong.",
                details={"attempts_left": refused.attempts_left},
            ) from None
        except AccountLocked as locked:
            retry_after = max(1, math.ceil((locked.until - utc_now()).total_seconds()))
            raise ApiError(
                429,
                "account_locked",
                f"Too many failed sign-ins: this account is locked for {math.ceil(retry_after / 60)} min.",
                details={"locked_until": locked.until.isoformat(), "retry_after_seconds": retry_after},
                headers={"Retry-After": str(retry_after)},
            ) from None
        return SignInResponse(name=signed_in.name, roles=signed_in.roles, unit_id=signed_in.unit_id)

    return router
