"""The event contract: CloudEvents 1.0 envelope (structured JSON mode) and versioned data models.

This module is the single place event schemas live. `schemas/` and `schemas/asyncapi.yaml` are
generated from it (`python -m heard_shared.contract`) and a contract test keeps them in sync.
A breaking change is a new model with a `.v2` type, never an edit of a published one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from heard_shared import topics
from heard_shared.allegations import MAX_ALLEGATIONS, AllegationCategory, in_catalog_order

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
EVENT_ID_NAMESPACE = uuid.UUID("6f1c7a3e-2a51-4d8f-9c3e-8e2b5b0f4a11")

FeedbackKind = Literal["praise", "concern", "complaint", "suggestion", "question"]
Severity = Literal["positive", "neutral", "negative", "critical"]
Language = Literal["en", "es"]
Channel = Literal["web", "api", "open311", "kafka", "session"]
ResidentChannel = Literal["email", "sms"]  # how notify may message a resident
TriageDecision = Literal["confirmed", "raised", "lowered", "reclassified"]
# How a triage decision is named: positive and neutral are one step (neither asks for an answer), below
# negative, below critical. Moving between positive and neutral raises or lowers nothing.
SEVERITY_RANK: dict[str, int] = {"positive": 0, "neutral": 0, "negative": 1, "critical": 2}
StaffRole = Literal["unit_member", "supervisor", "commander", "professional_standards", "oversight", "admin"]
Allegations = Annotated[
    list[AllegationCategory],
    Field(
        max_length=MAX_ALLEGATIONS,
        description="Misconduct the resident declares, from the fixed list in heard_shared.allegations "
        "(GET /v1/allegation-categories on intake). Each code once, in the list's order. Any declared "
        "allegation makes the item critical.",
    ),
    AfterValidator(in_catalog_order),
]


class ContractModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Location(ContractModel):
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    address: Annotated[str, Field(max_length=300)] | None = None
    neighbourhood: Annotated[str, Field(max_length=120)] | None = None


class PublicLocation(ContractModel):
    """Location as it may travel beyond intake: no street address, which can identify a home."""

    latitude: float | None = None
    longitude: float | None = None
    neighbourhood: str | None = None


class Contact(ContractModel):
    name: Annotated[str, Field(max_length=200)] | None = None
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    phone: Annotated[str, Field(max_length=40, pattern=r"^[+0-9 ().-]{5,40}$")] | None = None
    consent_to_contact: bool = False

    def channels(self) -> list[ResidentChannel]:
        """The channels the resident may be messaged on: an address given for it, and consent."""
        if not self.consent_to_contact:
            return []
        given: tuple[tuple[ResidentChannel, str | None], ...] = (("email", self.email), ("sms", self.phone))
        return [channel for channel, address in given if address]


class FeedbackInboundV1(ContractModel):
    """What a city system publishes on `feedback.inbound`; the only topic that may carry contact data."""

    kind: FeedbackKind
    text: Annotated[str, Field(min_length=1, max_length=5000)]
    category: Annotated[str, Field(max_length=80)] | None = None
    language: Language = "en"
    location: Location | None = None
    officer_badge: Annotated[str, Field(max_length=40)] | None = None
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    contact: Contact | None = None
    external_reference: Annotated[str, Field(max_length=200)] | None = None
    # Added after v1 was published: optional, so every event a publisher already sends stays valid.
    allegations: Allegations | None = None


class FeedbackSubmittedV1(ContractModel):
    feedback_id: str
    channel: Channel
    kind: FeedbackKind
    category: str | None = None
    language: Language
    text: str = Field(description="Free text with e-mail addresses, phone numbers and plates redacted.")
    location: PublicLocation | None = None
    officer_badge: str | None = None
    rating: int | None = None
    severity: Severity
    negative: bool
    severity_reasons: list[str] = Field(default_factory=list)
    has_contact: bool = False
    submitted_at: datetime
    # Added after v1 was published. Absent unless used, so an event that uses neither looks as it always did.
    allegations: Allegations | None = None
    flagged_for_triage: bool | None = Field(
        default=None,
        description="True when intake's severity assessor was unsure: the item is treated as negative (severity "
        "'negative', with its deadlines) and a person must confirm or change its kind and severity "
        "(feedback.triaged). Absent otherwise.",
    )
    contact_channels: list[ResidentChannel] | None = Field(
        default=None,
        description="With has_contact: the channels the resident may be messaged on (an address given for it, and "
        "consent to be contacted); empty without consent. Names channels, never an address. Absent without "
        "contact details, and from events published before it was added.",
    )


class FeedbackRoutedV1(ContractModel):
    feedback_id: str
    unit_id: str
    unit_name: str
    level: int = Field(ge=0, description="0 = assigned unit; each escalation moves one level up the chain.")
    rule: str = Field(description="The routing rule that matched, or 'fallback'.")
    negative: bool
    severity: Severity
    acknowledge_by: datetime | None = None
    answer_by: datetime | None = None
    routed_at: datetime
    # Added after v1 was published; absent unless they apply.
    triage_by: datetime | None = Field(
        default=None,
        description="For an item not assessed negative (positive or neutral, praise included): a person must "
        "triage it — confirm or change its kind and severity — by then, or it escalates (reason "
        "'triage_overdue'). Its acknowledge_by and answer_by are then absent.",
    )
    critical_on_arrival: bool | None = Field(
        default=None,
        description="True on the decision that routes an item as critical for the first time: when a critical item "
        "arrives, or when triage raises an item to critical. The civilian oversight board (oversight_board_id) must "
        "be told now, not only when the item escalates to it. Absent otherwise.",
    )
    oversight_board_id: str | None = Field(
        default=None, description="The civilian oversight board's unit id; set with critical_on_arrival."
    )


class FeedbackAcknowledgedV1(ContractModel):
    feedback_id: str
    unit_id: str | None = None
    acknowledged_at: datetime


class FeedbackAnsweredV1(ContractModel):
    feedback_id: str
    unit_id: str | None = None
    answer: str = Field(description="The public answer, with personal data redacted.")
    answered_at: datetime


class FeedbackClosedV1(ContractModel):
    feedback_id: str
    closed_at: datetime
    resolution: Literal["answered", "withdrawn"]


class FeedbackEscalatedV1(ContractModel):
    feedback_id: str
    reason: Literal["acknowledge_overdue", "answer_overdue", "reminder", "referral_limit", "triage_overdue"] = Field(
        description="Which deadline passed: acknowledge or answer (negative items), triage (an item not assessed "
        "negative that no person triaged in time), a reminder at the top of the chain, or too many referrals."
    )
    from_level: int
    level: int
    level_name: str
    unit_id: str
    deadline: datetime = Field(description="The deadline whose passing caused this escalation.")
    fired_at: datetime
    repeat: int = Field(ge=0, description="0 for a level change; n for the n-th reminder at the top.")
    fencing_token: int


class FeedbackReopenedV1(ContractModel):
    """The resident contested the answer: the item is open again and routing moves it one level up."""

    feedback_id: str
    reason: Literal["contested"]
    reopened_at: datetime


class FeedbackReferredV1(ContractModel):
    """The assigned unit handed the item on; routing re-routes it and the SLA clock keeps running."""

    feedback_id: str
    from_unit_id: str
    reason: str = Field(min_length=1, max_length=500)
    suggested_unit_id: str | None = None
    referred_at: datetime


class FeedbackTriagedV1(ContractModel):
    """A person confirmed or changed an item's kind and severity; routing re-derives its deadlines and chain."""

    feedback_id: str
    decision: TriageDecision = Field(
        description="confirmed: kind and severity stand; raised / lowered: the severity moved up or down "
        "(positive and neutral count as one step below negative, critical one above it); reclassified: the kind "
        "changed, or positive and neutral were swapped. A lowering carries a written reason, kept by intake for the "
        "oversight board (GET /v1/oversight/severity-changes), never on Kafka."
    )
    kind: FeedbackKind
    severity: Severity
    negative: bool
    previous_kind: FeedbackKind
    previous_severity: Severity
    by_role: StaffRole = Field(
        description="The role under which the person triaged (a critical item can only be lowered by "
        "professional_standards or oversight). The person is named in intake's audit ledger, not here."
    )
    unit_id: str | None = Field(default=None, description="The unit responsible when the item was triaged.")
    triaged_at: datetime


DataT = TypeVar("DataT", bound=BaseModel)


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 event in structured JSON mode; extension attributes are kept."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: Annotated[str, Field(min_length=1, max_length=200)]
    source: Annotated[str, Field(min_length=1, max_length=500)]
    type: Annotated[str, Field(min_length=1, max_length=200)]
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = "application/json"
    dataschema: str | None = None
    data: DataT


@dataclass(frozen=True)
class EventSpec(Generic[DataT]):
    event_type: str
    topic: str
    data_model: type[DataT]
    summary: str


INBOUND = EventSpec(
    "org.heard.feedback.inbound.v1",
    topics.INBOUND,
    FeedbackInboundV1,
    "Feedback published by a city system into Heard.",
)
SUBMITTED = EventSpec(
    "org.heard.feedback.submitted.v1",
    topics.SUBMITTED,
    FeedbackSubmittedV1,
    "Intake stored a new feedback item and decided its severity.",
)
ROUTED = EventSpec(
    "org.heard.feedback.routed.v1",
    topics.ROUTED,
    FeedbackRoutedV1,
    "Routing assigned the feedback to a unit and started its SLA clocks.",
)
ACKNOWLEDGED = EventSpec(
    "org.heard.feedback.acknowledged.v1",
    topics.ACKNOWLEDGED,
    FeedbackAcknowledgedV1,
    "Staff acknowledged the feedback.",
)
ANSWERED = EventSpec(
    "org.heard.feedback.answered.v1", topics.ANSWERED, FeedbackAnsweredV1, "Staff published an answer to the resident."
)
CLOSED = EventSpec(
    "org.heard.feedback.closed.v1",
    topics.CLOSED,
    FeedbackClosedV1,
    "The feedback was closed after an answer or withdrawn by the resident.",
)
ESCALATED = EventSpec(
    "org.heard.feedback.escalated.v1",
    topics.ESCALATED,
    FeedbackEscalatedV1,
    "A deadline passed without the required action; responsibility moved one level up.",
)

REOPENED = EventSpec(
    "org.heard.feedback.reopened.v1",
    topics.REOPENED,
    FeedbackReopenedV1,
    "The resident contested the answer; the item reopens one level higher.",
)
REFERRED = EventSpec(
    "org.heard.feedback.referred.v1",
    topics.REFERRED,
    FeedbackReferredV1,
    "The assigned unit referred the item elsewhere with a reason.",
)

TRIAGED = EventSpec(
    "org.heard.feedback.triaged.v1",
    topics.TRIAGED,
    FeedbackTriagedV1,
    "A person confirmed or changed the item's kind and severity; routing re-derives its deadlines and chain.",
)

EVENT_SPECS: dict[str, EventSpec[Any]] = {
    spec.event_type: spec
    for spec in (INBOUND, SUBMITTED, ROUTED, ACKNOWLEDGED, ANSWERED, CLOSED, ESCALATED, REOPENED, REFERRED, TRIAGED)
}


def deterministic_event_id(*parts: object) -> str:
    """The same parts always give the same id, so retries and replicas cannot emit twice."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "|".join(str(p) for p in parts)))


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_event(
    spec: EventSpec[DataT],
    data: DataT,
    *,
    source: str,
    subject: str,
    event_id: str | None = None,
    time: datetime | None = None,
) -> CloudEvent[DataT]:
    return CloudEvent[spec.data_model](  # type: ignore[name-defined]
        specversion="1.0",
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=spec.event_type,
        subject=subject,
        time=time or utc_now(),
        datacontenttype="application/json",
        data=data,
    )


def encode(event: CloudEvent[Any]) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


class InvalidEvent(ValueError):
    """A message that can never be processed; `code` is stable, `reason` is for humans."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def _binary_mode_fields(headers: dict[str, bytes], value: bytes) -> dict[str, Any]:
    """CloudEvents Kafka binding, binary mode: attributes in `ce_` headers, data in the value."""
    fields: dict[str, Any] = {
        name[3:]: raw.decode("utf-8", errors="strict") for name, raw in headers.items() if name.startswith("ce_")
    }
    content_type = headers.get("content-type", b"application/json").decode()
    fields["datacontenttype"] = content_type
    if "json" not in content_type:
        raise InvalidEvent("unsupported_content_type", f"binary-mode data must be JSON, got {content_type!r}")
    fields["data"] = json.loads(value) if value else None
    return fields


def decode(
    value: bytes | None, headers: dict[str, bytes] | None = None, *, expected: tuple[EventSpec[Any], ...] = ()
) -> CloudEvent[Any]:
    """Parses a Kafka message value (structured or binary mode) into a validated, typed event.

    Raises `InvalidEvent` for anything that can never succeed: not JSON, not a CloudEvent,
    an unknown or unexpected type, or data that does not match the type's schema.
    """
    headers = headers or {}
    try:
        if "ce_specversion" in headers:
            fields = _binary_mode_fields(headers, value or b"")
        else:
            if not value:
                raise InvalidEvent("empty_message", "message value is empty")
            fields = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent("invalid_json", f"message is not valid UTF-8 JSON: {error}") from error
    if not isinstance(fields, dict):
        raise InvalidEvent("not_a_cloudevent", "message value is not a JSON object")
    missing = [a for a in ("specversion", "id", "source", "type") if a not in fields]
    if missing:
        raise InvalidEvent("not_a_cloudevent", f"missing CloudEvents attribute(s): {', '.join(missing)}")
    spec = EVENT_SPECS.get(str(fields["type"]))
    if spec is None or (expected and spec not in expected):
        allowed = ", ".join(s.event_type for s in expected) if expected else ", ".join(EVENT_SPECS)
        raise InvalidEvent("unknown_event_type", f"type {fields['type']!r} is not accepted here (expected {allowed})")
    try:
        return CloudEvent[spec.data_model].model_validate(fields)  # type: ignore[name-defined]
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in error.errors()[:10]
        )
        raise InvalidEvent("schema_violation", problems) from error
