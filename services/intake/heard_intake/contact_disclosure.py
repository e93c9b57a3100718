"""Contact details for notify, one delivery at a time, and the resident's withdrawal of consent.

Notify stores no address. When it is about to send a resident a message it asks here, with a service token
carrying the `contact_disclosure` role, for the one address that delivery needs; each disclosure is written
to the item's audit ledger ("contact disclosed to notify for delivery X"), and nothing is disclosed once the
resident erased their data, withdrew consent, gave no contact for that channel or never consented. Because
the address is fetched at send time, an erasure or a withdrawal stops every later message at once.

    POST /internal/v1/contact-disclosures            (notify's token)
    POST /v1/feedback/{tracking_code}/consent/withdraw   (the resident, by tracking code)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Header
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from heard_intake import ledger
from heard_intake.auth import TokenStore, require_role
from heard_intake.ledger import with_audit
from heard_intake.service import RESIDENT, FeedbackNotFound, IntakeService, public_view
from heard_shared.events import utc_now
from heard_shared.http import ApiError
from heard_shared.mongo import Document

DISCLOSURE_ROLE = frozenset({"contact_disclosure"})
NOTIFY_TOKEN_NAME = "notify"


class DisclosureSettings(BaseSettings):
    """HEARD_INTAKE_NOTIFY_TOKEN: a token for notify issued at start-up (like the bootstrap admin token)."""

    model_config = SettingsConfigDict(env_prefix="HEARD_INTAKE_", extra="ignore", frozen=True)
    notify_token: SecretStr = SecretStr("")


class DisclosureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feedback_id: Annotated[str, Field(min_length=1, max_length=100)]
    delivery_id: Annotated[str, Field(min_length=1, max_length=100)]
    channel: Literal["email", "sms"]
    purpose: Annotated[str, Field(min_length=1, max_length=60, description="The message template, for the ledger.")]


class DisclosureResponse(BaseModel):
    feedback_id: str
    delivery_id: str
    channel: str
    address: str
    language: str
    tracking_url: str | None


def _refused(code: str, message: str) -> ApiError:
    # 410: this delivery will never get an address; notify records it as suppressed with this code.
    return ApiError(410, code, message)


class ContactDisclosure:
    def __init__(self, service: IntakeService, *, public_base_url: str) -> None:
        self.service = service
        self.public_base_url = public_base_url.rstrip("/")

    async def disclose(self, request: DisclosureRequest, *, actor: str) -> DisclosureResponse:
        feedback = self.service.feedback
        fid = request.feedback_id
        document = await feedback.find_one(
            {"_id": fid},
            {
                "contact_encrypted": 1,
                "tracking_code_encrypted": 1,
                "erased_at": 1,
                "consent_withdrawn_at": 1,
                "contact_purged_at": 1,
                "language": 1,
            },
        )
        if document is None:
            raise ApiError(404, "feedback_not_found", f"No feedback with id {fid!r}.")
        if document.get("erased_at"):
            raise _refused("contact_erased", "The resident erased their personal data.")
        if document.get("consent_withdrawn_at"):
            raise _refused("consent_withdrawn", "The resident withdrew their consent to be contacted.")
        if not document.get("contact_encrypted"):
            code = "contact_expired" if document.get("contact_purged_at") else "no_contact"
            raise _refused(code, "There is no contact for this feedback.")
        contact = self.service.contact_cipher.decrypt(document["contact_encrypted"])
        if not contact.consent_to_contact:
            raise _refused("no_consent", "The resident did not consent to be contacted.")
        address = contact.email if request.channel == "email" else contact.phone
        if not address:
            raise _refused("no_address_for_channel", f"The resident gave no {request.channel} contact.")
        entry = ledger.stage(
            "contact_disclosed",
            actor=actor,
            details={"delivery_id": request.delivery_id, "channel": request.channel, "purpose": request.purpose},
        )
        async with self.service.serial(fid):
            # Recorded only while the contact is still there: an erasure racing this request wins. The entry is
            # staged in the item's document by this same write (durable before the address leaves); intake's relay
            # appends it to the hash chain within a second, so the request does not wait for the chain.
            recorded = await feedback.update_one(
                {"_id": fid, "contact_encrypted": document["contact_encrypted"]}, with_audit({}, entry)
            )
            if not recorded.modified_count:
                raise _refused("contact_erased", "The contact was removed meanwhile.")
        sealed_code = document.get("tracking_code_encrypted")
        tracking = self.service.contact_cipher.decrypt_text(sealed_code) if sealed_code else None
        return DisclosureResponse(
            feedback_id=fid,
            delivery_id=request.delivery_id,
            channel=request.channel,
            address=address,
            language=str(document.get("language") or "en"),
            tracking_url=f"{self.public_base_url}/v1/feedback/{tracking}" if tracking else None,
        )

    async def withdraw_consent(self, *, tracking_code: str) -> Document:
        """The resident no longer wants to be contacted: the contact is deleted, later messages stop."""
        current = await self.service.find_by_tracking_code(tracking_code)
        if current.get("consent_withdrawn_at") or "contact_encrypted" not in await self._raw(current["_id"]):
            return current
        now = utc_now()
        fid = current["_id"]
        entry = ledger.stage("consent_withdrawn", actor=RESIDENT, at=now, details={"fields": ["contact"]})
        async with self.service.serial(fid):
            await self.service.feedback.update_one(
                {"_id": fid},
                with_audit(
                    {
                        "$unset": {"contact_encrypted": "", "tracking_code_encrypted": ""},
                        "$set": {"consent_withdrawn_at": now, "updated_at": now},
                    },
                    entry,
                ),
            )
            await self.service.ledger.try_flush(self.service.feedback, fid)
        return await self.service.get(fid)

    async def _raw(self, fid: str) -> Document:
        return await self.service.feedback.find_one({"_id": fid}, {"contact_encrypted": 1}) or {}


def install(app: FastAPI, service: IntakeService, tokens: TokenStore, *, public_base_url: str) -> list[Any]:
    """Adds the routes; returns start-up hooks (issuing HEARD_INTAKE_NOTIFY_TOKEN if one is configured)."""
    disclosure = ContactDisclosure(service, public_base_url=public_base_url)
    router = APIRouter()

    @router.post(
        "/internal/v1/contact-disclosures",
        response_model=DisclosureResponse,
        tags=["internal"],
        summary="One resident address for one delivery (notify only; audited; refused after erasure or withdrawal)",
    )
    async def contact_disclosure(
        body: DisclosureRequest, authorization: Annotated[str | None, Header()] = None
    ) -> DisclosureResponse:
        principal = await tokens.authenticate(authorization)
        require_role(principal, DISCLOSURE_ROLE)
        return await disclosure.disclose(body, actor=f"service:{principal.name}")

    @router.post(
        "/v1/feedback/{tracking_code}/consent/withdraw",
        tags=["resident"],
        summary="Withdraw consent to be contacted: the contact details are deleted and no more messages are sent",
    )
    async def withdraw_consent(tracking_code: str) -> dict[str, Any]:
        try:
            return public_view(await disclosure.withdraw_consent(tracking_code=tracking_code))
        except FeedbackNotFound:
            raise ApiError(404, "tracking_code_not_found", "No feedback has this tracking code.") from None

    app.include_router(router)
    token = DisclosureSettings().notify_token.get_secret_value()

    async def issue_notify_token() -> None:
        if token:
            await tokens.issue(name=NOTIFY_TOKEN_NAME, roles=["contact_disclosure"], token=token)

    return [issue_notify_token]
