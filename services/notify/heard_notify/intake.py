"""Asks intake for a resident's address at the moment a message is sent (notify never stores one).

Intake records every disclosure in its audit ledger and refuses once the resident erased their data,
withdrew consent or gave no contact for the channel; a refusal is final for that delivery (suppressed).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Disclosure:
    address: str
    language: str
    tracking_url: str | None


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str


class IntakeUnavailable(Exception):
    """Intake did not answer usefully; the delivery is tried again later."""


class IntakeContacts:
    def __init__(self, *, base_url: str, token: str, timeout: float, max_concurrent: int = 4) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, headers={"Authorization": f"Bearer {token}"}
        )
        # A burst of resident messages must not become a burst of writes on intake, which serves residents too.
        self._slots = asyncio.Semaphore(max_concurrent)

    async def disclose(self, *, feedback_id: str, delivery_id: str, channel: str, purpose: str) -> Disclosure | Refusal:
        try:
            async with self._slots:
                response = await self.client.post(
                    "/internal/v1/contact-disclosures",
                    json={
                        "feedback_id": feedback_id,
                        "delivery_id": delivery_id,
                        "channel": channel,
                        "purpose": purpose,
                    },
                )
        except httpx.HTTPError as error:
            raise IntakeUnavailable(f"{type(error).__name__}: {error}") from error
        if response.status_code == 200:
            body = response.json()
            return Disclosure(address=body["address"], language=body["language"], tracking_url=body.get("tracking_url"))
        if response.status_code in (404, 410):
            refused = (response.json().get("error") or {}) if response.content else {}
            return Refusal(str(refused.get("code", f"http_{response.status_code}")), str(refused.get("message", "")))
        raise IntakeUnavailable(f"intake answered {response.status_code}: {response.text[:200]}")

    async def close(self) -> None:
        await self.client.aclose()
