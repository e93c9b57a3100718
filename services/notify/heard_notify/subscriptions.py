"""City systems' webhook subscriptions: endpoint, event types and `whsec_` secrets, managed with the CLI.

A subscription holds one or two secrets: rotation adds a new one and both sign every delivery until the old
one is retired, so the receiver can switch at its own pace. Secrets are stored encrypted under notify's key.
A 410 from the endpoint disables the subscription; only registered, enabled endpoints are ever called.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass

from pymongo.asynchronous.collection import AsyncCollection

from heard_notify.channels import AddressRefused, check_endpoint
from heard_notify.domain import Subscription
from heard_notify.keys import NotifyKeys
from heard_shared.events import EVENT_SPECS, INBOUND, utc_now
from heard_shared.mongo import Document

# Registrations and changes made with the CLI are seen by every replica within this many seconds.
CACHE_SECONDS = 5.0
MAX_SECRETS = 2
SUBSCRIBABLE = sorted(t for t in EVENT_SPECS if t != INBOUND.event_type)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class SubscriptionError(ValueError):
    pass


@dataclass(frozen=True)
class Endpoint:
    id: str
    name: str
    url: str
    event_types: frozenset[str]
    enabled: bool
    secrets: list[str]
    disabled_reason: str | None = None


class SubscriptionRegistry:
    def __init__(self, collection: AsyncCollection[Document], keys: NotifyKeys, *, allow_private: bool) -> None:
        self.collection = collection
        self.keys = keys
        self.allow_private = allow_private
        self._cache: tuple[float, dict[str, Endpoint]] | None = None

    def _endpoint(self, document: Document) -> Endpoint:
        return Endpoint(
            id=str(document["_id"]),
            name=str(document["name"]),
            url=str(document["url"]),
            event_types=frozenset(json.loads(document["event_types"])),
            enabled=bool(document.get("enabled")),
            secrets=[self.keys.open(sealed) for sealed in json.loads(document.get("secrets") or "[]")],
            disabled_reason=document.get("disabled_reason"),
        )

    async def all(self, *, fresh: bool = False) -> dict[str, Endpoint]:
        if not fresh and self._cache and time.monotonic() - self._cache[0] < CACHE_SECONDS:
            return self._cache[1]
        endpoints = {str(d["_id"]): self._endpoint(d) async for d in self.collection.find({})}
        self._cache = (time.monotonic(), endpoints)
        return endpoints

    async def active(self) -> list[Subscription]:
        return [Subscription(e.id, e.event_types, e.enabled) for e in (await self.all()).values() if e.enabled]

    async def get(self, subscription_id: str) -> Endpoint | None:
        return (await self.all()).get(subscription_id)

    def _check(self, url: str, event_types: list[str]) -> None:
        unknown = sorted(set(event_types) - {*SUBSCRIBABLE, "*"})
        if unknown:
            raise SubscriptionError(
                f"unknown event type(s) {', '.join(unknown)}; choose from {', '.join(SUBSCRIBABLE)} or *"
            )
        try:
            check_endpoint(url, allow_private=self.allow_private)
        except AddressRefused as refused:
            raise SubscriptionError(str(refused)) from refused

    async def register(
        self, *, subscription_id: str, name: str, url: str, event_types: list[str], secret: str | None = None
    ) -> str:
        """Creates or replaces a subscription; returns its secret (shown once)."""
        self._check(url, event_types)
        secret = secret or new_secret()
        if not secret.startswith("whsec_"):
            raise SubscriptionError("a secret starts with whsec_")
        now = utc_now()
        await self.collection.update_one(
            {"_id": subscription_id},
            {
                "$set": {
                    "name": name,
                    "url": url,
                    "event_types": json.dumps(sorted(event_types)),
                    "secrets": json.dumps([self.keys.seal(secret)]),
                    "enabled": 1,
                    "disabled_reason": None,
                    "updated_at": now,
                },
                "$setOnInsert": {"created_at": now},
            },
            upsert=True,
        )
        self._cache = None
        return secret

    async def rotate(self, subscription_id: str) -> str:
        """Adds a new secret; the old one keeps signing until `retire_old_secret`."""
        document = await self._existing(subscription_id)
        sealed: list[str] = json.loads(document.get("secrets") or "[]")
        secret = new_secret()
        sealed = [*sealed[-(MAX_SECRETS - 1) :], self.keys.seal(secret)]
        await self.collection.update_one(
            {"_id": subscription_id}, {"$set": {"secrets": json.dumps(sealed), "updated_at": utc_now()}}
        )
        self._cache = None
        return secret

    async def retire_old_secret(self, subscription_id: str) -> int:
        document = await self._existing(subscription_id)
        sealed: list[str] = json.loads(document.get("secrets") or "[]")
        await self.collection.update_one(
            {"_id": subscription_id}, {"$set": {"secrets": json.dumps(sealed[-1:]), "updated_at": utc_now()}}
        )
        self._cache = None
        return len(sealed) - 1

    async def set_enabled(self, subscription_id: str, enabled: bool, *, reason: str | None = None) -> bool:
        result = await self.collection.update_one(
            {"_id": subscription_id},
            {
                "$set": {
                    "enabled": int(enabled),
                    "disabled_reason": None if enabled else reason,
                    "updated_at": utc_now(),
                }
            },
        )
        self._cache = None
        return bool(result.matched_count)

    async def remove(self, subscription_id: str) -> bool:
        result = await self.collection.delete_one({"_id": subscription_id})
        self._cache = None
        return bool(result.deleted_count)

    async def describe(self) -> list[dict[str, object]]:
        """For the CLI's list: never the secrets, only how many are valid."""
        return [
            {
                "id": e.id,
                "name": e.name,
                "url": e.url,
                "event_types": sorted(e.event_types),
                "enabled": e.enabled,
                "disabled_reason": e.disabled_reason,
                "valid_secrets": len(e.secrets),
            }
            for e in (await self.all(fresh=True)).values()
        ]

    async def _existing(self, subscription_id: str) -> Document:
        document = await self.collection.find_one({"_id": subscription_id})
        if document is None:
            raise SubscriptionError(f"no subscription {subscription_id!r}")
        return document
