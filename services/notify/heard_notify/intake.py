"""Asks intake for a resident's address at the moment a message is sent (notify never stores one), and whether a
staff member may read an item's deliveries (intake owns the tokens, the roles and who may see which item).

Intake records every disclosure in its audit ledger and refuses once the resident erased their data,
withdrew consent or gave no contact for the channel; a refusal is final for that delivery (suppressed).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from heard_shared.http import ApiError


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


class StaffGate:
    """Staff reading deliveries pass on their own bearer token; intake answers whether it may see the item.

    Notify keeps no copy of tokens or roles, so revoking a token or moving a person to another unit takes
    effect here at once. Anything intake refuses comes back as no data (404), never as a hint.
    """

    def __init__(self, *, base_url: str, timeout: float) -> None:
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def check_item(self, authorization: str | None, feedback_id: str) -> None:
        await self._ask(authorization, f"/v1/staff/feedback/{feedback_id}")

    async def check_audit(self, authorization: str | None) -> None:
        """Listings across items (by recipient or status) are for the roles that may read audit trails."""
        body = await self._ask(authorization, "/v1/staff/me")
        if not body.get("can_audit"):
            raise ApiError(403, "forbidden", "Listing deliveries across items needs a role that may read audit trails.")

    async def _ask(self, authorization: str | None, path: str) -> dict[str, object]:
        if not authorization:
            raise ApiError(
                401, "unauthenticated", "Send 'Authorization: Bearer <token>'.", headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            response = await self.client.get(path, headers={"Authorization": authorization})
        except httpx.HTTPError as error:
            raise ApiError(503, "intake_unavailable", "Intake cannot check the token right now.") from error
        if response.status_code == 200:
            body: dict[str, object] = response.json()
            return body
        if response.status_code == 401:
            raise ApiError(
                401,
                "invalid_token",
                "The token is unknown or has been revoked.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if response.status_code in (403, 404):
            raise ApiError(404, "not_found", "No deliveries you may see.")
        raise ApiError(503, "intake_unavailable", f"Intake answered {response.status_code} to the token check.")

    async def close(self) -> None:
        await self.client.aclose()
