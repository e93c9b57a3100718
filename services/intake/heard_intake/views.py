"""Intake's HTTP API under /v1: thin translations of requests into service calls.

No `from __future__ import annotations` here: FastAPI must resolve `Depends(staff)` in annotations
at runtime, and `staff` is local to `build_router`.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from heard_intake import domain
from heard_intake.auth import STAFF_ROLES, Principal, TokenStore, require_role
from heard_intake.service import FeedbackNotFound, IntakeService, public_view, staff_view
from heard_shared.events import Contact, FeedbackInboundV1, FeedbackKind, Language, Location
from heard_shared.http import ApiError

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


class SubmitFeedbackResponse(BaseModel):
    feedback_id: str
    tracking_code: str
    status_url: str
    notice: str = EMERGENCY_NOTICE


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Annotated[str, Field(min_length=1, max_length=10000)]


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
            raise ApiError(409, refused.code, refused.message) from None

    @router.post(
        "/feedback",
        status_code=202,
        response_model=SubmitFeedbackResponse,
        tags=["resident"],
        summary="Submit feedback (anonymous unless contact details are given with consent)",
    )
    async def submit(body: SubmitFeedbackRequest, request: Request) -> SubmitFeedbackResponse:
        data = FeedbackInboundV1(**body.model_dump(exclude_none=True))
        submission = await service.submit(data=data, channel="api")
        assert submission.tracking_code is not None
        return SubmitFeedbackResponse(
            feedback_id=submission.feedback_id,
            tracking_code=submission.tracking_code,
            status_url=f"{public_base_url}/v1/feedback/{submission.tracking_code}",
        )

    @router.get("/feedback/{tracking_code}", tags=["resident"], summary="See status and answer by tracking code")
    async def track(tracking_code: str) -> dict[str, Any]:
        try:
            return public_view(await service.find_by_tracking_code(tracking_code))
        except FeedbackNotFound:
            raise ApiError(404, "tracking_code_not_found", "No feedback has this tracking code.") from None

    @router.get("/staff/feedback", tags=["staff"], summary="List feedback, oldest first")
    async def list_feedback(
        principal: Annotated[Principal, Depends(staff)],
        unit_id: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        items = await service.list_for_staff(unit_id=unit_id, status=status, limit=limit)
        return {"items": [staff_view(item) for item in items]}

    @router.get("/staff/feedback/{feedback_id}", tags=["staff"])
    async def get_feedback(feedback_id: str, principal: Annotated[Principal, Depends(staff)]) -> dict[str, Any]:
        return staff_view(await load(feedback_id))

    @router.post("/staff/feedback/{feedback_id}/acknowledge", tags=["staff"])
    async def acknowledge(feedback_id: str, principal: Annotated[Principal, Depends(staff)]) -> dict[str, Any]:
        return await guarded(service.acknowledge(feedback_id=feedback_id, actor=principal.name))

    @router.post("/staff/feedback/{feedback_id}/answer", tags=["staff"])
    async def answer(
        feedback_id: str, body: AnswerRequest, principal: Annotated[Principal, Depends(staff)]
    ) -> dict[str, Any]:
        return await guarded(service.answer(feedback_id=feedback_id, answer=body.answer, actor=principal.name))

    @router.post("/staff/feedback/{feedback_id}/close", tags=["staff"])
    async def close(feedback_id: str, principal: Annotated[Principal, Depends(staff)]) -> dict[str, Any]:
        return await guarded(service.close(feedback_id=feedback_id, actor=principal.name))

    return router
