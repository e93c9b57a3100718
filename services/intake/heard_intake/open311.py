"""Open311 GeoReport v2 under /open311/v2: how other city systems submit feedback over HTTP and read status back.

Follows the GeoReport v2 specification (JSON format): `services.json`, `services/{code}.json`,
`requests.json` (GET with the spec's filters; POST form-encoded with a city system's `api_key`) and
`requests/{id}.json`. Errors use the spec's shape, `[{"code": 400, "description": "..."}]`.

Reading is public, as the spec intends, and so shows only what Heard publishes anyway: service,
status, dates and responsible unit. The resident's words, the answer text, the street address and
exact coordinates are shown only to a caller with a city system's `api_key`; anonymous callers get
coordinates rounded to about 100 m and the neighbourhood instead of an address.

No `from __future__ import annotations` here: FastAPI resolves the form model in annotations at runtime.
"""

import json
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymongo.asynchronous.collection import AsyncCollection
from starlette.exceptions import HTTPException as StarletteHTTPException

from heard_intake import domain, severity
from heard_intake.auth import Principal, TokenStore
from heard_intake.service import IntakeService
from heard_shared.allegations import ALLEGATIONS, AllegationCategory
from heard_shared.asgi import json_error
from heard_shared.events import Contact, FeedbackInboundV1, FeedbackKind, Location, utc_now
from heard_shared.http import ApiError
from heard_shared.mongo import Document

PREFIX = "/open311/v2"
CITY_SYSTEM_ROLE = "city_system"
# Heard's own lifecycle is richer; Open311 knows only open and closed. Everything not finished is open,
# including answered items (they may still be contested) and any status added later.
CLOSED_STATUSES = domain.FINAL_STATUSES
PUBLIC_COORDINATE_DECIMALS = 3  # ~110 m: shows the area, not the house
MAX_IDS_PER_QUERY = 100
EMERGENCY_NOTICE = (
    "Heard is not for emergencies. In an emergency call 911. / Heard no es para emergencias: llame al 911."
)

# -- services (what the department takes feedback about) ---------------------------------------------


class Open311Service(BaseModel):
    """One entry of the configurable service list; `kind` and `category` say how Heard files it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_code: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    service_name: Annotated[str, Field(min_length=1, max_length=120)]
    description: Annotated[str, Field(max_length=1000)] = ""
    group: Annotated[str, Field(max_length=120)] = ""
    keywords: list[Annotated[str, Field(max_length=60)]] = Field(default_factory=list)
    kind: FeedbackKind
    category: Annotated[str, Field(max_length=80)] | None = None
    # Offers the `allegations` attribute (metadata=true): the caller may declare misconduct, which makes it critical.
    allegations: bool = True

    def as_open311(self) -> dict[str, Any]:
        return {
            "service_code": self.service_code,
            "service_name": self.service_name,
            "description": self.description,
            "metadata": self.allegations,
            "type": "realtime",
            "keywords": ", ".join(self.keywords),
            "group": self.group,
        }

    def attributes(self) -> list[dict[str, Any]]:
        return [ALLEGATIONS_ATTRIBUTE] if self.allegations else []


# GeoReport v2 service definition attribute: a multivaluelist whose keys are Heard's allegation codes.
ALLEGATIONS_ATTRIBUTE: dict[str, Any] = {
    "variable": True,
    "code": "allegations",
    "datatype": "multivaluelist",
    "required": False,
    "datatype_description": "Any of the keys, each as attribute[allegations][]=KEY. Declaring any makes the "
    "request critical: it goes straight to professional standards and the civilian oversight board is told. "
    "Spanish labels: GET /v1/allegation-categories.",
    "order": 1,
    "description": "Did an officer do any of the following? Choose all that apply.",
    "values": [{"key": allegation.code, "name": allegation.label_en} for allegation in ALLEGATIONS],
}


DEFAULT_SERVICES: tuple[Open311Service, ...] = (
    Open311Service(
        service_code="officer-conduct",
        service_name="Complaint about an officer's conduct",
        description="Rudeness, use of force, discrimination, harassment or other misconduct by an officer.",
        group="Complaints",
        keywords=["police", "officer", "conduct", "misconduct", "complaint"],
        kind="complaint",
        category="conduct",
    ),
    Open311Service(
        service_code="police-service-complaint",
        service_name="Complaint about police service",
        description="A complaint about how the department handled a call, a report or a case.",
        group="Complaints",
        keywords=["police", "service", "complaint"],
        kind="complaint",
    ),
    Open311Service(
        service_code="response-time",
        service_name="Slow or missing police response",
        description="Nobody came, or help came too late.",
        group="Concerns",
        keywords=["police", "response", "wait"],
        kind="concern",
        category="response_time",
    ),
    Open311Service(
        service_code="traffic-enforcement",
        service_name="Traffic and parking enforcement",
        description="Speeding, parking and traffic enforcement, including police vehicles.",
        group="Concerns",
        keywords=["traffic", "parking", "speeding"],
        kind="concern",
        category="traffic",
    ),
    Open311Service(
        service_code="community-concern",
        service_name="Community safety concern",
        description="A safety concern in the neighbourhood the department should know about.",
        group="Concerns",
        keywords=["safety", "neighbourhood", "concern"],
        kind="concern",
    ),
    Open311Service(
        service_code="officer-praise",
        service_name="Praise for an officer or unit",
        description="Thank an officer or a unit for good work.",
        group="Praise and ideas",
        keywords=["praise", "thanks", "officer"],
        kind="praise",
        allegations=False,
    ),
    Open311Service(
        service_code="suggestion",
        service_name="Suggestion to the department",
        description="An idea for how the department could serve the community better.",
        group="Praise and ideas",
        keywords=["idea", "suggestion"],
        kind="suggestion",
    ),
    Open311Service(
        service_code="question",
        service_name="Question to the department",
        description="A question about policing in the city.",
        group="Praise and ideas",
        keywords=["question"],
        kind="question",
    ),
)


class ServiceCatalog:
    """Maps service codes to Heard's kind/category and back, for every channel's feedback."""

    def __init__(self, services: Sequence[Open311Service]) -> None:
        codes = [s.service_code for s in services]
        if not services or len(set(codes)) != len(codes):
            raise ValueError("the Open311 service list must be non-empty with unique service codes")
        self.services = tuple(services)
        self.by_code = {s.service_code: s for s in services}

    def service_for(self, kind: str, category: str | None) -> Open311Service | None:
        """Exact kind + category first, then the kind's catch-all (a service without category)."""
        exact = next((s for s in self.services if s.kind == kind and s.category == category), None)
        return exact or next((s for s in self.services if s.kind == kind and s.category is None), None)

    def query_for(self, code: str) -> Document:
        """The MongoDB filter selecting exactly the feedback `service_for` files under `code`."""
        service = self.by_code[code]
        if service.category is not None:
            return {"kind": service.kind, "category": service.category}
        claimed = [s.category for s in self.services if s.kind == service.kind and s.category is not None]
        return {"kind": service.kind, "category": {"$nin": claimed}}


def load_catalog(path: str) -> ServiceCatalog:
    """The built-in list, or a YAML/JSON file holding a list (or `{services: [...]}`) of services."""
    if not path:
        return ServiceCatalog(DEFAULT_SERVICES)
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    entries = raw.get("services") if isinstance(raw, dict) else raw
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of services")
    return ServiceCatalog([Open311Service.model_validate(entry) for entry in entries])


# -- wire models (documented in the OpenAPI document) ----------------------------------------------


class Open311Error(BaseModel):
    code: int
    description: str


class ServiceOut(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str
    group: str


class AttributeValueOut(BaseModel):
    key: str
    name: str


class ServiceAttributeOut(BaseModel):
    variable: bool
    code: str
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
    required: bool
    datatype_description: str | None
    order: int
    description: str
    values: list[AttributeValueOut] = Field(default_factory=list)


class ServiceDefinitionOut(BaseModel):
    service_code: str
    attributes: list[ServiceAttributeOut]


class ServiceRequestCreatedOut(BaseModel):
    service_request_id: str
    service_notice: str
    account_id: str | None = None


class ServiceRequestOut(BaseModel):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str | None = None
    service_name: str | None = None
    service_code: str | None = None
    description: str | None = None
    agency_responsible: str | None = None
    service_notice: str | None = None
    requested_datetime: datetime
    updated_datetime: datetime | None = None
    expected_datetime: datetime | None = None
    address: str | None = None
    lat: float | None = None
    long: float | None = None
    media_url: str | None = None


Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Short = Annotated[str, Field(max_length=200)]


class ServiceRequestForm(BaseModel):
    """POST requests.json, form-encoded as the spec says. Unknown fields are refused, not dropped."""

    model_config = ConfigDict(extra="forbid")

    api_key: Annotated[str, Field(max_length=200)] | None = None
    jurisdiction_id: Short | None = None
    service_code: Annotated[str, Field(min_length=1, max_length=64)]
    description: Annotated[str, Field(min_length=1, max_length=5000)]
    lat: Latitude | None = None
    long: Longitude | None = None
    address_string: Annotated[str, Field(max_length=300)] | None = None
    address_id: Short | None = None
    email: Annotated[str, Field(max_length=254)] | None = None
    first_name: Annotated[str, Field(max_length=100)] | None = None
    last_name: Annotated[str, Field(max_length=100)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    # Accepted because the spec defines them, deliberately not stored: Heard keeps no device or
    # account identifiers of residents, and does not host media.
    device_id: Short | None = None
    account_id: Short | None = None
    media_url: Annotated[str, Field(max_length=2000)] | None = None
    # The service definition's attribute, as the spec encodes a multivaluelist (attribute[code][]=key, repeated);
    # `attribute[allegations]=key` is taken too, for clients that send single values that way.
    allegations: list[AllegationCategory] | None = Field(default=None, alias="attribute[allegations][]")
    allegation: list[AllegationCategory] | None = Field(default=None, alias="attribute[allegations]")

    def declared_allegations(self) -> list[AllegationCategory]:
        return [*(self.allegations or []), *(self.allegation or [])]


# -- errors in the spec's format ----------------------------------------------------------------------


def error_response(status: int, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse([{"code": status, "description": description}], status, headers=headers)


def render_error(path: str, status: int, code: str, message: str) -> tuple[bytes, str]:
    """For the ASGI guards (body size, rate limit): Open311 paths get the spec's error format."""
    if path.startswith(PREFIX):
        return json.dumps([{"code": status, "description": message}]).encode(), "application/json"
    return json_error(path, status, code, message)


def _describe_validation(errors: Sequence[Any]) -> str:
    problems = []
    for error in list(errors)[:10]:
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        problems.append(f"{'.'.join(location) or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(problems)


class Open311Route(APIRoute):
    """Every error on an Open311 route leaves in the spec's format, whatever raised it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as invalid:
                return error_response(400, _describe_validation(invalid.errors()))
            except ApiError as error:
                return error_response(error.status, error.message, error.headers or None)
            except StarletteHTTPException as error:
                return error_response(error.status_code, str(error.detail), dict(error.headers or {}) or None)

        return route


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": list[Open311Error], "description": "Invalid request"},
    403: {"model": list[Open311Error], "description": "Missing or invalid api_key"},
    404: {"model": list[Open311Error], "description": "Unknown service, request or jurisdiction"},
    413: {"model": list[Open311Error], "description": "Request body too large"},
    429: {"model": list[Open311Error], "description": "Too many requests; see Retry-After"},
}


# -- reading and writing service requests --------------------------------------------------------------


# Only what `to_open311` reads: contact data and internal fields are never even loaded.
_PROJECTION: Document = {
    name: 1
    for name in (
        "status",
        "kind",
        "category",
        "text",
        "location",
        "answer",
        "submitted_at",
        "updated_at",
        "answer_by",
        "unit_id",
        "routed_unit",
    )
}


# Dates outside this window cannot match any feedback, and near datetime's limits (year 1 or 9999 with
# an offset) shifting to UTC or adding the default span would overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _parse_datetime(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(400, "invalid_date", f"{name} must be a W3C datetime, e.g. 2010-01-01T00:00:00Z") from None
    return min(max(parsed, EARLIEST), LATEST)


def _comma_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Open311Gateway:
    """Translates between Open311 service requests and Heard's feedback records."""

    def __init__(
        self,
        *,
        service: IntakeService,
        feedback: AsyncCollection[Document],
        tokens: TokenStore,
        catalog: ServiceCatalog,
        agency_name: str,
        public_base_url: str,
        jurisdiction_id: str = "",
        max_requests: int = 1000,
        default_days: int = 90,
    ) -> None:
        self.service = service
        self.feedback = feedback
        self.tokens = tokens
        self.catalog = catalog
        self.agency_name = agency_name
        self.public_base_url = public_base_url.rstrip("/")
        self.jurisdiction_id = jurisdiction_id
        self.max_requests = max_requests
        self.default_days = default_days

    def check_jurisdiction(self, jurisdiction_id: str | None) -> None:
        if jurisdiction_id and self.jurisdiction_id and jurisdiction_id != self.jurisdiction_id:
            raise ApiError(404, "unknown_jurisdiction", f"This endpoint serves jurisdiction {self.jurisdiction_id!r}.")

    async def city_system(self, api_key: str | None, *, required: bool) -> Principal | None:
        if not api_key:
            if required:
                raise ApiError(403, "api_key_required", "api_key is required: a city system's token.")
            return None
        try:
            principal = await self.tokens.authenticate(f"Bearer {api_key}")
        except ApiError:
            raise ApiError(403, "invalid_api_key", "api_key is unknown or has been revoked.") from None
        if CITY_SYSTEM_ROLE not in principal.roles:
            raise ApiError(403, "forbidden", "api_key does not belong to a city system.")
        return principal

    def service_or_404(self, code: str) -> Open311Service:
        service = self.catalog.by_code.get(code)
        if service is None:
            raise ApiError(404, "unknown_service", f"No service with service_code {code!r}.")
        return service

    async def create(self, form: ServiceRequestForm) -> ServiceRequestCreatedOut:
        principal = await self.city_system(form.api_key, required=True)
        assert principal is not None
        self.check_jurisdiction(form.jurisdiction_id)
        service = self.catalog.by_code.get(form.service_code)
        if service is None:
            raise ApiError(400, "unknown_service", f"service_code {form.service_code!r} is not in services.json.")
        if (form.lat is None) != (form.long is None):
            raise ApiError(400, "invalid_location", "lat and long must be given together.")
        if form.declared_allegations() and not service.allegations:
            raise ApiError(
                400, "unknown_attribute", f"service {service.service_code!r} has no attribute 'allegations'."
            )
        try:
            data = self._inbound(form, service)
        except ValidationError as invalid:
            raise ApiError(400, "invalid_request", _describe_validation(invalid.errors())) from None
        submission = await self.service.submit(
            data=data, channel="open311", extra_fields={"submitted_by": principal.name}
        )
        notice = EMERGENCY_NOTICE
        if submission.tracking_code:
            # The 311 operator can read this to the resident: it lets them follow, reply to and contest the answer.
            notice = (
                f"Tracking code {submission.tracking_code}; status and answer at "
                f"{self.public_base_url}/v1/feedback/{submission.tracking_code}. {notice}"
            )
        if form.media_url:
            notice += " Heard does not store attached media; please describe it in the text."
        return ServiceRequestCreatedOut(service_request_id=submission.feedback_id, service_notice=notice)

    def _inbound(self, form: ServiceRequestForm, service: Open311Service) -> FeedbackInboundV1:
        name = " ".join(part.strip() for part in (form.first_name, form.last_name) if part and part.strip())
        contact = None
        if name or form.email or form.phone:
            # Giving contact details to 311 with a request is asking to be told about that request.
            contact = Contact(name=name or None, email=form.email, phone=form.phone, consent_to_contact=True)
        location = None
        address = form.address_string or (f"address_id {form.address_id}" if form.address_id else None)
        if form.lat is not None or address:
            location = Location(latitude=form.lat, longitude=form.long, address=address)
        return FeedbackInboundV1(
            kind=service.kind,
            category=service.category,
            text=form.description,
            # Open311 has no language field; a Spanish text is recognised rather than assessed as English.
            language=severity.detect_language(form.description, "en"),
            location=location,
            contact=contact,
            allegations=form.declared_allegations() or None,
        )

    async def search(
        self,
        *,
        ids: str | None,
        service_codes: str | None,
        start_date: str | None,
        end_date: str | None,
        statuses: str | None,
        detailed: bool,
    ) -> list[ServiceRequestOut]:
        requested_ids = _comma_list(ids)
        query: Document
        if requested_ids:
            # The spec: service_request_id overrides every other filter.
            if len(requested_ids) > MAX_IDS_PER_QUERY or any(len(i) > 100 for i in requested_ids):
                raise ApiError(400, "too_many_ids", f"At most {MAX_IDS_PER_QUERY} service_request_id values.")
            query = {"_id": {"$in": requested_ids}}
        else:
            query = self._range_query(start_date, end_date)
            codes = _comma_list(service_codes)
            unknown = [c for c in codes if c not in self.catalog.by_code]
            if unknown:
                raise ApiError(400, "unknown_service", f"Unknown service_code: {', '.join(unknown)}.")
            if codes:
                query["$or"] = [self.catalog.query_for(code) for code in codes]
            wanted = set(_comma_list(statuses))
            if wanted - {"open", "closed"}:
                raise ApiError(400, "invalid_status", "status must be open, closed or both (comma separated).")
            if wanted == {"open"}:
                query["status"] = {"$nin": sorted(CLOSED_STATUSES)}
            elif wanted == {"closed"}:
                query["status"] = {"$in": sorted(CLOSED_STATUSES)}
        cursor = self.feedback.find(query, _PROJECTION).sort("submitted_at", -1).limit(self.max_requests)
        return [self.to_open311(document, detailed=detailed) async for document in cursor]

    def _range_query(self, start_date: str | None, end_date: str | None) -> Document:
        span = timedelta(days=self.default_days)
        start = _parse_datetime("start_date", start_date) if start_date else None
        end = _parse_datetime("end_date", end_date) if end_date else None
        if start is None and end is None:
            end = utc_now()
        if start is None:
            assert end is not None
            start = end - span
        if end is None:
            end = start + span
        if start > end:
            raise ApiError(400, "invalid_date_range", "start_date must not be after end_date.")
        if end - start > span:
            raise ApiError(
                400, "invalid_date_range", f"The date range may not span more than {self.default_days} days."
            )
        return {"submitted_at": {"$gte": start, "$lte": end}}

    async def one(self, service_request_id: str, *, detailed: bool) -> ServiceRequestOut:
        document = await self.feedback.find_one({"_id": service_request_id}, _PROJECTION)
        if document is None:
            raise ApiError(404, "unknown_request", f"No service request {service_request_id!r}.")
        return self.to_open311(document, detailed=detailed)

    def to_open311(self, document: Document, *, detailed: bool) -> ServiceRequestOut:
        status = str(document.get("status", "submitted"))
        service = self.catalog.service_for(str(document.get("kind")), document.get("category"))
        location: Document = document.get("location") or {}
        answer: Document | None = document.get("answer")
        lat, long = location.get("latitude"), location.get("longitude")
        if detailed:
            address = location.get("address") or location.get("neighbourhood")
        else:
            address = location.get("neighbourhood")
            lat = round(lat, PUBLIC_COORDINATE_DECIMALS) if isinstance(lat, float) else lat
            long = round(long, PUBLIC_COORDINATE_DECIMALS) if isinstance(long, float) else long
        notes = _status_note(status)
        if detailed and answer and domain.has_published_answer(answer):
            notes = domain.redact(str(answer.get("text", "")))
        return ServiceRequestOut(
            service_request_id=str(document["_id"]),
            status="closed" if status in CLOSED_STATUSES else "open",
            status_notes=notes,
            service_name=service.service_name if service else None,
            service_code=service.service_code if service else None,
            description=domain.redact(str(document.get("text", ""))) if detailed else None,
            agency_responsible=self._agency(document),
            service_notice=None,
            requested_datetime=document["submitted_at"],
            updated_datetime=document.get("updated_at"),
            expected_datetime=None if status in CLOSED_STATUSES else document.get("answer_by"),
            address=address,
            lat=lat,
            long=long,
            media_url=None,
        )

    def _agency(self, document: Document) -> str:
        unit_id = document.get("unit_id")
        if not unit_id:
            return self.agency_name
        # Routing's name for the unit, if intake recorded it for the unit now responsible (an
        # escalation moves responsibility to a unit whose name the escalation event does not carry).
        routed: Document = document.get("routed_unit") or {}
        unit_name = routed.get("name") if routed.get("id") == unit_id else None
        return f"{self.agency_name}: {unit_name or unit_id}"


def _status_note(status: str) -> str:
    return {
        "submitted": "Received; being assigned to the responsible unit.",
        "routed": "Assigned to the responsible unit.",
        "acknowledged": "Acknowledged by the responsible unit.",
        "escalated": "Past its deadline: escalated up the chain of responsibility.",
        "answered": "Answered.",
        "closed": "Answered and closed.",
        "withdrawn": "Withdrawn by the resident.",
        "reopened": "Reopened: the resident contested the answer; a higher level will answer.",
        "referred": "Referred to another unit.",
    }.get(status, f"In progress ({status}).")


# -- the router ----------------------------------------------------------------------------------------


def build_open311_router(gateway: Open311Gateway) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["open311"], route_class=Open311Route, responses=ERROR_RESPONSES)

    @router.get("/services.json", response_model=list[ServiceOut], summary="The services Heard takes feedback on")
    async def services(jurisdiction_id: Annotated[str | None, Query(max_length=200)] = None) -> list[dict[str, Any]]:
        gateway.check_jurisdiction(jurisdiction_id)
        return [service.as_open311() for service in gateway.catalog.services]

    @router.get(
        "/services/{service_code}.json",
        response_model=ServiceDefinitionOut,
        summary="Service definition: the optional `allegations` attribute of services with metadata=true",
    )
    async def service_definition(
        service_code: str, jurisdiction_id: Annotated[str | None, Query(max_length=200)] = None
    ) -> ServiceDefinitionOut:
        gateway.check_jurisdiction(jurisdiction_id)
        service = gateway.service_or_404(service_code)
        return ServiceDefinitionOut.model_validate(
            {"service_code": service.service_code, "attributes": service.attributes()}
        )

    @router.post(
        "/requests.json",
        response_model=list[ServiceRequestCreatedOut],
        summary="Submit a service request (form-encoded, with a city system's api_key)",
    )
    async def create_request(form: Annotated[ServiceRequestForm, Form()]) -> list[ServiceRequestCreatedOut]:
        return [await gateway.create(form)]

    @router.get(
        "/requests.json",
        response_model=list[ServiceRequestOut],
        summary="Service requests, newest first (default: the last 90 days, at most 1000)",
    )
    async def list_requests(
        service_request_id: Annotated[str | None, Query(max_length=10_000)] = None,
        service_code: Annotated[str | None, Query(max_length=2000)] = None,
        start_date: Annotated[str | None, Query(max_length=64)] = None,
        end_date: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[str | None, Query(max_length=64)] = None,
        jurisdiction_id: Annotated[str | None, Query(max_length=200)] = None,
        api_key: Annotated[str | None, Query(max_length=200)] = None,
    ) -> list[ServiceRequestOut]:
        gateway.check_jurisdiction(jurisdiction_id)
        principal = await gateway.city_system(api_key, required=False)
        return await gateway.search(
            ids=service_request_id,
            service_codes=service_code,
            start_date=start_date,
            end_date=end_date,
            statuses=status,
            detailed=principal is not None,
        )

    @router.get(
        "/requests/{service_request_id}.json",
        response_model=list[ServiceRequestOut],
        summary="One service request (a list of one, as the spec says)",
    )
    async def get_request(
        service_request_id: str,
        jurisdiction_id: Annotated[str | None, Query(max_length=200)] = None,
        api_key: Annotated[str | None, Query(max_length=200)] = None,
    ) -> list[ServiceRequestOut]:
        gateway.check_jurisdiction(jurisdiction_id)
        principal = await gateway.city_system(api_key, required=False)
        return [await gateway.one(service_request_id, detailed=principal is not None)]

    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def unknown(rest: str) -> Response:
        hint = " Only the JSON format is served (.json)." if rest.endswith(".xml") else ""
        return error_response(404, f"No Open311 endpoint or method at {PREFIX}/{rest}.{hint}")

    return router
