"""Intake's HTTP API under /v1: thin translations of requests into service calls.

No `from __future__ import annotations` here: FastAPI must resolve `Depends(staff)` in annotations
at runtime, and `staff` is local to `build_router`.
"""

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from heard_intake import access, domain
from heard_intake.auth import STAFF_ROLES, Principal, TokenStore, require_role
from heard_intake.ledger import public_entry
from heard_intake.service import (
    PUBLIC_FIELDS,
    FeedbackNotFound,
    IdempotencyKeyReused,
    IntakeService,
    public_view,
    staff_view,
)
from heard_shared.allegations import ALLEGATIONS, AllegationCategory
from heard_shared.events import (
    Allegations,
    Contact,
    FeedbackInboundV1,
    FeedbackKind,
    Language,
    Location,
    Severity,
    utc_now,
)
from heard_shared.http import IDEMPOTENCY_KEY, ApiError

EMERGENCY_NOTICE = (
    "Heard is not for emergencies. In an emergency call 911. / Heard no es para emergencias: llame al 911."
)


class SubmitFeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FeedbackKind
    text: Annotated[str, Field(min_length=1, max_length=5000)]
    category: Annotated[str, Field(max_length=80)] | None = None
    language: Language = "en"
    location: Location | None = None
    officer_badge: Annotated[str, Field(max_length=40)] | None = None
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    contact: Contact | None = None
    allegations: Allegations | None = None


class SubmitFeedbackResponse(BaseModel):
    feedback_id: str
    tracking_code: str
    status_url: str
    notice: str = EMERGENCY_NOTICE


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Annotated[str, Field(min_length=1, max_length=10000)]


class ReplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=5000)]


class ContestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=5000, description="Why the answer is not adequate.")]


class WithdrawRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(max_length=2000)] | None = None


class ReferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    suggested_unit_id: Annotated[str, Field(min_length=1, max_length=80)] | None = None


class TriageRequest(BaseModel):
    """Confirm (send nothing, or the current values) or change the kind and the severity."""

    model_config = ConfigDict(extra="forbid")
    kind: FeedbackKind | None = Field(default=None, description="The kind it really is; omitted: unchanged.")
    severity: Severity | None = Field(default=None, description="The severity it really has; omitted: unchanged.")
    reason: Annotated[str, Field(max_length=2000)] | None = Field(
        default=None,
        description="Why. Required (at least 10 characters) to lower the severity; shown to the oversight board.",
    )


class AllegationCategoryOut(BaseModel):
    code: AllegationCategory
    label: dict[Language, str]
    description: dict[Language, str]


class AllegationCategoriesOut(BaseModel):
    categories: list[AllegationCategoryOut]
    notice: str = (
        "Declaring any of these makes the feedback critical: it goes straight to professional standards and the "
        "civilian oversight board is told. / Declarar cualquiera de estas hace que la queja sea crítica: va "
        "directamente a asuntos internos y se informa a la junta civil de supervisión."
    )


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=5000)]


StatusFilter = Literal[
    "open",
    "submitted",
    "routed",
    "acknowledged",
    "answered",
    "closed",
    "withdrawn",
    "escalated",
    "reopened",
    "referred",
]


TriageFilter = Literal["needed", "awaiting", "flagged", "not_required", "done"]


def build_router(service: IntakeService, tokens: TokenStore, *, public_base_url: str) -> APIRouter:
    router = APIRouter(prefix="/v1")

    async def staff(authorization: Annotated[str | None, Header()] = None) -> Principal:
        principal = await tokens.authenticate(authorization)
        require_role(principal, STAFF_ROLES)
        return principal

    async def load(feedback_id: str) -> dict[str, Any]:
        try:
            return await service.get(feedback_id)
        except FeedbackNotFound:
            raise ApiError(404, "feedback_not_found", f"No feedback with id {feedback_id!r}.") from None

    async def guarded(action: Any) -> dict[str, Any]:
        try:
            return staff_view(await action)
        except FeedbackNotFound:
            raise ApiError(404, "feedback_not_found", "No such feedback.") from None
        except domain.GuardViolation as refused:
            raise ApiError(refused.status, refused.code, refused.message) from None

    async def load_for(principal: Principal, feedback_id: str, *, act: bool) -> dict[str, Any]:
        """The item, if this principal may see it (or, with `act`, change it)."""
        document = await load(feedback_id)
        try:
            if act:
                access.check_can_act(principal, document.get("unit_id"))
            else:
                access.check_can_see(principal, document.get("unit_id"))
        except access.AccessDenied as denied:
            raise ApiError(403, denied.code, denied.message) from None
        return document

    async def as_resident(action: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        try:
            return public_view(await action)
        except FeedbackNotFound:
            raise ApiError(404, "tracking_code_not_found", "No feedback has this tracking code.") from None
        except domain.GuardViolation as refused:
            raise ApiError(409, refused.code, refused.message) from None

    @router.post(
        "/feedback",
        status_code=202,
        response_model=SubmitFeedbackResponse,
        tags=["resident"],
        summary="Submit feedback (anonymous unless contact details are given with consent)",
    )
    async def submit(
        body: SubmitFeedbackRequest,
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                pattern=IDEMPOTENCY_KEY.pattern,
                description=(
                    "A random value (a UUID, or 22 to 128 URL-safe characters) made once per feedback. The same "
                    "request sent again with it (a retry after a time-out, a resent form) creates nothing new and "
                    "answers with the first one's item and tracking code, marked `Idempotent-Replayed: true`. "
                    "The key with a different request is refused (422 `idempotency_key_reused`)."
                ),
            ),
        ] = None,
    ) -> SubmitFeedbackResponse:
        data = FeedbackInboundV1(**body.model_dump(exclude_none=True))
        try:
            submission = await service.submit(data=data, channel="api", idempotency_key=idempotency_key)
        except IdempotencyKeyReused:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different submission. Make a new key for each feedback.",
            ) from None
        if submission.duplicate:
            response.headers["idempotent-replayed"] = "true"
        assert submission.tracking_code is not None
        return SubmitFeedbackResponse(
            feedback_id=submission.feedback_id,
            tracking_code=submission.tracking_code,
            status_url=f"{public_base_url}/v1/feedback/{submission.tracking_code}",
        )

    @router.get(
        "/allegation-categories",
        response_model=AllegationCategoriesOut,
        tags=["resident"],
        summary="The misconduct a resident may declare, in English and Spanish; any of them makes the item critical",
    )
    async def allegation_categories() -> AllegationCategoriesOut:
        return AllegationCategoriesOut.model_validate(
            {"categories": [allegation.as_json() for allegation in ALLEGATIONS]}
        )

    @router.get("/feedback/{tracking_code}", tags=["resident"], summary="See status and answer by tracking code")
    async def track(tracking_code: str) -> dict[str, Any]:
        try:
            return public_view(await service.find_by_tracking_code(tracking_code, fields=PUBLIC_FIELDS))
        except FeedbackNotFound:
            raise ApiError(404, "tracking_code_not_found", "No feedback has this tracking code.") from None

    @router.post("/feedback/{tracking_code}/reply", tags=["resident"], summary="Add a reply to the public history")
    async def reply(tracking_code: str, body: ReplyRequest) -> dict[str, Any]:
        return await as_resident(service.reply(tracking_code=tracking_code, text=body.text))

    @router.post(
        "/feedback/{tracking_code}/contest",
        tags=["resident"],
        summary="Contest a published answer: the item reopens one level higher",
    )
    async def contest(tracking_code: str, body: ContestRequest) -> dict[str, Any]:
        return await as_resident(service.contest(tracking_code=tracking_code, reason=body.reason))

    @router.post("/feedback/{tracking_code}/withdraw", tags=["resident"], summary="Withdraw the feedback")
    async def withdraw(tracking_code: str, body: WithdrawRequest | None = None) -> dict[str, Any]:
        reason = body.reason if body else None
        return await as_resident(service.withdraw(tracking_code=tracking_code, reason=reason))

    @router.post(
        "/feedback/{tracking_code}/erasure",
        tags=["resident"],
        summary="Erase personal data; the record, its status and statistics are kept",
    )
    async def erase(tracking_code: str) -> dict[str, Any]:
        return await as_resident(service.erase(tracking_code=tracking_code))

    @router.get("/staff/feedback", tags=["staff"], summary="List feedback: overdue first, then oldest first")
    async def list_feedback(
        principal: Annotated[Principal, Depends(staff)],
        unit_id: str | None = None,
        status: StatusFilter | None = None,
        triage: Annotated[
            TriageFilter | None,
            Query(description="needed: every item a person must still triage (awaiting or flagged)."),
        ] = None,
        severity: Severity | None = None,
        allegation: AllegationCategory | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        try:
            scope = access.list_scope(principal, unit_id)
        except access.AccessDenied as denied:
            raise ApiError(403, denied.code, denied.message) from None
        now = utc_now()  # one instant for ordering and for the `overdue` flags, so they agree
        items = await service.list_for_staff(
            unit_id=scope,
            status=status,
            limit=limit,
            now=now,
            triage=triage,
            severity=severity,
            allegation=allegation,
        )
        return {"items": [staff_view(item, now=now) for item in items]}

    @router.get("/staff/feedback/{feedback_id}", tags=["staff"])
    async def get_feedback(feedback_id: str, principal: Annotated[Principal, Depends(staff)]) -> dict[str, Any]:
        return staff_view(await load_for(principal, feedback_id, act=False))

    @router.post("/staff/feedback/{feedback_id}/acknowledge", tags=["staff"])
    async def acknowledge(feedback_id: str, principal: Annotated[Principal, Depends(staff)]) -> dict[str, Any]:
        seen = await load_for(principal, feedback_id, act=True)
        return await guarded(service.acknowledge(feedback_id=feedback_id, actor=principal.name, seen=seen))

    @router.post("/staff/feedback/{feedback_id}/answer", tags=["staff"])
    async def answer(
        feedback_id: str, body: AnswerRequest, principal: Annotated[Principal, Depends(staff)]
    ) -> dict[str, Any]:
        seen = await load_for(principal, feedback_id, act=True)
        return await guarded(
            service.answer(feedback_id=feedback_id, answer=body.answer, actor=principal.name, seen=seen)
        )

    @router.post(
        "/staff/feedback/{feedback_id}/triage",
        tags=["staff"],
        summary="Confirm or change kind and severity: raising is free; lowering needs a reason and is audited",
        description="Lowering a critical item needs the professional_standards or oversight role (403 "
        "`lowering_critical_needs_role`); lowering anything needs `reason` (422 `reason_required`). Publishes "
        "`feedback.triaged`; routing re-derives the deadlines and the chain.",
    )
    async def triage(
        feedback_id: str, body: TriageRequest, principal: Annotated[Principal, Depends(staff)]
    ) -> dict[str, Any]:
        document = await load(feedback_id)
        try:
            access.check_can_triage(principal, document.get("unit_id"))
        except access.AccessDenied as denied:
            raise ApiError(403, denied.code, denied.message) from None
        return await guarded(
            service.triage(
                feedback_id=feedback_id,
                kind=body.kind,
                severity=body.severity,
                reason=body.reason,
                actor=principal.name,
                role=access.acting_role(principal),
                may_lower_critical=access.may_lower_critical(principal),
                seen=document,
            )
        )

    @router.post("/staff/feedback/{feedback_id}/close", tags=["staff"])
    async def close(feedback_id: str, principal: Annotated[Principal, Depends(staff)]) -> dict[str, Any]:
        seen = await load_for(principal, feedback_id, act=True)
        return await guarded(service.close(feedback_id=feedback_id, actor=principal.name, seen=seen))

    @router.post("/staff/feedback/{feedback_id}/refer", tags=["staff"], summary="Refer the item on, with a reason")
    async def refer(
        feedback_id: str, body: ReferRequest, principal: Annotated[Principal, Depends(staff)]
    ) -> dict[str, Any]:
        seen = await load_for(principal, feedback_id, act=True)
        return await guarded(
            service.refer(
                feedback_id=feedback_id,
                reason=body.reason,
                suggested_unit_id=body.suggested_unit_id,
                actor=principal.name,
                seen=seen,
            )
        )

    @router.post(
        "/staff/feedback/{feedback_id}/notes",
        status_code=201,
        tags=["staff"],
        summary="Add an internal note (never shown to the resident)",
    )
    async def add_note(
        feedback_id: str, body: NoteRequest, principal: Annotated[Principal, Depends(staff)]
    ) -> dict[str, Any]:
        seen = await load_for(principal, feedback_id, act=True)
        return await guarded(service.add_note(feedback_id=feedback_id, text=body.text, actor=principal.name, seen=seen))

    @router.get(
        "/oversight/severity-changes",
        tags=["oversight"],
        summary="Every lowering (or raising) of severity by staff, newest first, from the audit ledger",
    )
    async def severity_changes(
        principal: Annotated[Principal, Depends(staff)],
        direction: Literal["lowered", "raised"] = "lowered",
        before: Annotated[datetime | None, Query(description="Only changes before this time (paging).")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        try:
            access.check_can_audit(principal)
        except access.AccessDenied as denied:
            raise ApiError(403, denied.code, denied.message) from None
        changes = await service.severity_changes(direction=direction, limit=limit, before=before)
        return {"direction": direction, "items": changes}

    @router.get(
        "/oversight/feedback/{feedback_id}/audit",
        tags=["oversight"],
        summary="The item's hash-chained audit trail and whether it verifies",
    )
    async def audit_trail(feedback_id: str, principal: Annotated[Principal, Depends(staff)]) -> dict[str, Any]:
        try:
            access.check_can_audit(principal)
        except access.AccessDenied as denied:
            raise ApiError(403, denied.code, denied.message) from None
        try:
            entries, verification = await service.audit_trail(feedback_id)
        except FeedbackNotFound:
            raise ApiError(404, "feedback_not_found", f"No feedback with id {feedback_id!r}.") from None
        return {
            "feedback_id": feedback_id,
            "verified": verification.verified,
            "broken_at": verification.broken_at,
            "reason": verification.reason,
            "entries": [public_entry(entry) for entry in entries],
        }

    return router
