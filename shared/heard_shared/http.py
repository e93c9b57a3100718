"""HTTP pieces every service serves: `/healthz`, `/readyz`, `/metrics`, and clear JSON errors."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from heard_shared.logs import get_logger

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]

# The Idempotency-Key header a client may send with a submission: a random value it makes once per feedback (a UUID,
# or 22 to 128 URL-safe characters). Sent again with the same request, it returns the first answer.
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{22,128}$")


class ApiError(Exception):
    """An error the caller can act on: a stable `code`, a human `message`, an HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, *, details: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "temporarily_unavailable",
}
# A database or broker that is briefly unreachable or overloaded: the caller may simply try again.
_TEMPORARY_FAILURES: tuple[type[Exception], ...] = (ConnectionFailure, ExecutionTimeout, WTimeoutError, KafkaError)
# MongoDB-wire servers answer a write they cannot take right now with these codes (some SQLite-backed servers
# report a locked database as "database busy" without a code of its own, so the message is checked too).
_RETRYABLE_CODES = frozenset({91, 189, 262, 11600, 11602, 10107, 13435, 13436})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error_body(error.code, error.message, error.details), error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in error.errors()[:20]]
        return JSONResponse(error_body("invalid_request", "The request does not match the schema.", details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(error.status_code, "http_error")
        return JSONResponse(error_body(code, str(error.detail)), error.status_code, headers=error.headers)

    @app.exception_handler(PyMongoError)
    async def database_error(request: Request, error: PyMongoError) -> JSONResponse:
        if _is_temporary(error):
            return temporarily_unavailable(request, error)
        return await unexpected(request, error)

    @app.exception_handler(KafkaError)
    async def broker_error(request: Request, error: KafkaError) -> JSONResponse:
        return temporarily_unavailable(request, error)

    def temporarily_unavailable(request: Request, error: Exception) -> JSONResponse:
        log.warning("temporarily unavailable", path=request.url.path, error=repr(error))
        return JSONResponse(
            error_body("temporarily_unavailable", "A service Heard depends on is busy or unreachable; retry shortly."),
            503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return JSONResponse(error_body("internal_error", "Something went wrong on our side; nothing was lost."), 500)


def _is_temporary(error: PyMongoError) -> bool:
    if isinstance(error, _TEMPORARY_FAILURES) or error.has_error_label("RetryableWriteError"):
        return True
    code = getattr(error, "code", None)
    return code in _RETRYABLE_CODES or "database is locked" in str(error) or "database busy" in str(error)


def ops_router(checks: Mapping[str, ReadinessCheck], registry: CollectorRegistry) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Kafka and MongoDB are reachable")
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        ready = all(results.values())
        body = {
            "status": "ready" if ready else "not_ready",
            "checks": {k: "ok" if v else "failing" for k, v in results.items()},
        }
        return JSONResponse(body, 200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
