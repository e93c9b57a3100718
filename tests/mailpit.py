"""Reads Mailpit's HTTP API (`/api/v1`): what the platform really sent over SMTP."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx


class Mailpit:
    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self.http = http
        self.api = f"{base_url}/api/v1"

    async def search(self, query: str, limit: int = 200) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.api}/search", params={"query": query, "limit": limit})
        response.raise_for_status()
        return list(response.json()["messages"])

    async def to(self, address: str) -> list[dict[str, Any]]:
        return await self.search(f'to:"{address}"')

    async def message(self, mailpit_id: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.api}/message/{mailpit_id}")
        response.raise_for_status()
        return dict(response.json())

    async def headers(self, mailpit_id: str) -> dict[str, list[str]]:
        response = await self.http.get(f"{self.api}/message/{mailpit_id}/headers")
        response.raise_for_status()
        return dict(response.json())

    async def message_ids(self) -> Counter[str]:
        """How often each Message-ID is in the mailbox (a message sent twice counts 2)."""
        seen: Counter[str] = Counter()
        start = 0
        while True:
            response = await self.http.get(f"{self.api}/messages", params={"start": start, "limit": 500})
            response.raise_for_status()
            page = response.json()
            seen.update(m["MessageID"] for m in page["messages"])
            start += len(page["messages"])
            if not page["messages"] or start >= page["messages_count"]:
                return seen

    async def total(self) -> int:
        response = await self.http.get(f"{self.api}/messages", params={"limit": 1})
        response.raise_for_status()
        return int(response.json()["messages_count"])
