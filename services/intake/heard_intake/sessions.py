"""Public feedback sessions: many items gathered at one community meeting, entered at once, answered one by one.

A facilitator creates a session (date, place, who facilitated), then uploads what was said as a
JSON array or a CSV sheet. Each item is validated on its own and reported on by row, so one bad line
never loses the rest. Accepted items become ordinary feedback (channel "session", linked by
`session_id`): routed, put on SLA clocks and escalated like any other. The public
`/v1/sessions/{id}/summary` is the "you said, we did" page, and it fills in as answers are published; once the
facilitator publishes the session, it is listed at `/v1/sessions` for residents to find.

Items carry no contact details: a meeting sheet is no place to collect residents' personal data in bulk.
A resident who wants a personal reply uses the submit form and gets a tracking code.

No `from __future__ import annotations` here: FastAPI resolves `Depends(staff)` in annotations at runtime.
"""

import asyncio
import csv
import io
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pymongo.asynchronous.collection import AsyncCollection
from starlette.datastructures import UploadFile

from heard_intake import domain
from heard_intake.auth import STAFF_ROLES, Principal, TokenStore, require_role
from heard_intake.service import IntakeService
from heard_shared.events import Allegations, FeedbackInboundV1, FeedbackKind, Language, Location, utc_now
from heard_shared.http import ApiError
from heard_shared.mongo import Document

SESSION_SOURCE_PREFIX = "urn:heard:session:"
CSV_COLUMNS = (
    "kind",
    "text",
    "category",
    "language",
    "neighbourhood",
    "officer_badge",
    "rating",
    "ref",
    "allegations",
)
UPLOAD_CONCURRENCY = 8  # items are stored in parallel, but not so many that one upload starves other requests


def _storable(value: str) -> str:
    """MongoDB stores UTF-8: a JSON string with an unpaired surrogate (\\ud800) must be refused, not crash."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text contains characters that are not valid Unicode") from None
    if "\x00" in value:
        raise ValueError("text contains a NUL character")
    return value


Storable = Annotated[str, AfterValidator(_storable)]


def _cell_list(value: Any) -> Any:
    """A CSV cell holds several codes separated by semicolons, commas or spaces ("force; retaliation")."""
    if isinstance(value, str):
        return [part for part in value.replace(";", " ").replace(",", " ").split() if part]
    return value


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[Storable, Field(min_length=1, max_length=200)]
    date: date
    place: Annotated[Storable, Field(min_length=1, max_length=200)]
    facilitator: Annotated[Storable, Field(min_length=1, max_length=200)]
    neighbourhood: Annotated[Storable, Field(max_length=120)] | None = None
    language: Language = "en"
    notes: Annotated[Storable, Field(max_length=2000)] | None = None


class SessionItem(BaseModel):
    """One thing said at the meeting. `ref` (the facilitator's card or line number) makes a re-upload harmless."""

    model_config = ConfigDict(extra="forbid")

    kind: FeedbackKind
    text: Annotated[Storable, Field(min_length=1, max_length=5000)]
    category: Annotated[Storable, Field(max_length=80)] | None = None
    language: Language | None = None
    neighbourhood: Annotated[Storable, Field(max_length=120)] | None = None
    officer_badge: Annotated[Storable, Field(max_length=40)] | None = None
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    ref: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:/#-]+$")] | None = None
    allegations: Annotated[Allegations, BeforeValidator(_cell_list)] | None = None


class SessionOut(BaseModel):
    session_id: str
    title: str
    date: date
    place: str
    facilitator: str
    neighbourhood: str | None = None
    language: Language
    notes: str | None = None
    created_at: datetime
    created_by: str | None = None
    published_at: datetime | None = Field(
        default=None, description="When the facilitator published the summary; listed publicly from then on."
    )


class AcceptedItem(BaseModel):
    row: int
    feedback_id: str
    duplicate: bool = False


class RowProblem(BaseModel):
    field: str
    problem: str


class RejectedItem(BaseModel):
    row: int
    line: int | None = Field(default=None, description="For CSV: the line in the file (the header is line 1).")
    errors: list[RowProblem]


class UploadReport(BaseModel):
    session_id: str
    accepted: list[AcceptedItem]
    rejected: list[RejectedItem]


class SummaryAnswer(BaseModel):
    text: str
    answered_at: datetime | None = None
    contested: bool = Field(default=False, description="The resident contested it; a new answer is due.")


class SummaryItem(BaseModel):
    feedback_id: str
    kind: str
    category: str | None = None
    you_said: str
    status: str
    we_did: SummaryAnswer | None = None


class SummaryCounts(BaseModel):
    total: int
    answered: int
    pending: int
    withdrawn: int


class SessionSummary(BaseModel):
    session: SessionOut
    counts: SummaryCounts
    items: list[SummaryItem]


@dataclass(frozen=True)
class RawRow:
    """One uploaded item before validation: its 1-based position and, for CSV, its line in the file."""

    row: int
    line: int | None
    values: Any
    problem: str | None = None  # set when the row cannot even be read (a CSV line with the wrong cell count)


class UploadError(Exception):
    """The upload as a whole cannot be read (not an array, not UTF-8, unknown CSV columns, too many rows)."""


def parse_json_items(body: bytes) -> list[RawRow]:
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UploadError(f"the body is not valid JSON: {error}") from None
    if not isinstance(parsed, list):
        raise UploadError("send a JSON array of items")
    return [RawRow(row=index, line=None, values=value) for index, value in enumerate(parsed, start=1)]


def parse_csv_items(body: bytes) -> list[RawRow]:
    try:
        text = body.decode("utf-8-sig")  # spreadsheets often save UTF-8 with a byte-order mark
    except UnicodeDecodeError:
        raise UploadError("the CSV file must be UTF-8 encoded") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[RawRow] = []
    try:
        header = [column.strip().lower() for column in next(reader, [])]
        if not header:
            raise UploadError("the CSV file is empty; its first line must name the columns")
        unknown = [column for column in header if column not in CSV_COLUMNS]
        missing = [column for column in ("kind", "text") if column not in header]
        if unknown or missing or len(set(header)) != len(header):
            raise UploadError(
                f"CSV columns must be among {', '.join(CSV_COLUMNS)} (kind and text required, each once); "
                f"unknown: {unknown or 'none'}, missing: {missing or 'none'}"
            )
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines between groups of cards are common in hand-made sheets
            row, line = len(rows) + 1, reader.line_num
            if len(cells) != len(header):
                problem = f"{len(cells)} cells, but the header names {len(header)} columns"
                rows.append(RawRow(row=row, line=line, values=None, problem=problem))
                continue
            values = {column: cell.strip() for column, cell in zip(header, cells, strict=True) if cell.strip()}
            rows.append(RawRow(row=row, line=line, values=values))
    except csv.Error as error:
        raise UploadError(f"the CSV file cannot be read at line {reader.line_num}: {error}") from None
    return rows


def validate_row(raw: RawRow) -> SessionItem | RejectedItem:
    if raw.problem is not None:
        return RejectedItem(row=raw.row, line=raw.line, errors=[RowProblem(field="row", problem=raw.problem)])
    if not isinstance(raw.values, dict):
        return RejectedItem(
            row=raw.row, line=raw.line, errors=[RowProblem(field="item", problem="each item must be a JSON object")]
        )
    try:
        return SessionItem.model_validate(raw.values)
    except ValidationError as error:
        problems = [
            RowProblem(field=".".join(str(p) for p in e["loc"]) or "item", problem=e["msg"]) for e in error.errors()
        ]
        return RejectedItem(row=raw.row, line=raw.line, errors=problems[:20])


class SessionNotFound(Exception):
    pass


class SessionService:
    def __init__(
        self,
        *,
        sessions: AsyncCollection[Document],
        feedback: AsyncCollection[Document],
        intake: IntakeService,
        max_items: int = 500,
    ) -> None:
        self.sessions = sessions
        self.feedback = feedback
        self.intake = intake
        self.max_items = max_items

    async def ensure_indexes(self) -> None:
        await self.feedback.create_index("session_id", sparse=True)
        await self.sessions.create_index([("date", -1)])
        await self.sessions.create_index("published_at", sparse=True)

    async def create(self, *, body: SessionCreate, actor: str) -> Document:
        document: Document = {
            "_id": str(uuid.uuid4()),
            **body.model_dump(exclude_none=True),
            "date": body.date.isoformat(),  # BSON has no date-only type; ISO text sorts correctly
            "created_by": actor,
            "created_at": utc_now(),
        }
        await self.sessions.insert_one(document)
        return document

    async def get(self, session_id: str) -> Document:
        document = await self.sessions.find_one({"_id": session_id})
        if document is None:
            raise SessionNotFound(session_id)
        return document

    async def recent(self, *, limit: int) -> list[Document]:
        return [document async for document in self.sessions.find({}).sort("date", -1).limit(limit)]

    async def publish(self, *, session_id: str, actor: str) -> Document:
        """Lists the session's "you said, we did" summary publicly; publishing again changes nothing."""
        await self.sessions.update_one(
            {"_id": session_id, "published_at": {"$exists": False}},
            {"$set": {"published_at": utc_now(), "published_by": actor}},
        )
        return await self.get(session_id)

    async def published(self, *, limit: int) -> list[Document]:
        query: Document = {"published_at": {"$exists": True}}
        return [document async for document in self.sessions.find(query).sort("date", -1).limit(limit)]

    async def add_items(self, *, session_id: str, rows: list[RawRow]) -> UploadReport:
        session = await self.get(session_id)
        if len(rows) > self.max_items:
            raise UploadError(f"{len(rows)} items in one upload; at most {self.max_items}, split the sheet")
        validated = [(raw, validate_row(raw)) for raw in rows]
        gate = asyncio.Semaphore(UPLOAD_CONCURRENCY)

        async def store(raw: RawRow, item: SessionItem) -> AcceptedItem:
            async with gate:
                submission = await self.intake.submit(
                    data=self._inbound(session, item),
                    channel="session",
                    # Every item is keyed in the session's own namespace: with the facilitator's `ref` a re-upload
                    # finds the stored item instead of adding it twice; without one each upload is new feedback.
                    origin=(f"{SESSION_SOURCE_PREFIX}{session_id}", item.ref or f"row-{uuid.uuid4().hex}"),
                    extra_fields={"session_id": session_id},
                )
            return AcceptedItem(row=raw.row, feedback_id=submission.feedback_id, duplicate=submission.duplicate)

        accepted = await asyncio.gather(*(store(raw, item) for raw, item in validated if isinstance(item, SessionItem)))
        rejected = [item for _, item in validated if isinstance(item, RejectedItem)]
        return UploadReport(session_id=session_id, accepted=list(accepted), rejected=rejected)

    @staticmethod
    def _inbound(session: Document, item: SessionItem) -> FeedbackInboundV1:
        neighbourhood = item.neighbourhood or session.get("neighbourhood")
        return FeedbackInboundV1(
            kind=item.kind,
            text=item.text,
            category=item.category,
            language=item.language or session.get("language", "en"),
            location=Location(neighbourhood=neighbourhood) if neighbourhood else None,
            officer_badge=item.officer_badge,
            rating=item.rating,
            allegations=item.allegations,
            external_reference=f"session {session['_id']}" + (f" #{item.ref}" if item.ref else ""),
        )

    async def items(self, session_id: str) -> list[Document]:
        cursor = self.feedback.find(
            {"session_id": session_id},
            {"_id": 1, "kind": 1, "category": 1, "text": 1, "status": 1, "answer": 1, "submitted_at": 1},
        ).sort([("submitted_at", 1), ("_id", 1)])
        return [document async for document in cursor]

    async def summary(self, session_id: str) -> SessionSummary:
        session = await self.get(session_id)
        items = await self.items(session_id)
        entries = []
        answered = withdrawn = 0
        for document in items:
            answer: Document | None = document.get("answer")
            if domain.has_published_answer(answer):
                answered += 1
            elif document.get("status") == "withdrawn":
                withdrawn += 1
            we_did = None
            if answer and answer.get("text"):
                we_did = SummaryAnswer(
                    text=domain.redact(str(answer["text"])),
                    answered_at=answer.get("answered_at"),
                    contested=not domain.has_published_answer(answer),
                )
            entries.append(
                SummaryItem(
                    feedback_id=str(document["_id"]),
                    kind=str(document.get("kind")),
                    category=document.get("category"),
                    you_said=domain.redact(str(document.get("text", ""))),
                    status=str(document.get("status")),
                    we_did=we_did,
                )
            )
        counts = SummaryCounts(
            total=len(entries), answered=answered, withdrawn=withdrawn, pending=len(entries) - answered - withdrawn
        )
        return SessionSummary(session=session_out(session, public=True), counts=counts, items=entries)


def session_out(document: Document, *, public: bool = False) -> SessionOut:
    return SessionOut(
        session_id=str(document["_id"]),
        title=document["title"],
        date=date.fromisoformat(document["date"]),
        place=document["place"],
        facilitator=document["facilitator"],
        neighbourhood=document.get("neighbourhood"),
        language=document.get("language", "en"),
        notes=document.get("notes"),
        created_at=document.get("created_at"),
        created_by=None if public else document.get("created_by"),
        published_at=document.get("published_at"),
    )


_ITEMS_SCHEMA = SessionItem.model_json_schema()
_ITEMS_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The items as a JSON array, a CSV sheet (header line naming the columns), "
        f"or a multipart upload with the file in the `file` field. CSV columns: {', '.join(CSV_COLUMNS)}.",
        "content": {
            "application/json": {"schema": {"type": "array", "items": _ITEMS_SCHEMA}},
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


async def _read_upload(request: Request) -> list[RawRow]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=2) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise UploadError("attach the sheet as a file in the `file` field")
            body = await upload.read()
            name = (upload.filename or "").lower()
            is_json = name.endswith(".json") or (upload.content_type or "").startswith("application/json")
        content_type = "application/json" if is_json else "text/csv"
    else:
        body = await request.body()
    if content_type == "application/json":
        return parse_json_items(body)
    if content_type in ("text/csv", "application/csv", "text/plain"):
        return parse_csv_items(body)
    raise ApiError(
        415, "unsupported_media_type", "Send application/json, text/csv or multipart/form-data with a `file`."
    )


def build_sessions_router(sessions: SessionService, tokens: TokenStore) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["sessions"])

    async def staff(authorization: Annotated[str | None, Header()] = None) -> Principal:
        principal = await tokens.authenticate(authorization)
        require_role(principal, STAFF_ROLES)
        return principal

    async def load(session_id: str) -> Document:
        try:
            return await sessions.get(session_id)
        except SessionNotFound:
            raise ApiError(404, "session_not_found", f"No session with id {session_id!r}.") from None

    @router.post("/staff/sessions", status_code=201, response_model=SessionOut, summary="Create a feedback session")
    async def create_session(body: SessionCreate, principal: Annotated[Principal, Depends(staff)]) -> SessionOut:
        return session_out(await sessions.create(body=body, actor=principal.name))

    @router.get("/staff/sessions", summary="Sessions, newest first")
    async def list_sessions(
        principal: Annotated[Principal, Depends(staff)], limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> dict[str, list[SessionOut]]:
        return {"items": [session_out(document) for document in await sessions.recent(limit=limit)]}

    @router.get("/staff/sessions/{session_id}", response_model=SessionOut, summary="One session")
    async def get_session(session_id: str, principal: Annotated[Principal, Depends(staff)]) -> SessionOut:
        return session_out(await load(session_id))

    @router.post(
        "/staff/sessions/{session_id}/items",
        response_model=UploadReport,
        summary="Add many items at once; each is accepted or rejected on its own",
        openapi_extra=_ITEMS_REQUEST_BODY,
    )
    async def add_items(
        session_id: str, request: Request, principal: Annotated[Principal, Depends(staff)]
    ) -> UploadReport:
        await load(session_id)
        try:
            rows = await _read_upload(request)
            return await sessions.add_items(session_id=session_id, rows=rows)
        except UploadError as error:
            raise ApiError(400, "invalid_upload", str(error)) from None

    @router.post(
        "/staff/sessions/{session_id}/publish",
        response_model=SessionOut,
        summary='Publish the session\'s "you said, we did" summary on the public list',
    )
    async def publish_session(session_id: str, principal: Annotated[Principal, Depends(staff)]) -> SessionOut:
        await load(session_id)
        return session_out(await sessions.publish(session_id=session_id, actor=principal.name))

    @router.get("/sessions", summary="Published sessions, newest first (public)")
    async def published_sessions(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, list[SessionOut]]:
        return {"items": [session_out(document, public=True) for document in await sessions.published(limit=limit)]}

    @router.get(
        "/sessions/{session_id}/summary",
        response_model=SessionSummary,
        summary="You said, we did: the session's items with their public answers",
    )
    async def summary(session_id: str) -> SessionSummary:
        try:
            return await sessions.summary(session_id)
        except SessionNotFound:
            raise ApiError(404, "session_not_found", f"No session with id {session_id!r}.") from None

    return router
