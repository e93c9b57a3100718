"""Bearer tokens for staff and city systems. Only a SHA-256 hash of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from pymongo.asynchronous.collection import AsyncCollection

from heard_shared.events import utc_now
from heard_shared.http import ApiError
from heard_shared.mongo import Document

Role = Literal[
    "unit_member",
    "supervisor",
    "commander",
    "professional_standards",
    "oversight",
    "admin",
    "city_system",
    # A service token for notify: may ask for one resident's address for one delivery, nothing else.
    "contact_disclosure",
]
STAFF_ROLES: frozenset[str] = frozenset(
    {"unit_member", "supervisor", "commander", "professional_standards", "oversight", "admin"}
)
TOKEN_PREFIX = "heard_"


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    unit_id: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def issue(self, *, name: str, roles: list[str], unit_id: str | None = None, token: str | None = None) -> str:
        token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self.collection.update_one(
            {"_id": hash_token(token)},
            {
                "$set": {"name": name, "roles": roles, "unit_id": unit_id, "revoked_at": None},
                "$setOnInsert": {"created_at": utc_now()},
            },
            upsert=True,
        )
        return token

    async def revoke(self, *, name: str) -> int:
        result = await self.collection.update_many(
            {"name": name, "revoked_at": None}, {"$set": {"revoked_at": utc_now()}}
        )
        return result.modified_count

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(
                401, "unauthenticated", "Send 'Authorization: Bearer <token>'.", headers={"WWW-Authenticate": "Bearer"}
            )
        record = await self.collection.find_one({"_id": hash_token(authorization[7:].strip())})
        if record is None or record.get("revoked_at") is not None:
            raise ApiError(
                401,
                "invalid_token",
                "The token is unknown or has been revoked.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Principal(name=record["name"], roles=frozenset(record["roles"]), unit_id=record.get("unit_id"))


def require_role(principal: Principal, allowed: frozenset[str]) -> None:
    if not principal.roles & allowed:
        raise ApiError(403, "forbidden", f"This action needs one of the roles: {', '.join(sorted(allowed))}.")
