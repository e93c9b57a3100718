"""Two reads the staff console and the oversight view need beyond the work list: the public form of an answer
before it is published, and the answers residents contested.

No `from __future__ import annotations` here: FastAPI must resolve `Depends(staff)` in annotations at runtime.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.collection import AsyncCollection

from heard_intake import access, domain
from heard_intake.auth import STAFF_ROLES, Principal, TokenStore, require_role
from heard_intake.service import staff_view
from heard_intake.sessions import Storable
from heard_shared.events import utc_now
from heard_shared.http import ApiError
from heard_shared.mongo import Document
from heard_shared.outbox import WITHOUT_OUTBOX


class AnswerPreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Annotated[Storable, Field(min_length=1, max_length=10000)]


class AnswerPreview(BaseModel):
    public_text: str = Field(description="The answer as it leaves intake: e-mail addresses, phones, plates redacted.")
    redacted: bool = Field(description="Whether redaction changed anything.")


_CONTESTED_PROJECTION: Document = {**WITHOUT_OUTBOX, "contact": 0, "contact_encrypted": 0}


async def ensure_indexes(feedback: AsyncCollection[Document]) -> None:
    await feedback.create_index("reopened_at", sparse=True)


def build_console_router(feedback: AsyncCollection[Document], tokens: TokenStore) -> APIRouter:
    router = APIRouter(prefix="/v1")

    async def staff(authorization: Annotated[str | None, Header()] = None) -> Principal:
        principal = await tokens.authenticate(authorization)
        require_role(principal, STAFF_ROLES)
        return principal

    @router.post(
        "/staff/answer-preview",
        response_model=AnswerPreview,
        tags=["staff"],
        summary="What an answer will look like once published (redacted as in events and public summaries)",
    )
    async def answer_preview(
        body: AnswerPreviewRequest, principal: Annotated[Principal, Depends(staff)]
    ) -> AnswerPreview:
        public_text = domain.redact(body.answer)
        return AnswerPreview(public_text=public_text, redacted=public_text != body.answer)

    @router.get(
        "/oversight/contested",
        tags=["oversight"],
        summary="Feedback whose answer a resident contested, most recently contested first",
    )
    async def contested(
        principal: Annotated[Principal, Depends(staff)], limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> dict[str, Any]:
        try:
            access.check_can_audit(principal)
        except access.AccessDenied as denied:
            raise ApiError(403, denied.code, denied.message) from None
        now = utc_now()
        # `reopened_at` is set by a contest and never removed, so this reads the sparse index only.
        cursor = (
            feedback.find({"reopened_at": {"$exists": True}}, _CONTESTED_PROJECTION)
            .sort("reopened_at", -1)
            .limit(limit)
        )
        return {"items": [staff_view(document, now=now) async for document in cursor]}

    return router
