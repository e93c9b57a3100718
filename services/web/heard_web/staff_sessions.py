"""Server-side staff sessions in web's own MongoDB collection, so any replica serves them and a restart keeps them.

The browser holds only a random 256-bit secret in an HttpOnly cookie. The collection keys each session by the
secret's SHA-256 and keeps the staff member's bearer token sealed (Fernet) under a key derived from the secret,
so a copy of the database alone signs nobody in and reveals no token. A session ends on sign-out, after
`idle_timeout` without a request, or `max_age` after sign-in, whichever comes first; a TTL index removes what
is left. Nothing about residents is ever stored here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure

from heard_shared.events import utc_now
from heard_shared.mongo import Document

# Writing `expires_at` on every request would turn every page view into a database write; a minute is plenty.
_SLIDE_EVERY = timedelta(minutes=1)
SEE_ALL_ROLES = frozenset({"supervisor", "commander", "professional_standards", "admin", "oversight"})
OVERSIGHT_ROLES = frozenset({"oversight", "professional_standards", "admin"})


@dataclass(frozen=True)
class StaffSession:
    """Who is signed in. Roles only choose what the pages offer; intake decides what they may do."""

    key: str
    token: str
    name: str
    roles: frozenset[str]
    unit_id: str | None
    expires_at: datetime

    @property
    def sees_all_units(self) -> bool:
        return bool(self.roles & SEE_ALL_ROLES)

    @property
    def is_oversight(self) -> bool:
        return bool(self.roles & OVERSIGHT_ROLES)

    @property
    def only_oversight(self) -> bool:
        """The board reads everything and changes nothing: its start page is the oversight view."""
        return self.roles == {"oversight"}


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"heard-web staff session v1").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


class SessionStore:
    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        idle_timeout: timedelta,
        max_age: timedelta,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.collection = collection
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self.clock = clock

    async def ensure_indexes(self) -> None:
        try:
            await self.collection.create_index("expires_at", expireAfterSeconds=0)
        except OperationFailure:
            # A MongoDB-wire server without TTL indexes: expired sessions are refused all the same and removed
            # at each sign-in (`create`).
            await self.collection.create_index("expires_at")

    async def create(self, *, token: str, name: str, roles: list[str], unit_id: str | None) -> str:
        """Stores a new session and returns the secret for the browser's cookie."""
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        sealed = _fernet(secret).encrypt(
            json.dumps({"token": token, "name": name, "roles": sorted(roles), "unit_id": unit_id}).encode()
        )
        await self.collection.delete_many({"expires_at": {"$lte": now}})
        await self.collection.insert_one(
            {
                "_id": _key(secret),
                "sealed": sealed.decode(),
                "created_at": now,
                "seen_at": now,
                "ends_at": now + self.max_age,
                "expires_at": min(now + self.idle_timeout, now + self.max_age),
            }
        )
        return secret

    async def load(self, secret: str) -> StaffSession | None:
        """The live session behind a cookie, its idle clock restarted; None if unknown, ended or expired."""
        if not secret or len(secret) > 100:
            return None
        key, now = _key(secret), self.clock()
        record = await self.collection.find_one({"_id": key})
        if record is None or record["expires_at"] <= now:
            return None
        try:
            payload = json.loads(_fernet(secret).decrypt(record["sealed"].encode()))
        except (InvalidToken, ValueError):
            return None
        expires_at = record["expires_at"]
        if now - record["seen_at"] >= _SLIDE_EVERY:
            expires_at = min(now + self.idle_timeout, record["ends_at"])
            await self.collection.update_one({"_id": key}, {"$set": {"seen_at": now, "expires_at": expires_at}})
        return StaffSession(
            key=key,
            token=payload["token"],
            name=payload["name"],
            roles=frozenset(payload["roles"]),
            unit_id=payload.get("unit_id"),
            expires_at=expires_at,
        )

    async def end(self, key: str) -> None:
        await self.collection.delete_one({"_id": key})
