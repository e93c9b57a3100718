"""Wires web together: the only place that knows which concrete pieces are used."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from heard_shared.asgi import BodySizeLimit, RequestMetrics
from heard_shared.http import ops_router
from heard_shared.logs import configure_logging, get_logger
from heard_shared.mongo import MongoResource
from heard_shared.runtime import _retry
from heard_web.areas import CityMap
from heard_web.backends import BackendError, Backends, BackendUnavailable, Transport
from heard_web.config import WebSettings
from heard_web.i18n import N_
from heard_web.oversight import build_oversight_router
from heard_web.resident import build_resident_router
from heard_web.security import SecurityHeaders
from heard_web.site import SESSION_COOKIE, FormRejected, SignInRequired, Site
from heard_web.staff import REFUSALS, build_staff_router
from heard_web.staff_sessions import SessionStore

log = get_logger(__name__)
FORM_BYTES = 64 * 1024
UPLOAD_BYTES = 2 * 1024 * 1024


def create_app(settings: WebSettings, *, transport: Transport | None = None) -> FastAPI:
    """`transport` lets unit tests answer the backend calls in-process."""
    configure_logging(service="web", level=settings.log_level, json=settings.log_json)
    registry = CollectorRegistry()
    mongo = MongoResource(settings.mongodb_uri, settings.mongodb_database or "heard_web", app_name="heard-web")
    backends = Backends(
        intake_url=settings.base(settings.intake_url),
        notify_url=settings.base(settings.notify_url),
        routing_url=settings.base(settings.routing_url),
        timeout=settings.backend_timeout_seconds,
        max_connections=settings.backend_max_connections,
        registry=registry,
        transport=transport,
    )
    sessions = SessionStore(
        mongo.db["staff_sessions"], idle_timeout=settings.session_idle_timeout, max_age=settings.session_max_age
    )
    site = Site(settings=settings, backends=backends, sessions=sessions, city=CityMap.load(settings.areas_file))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await _retry("prepare MongoDB", sessions.ensure_indexes)
        log.info("service started", intake=settings.base(settings.intake_url))
        try:
            yield
        finally:
            await backends.close()
            await mongo.close()

    app = FastAPI(
        title="Heard web", version="1.0.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.site = site
    app.include_router(build_resident_router(site))
    app.include_router(build_staff_router(site, registry))
    app.include_router(build_oversight_router(site))
    app.include_router(ops_router({"mongodb": mongo.ping}, registry))
    _install_error_pages(app, site)
    app.add_middleware(RequestMetrics, registry=registry)
    app.add_middleware(
        BodySizeLimit, max_bytes=FORM_BYTES, overrides=[("/staff/sessions/", UPLOAD_BYTES)], render=_too_large_page
    )
    app.add_middleware(SecurityHeaders, always_secure=settings.secure_cookies == "always")
    return app


def _too_large_page(_: str, status: int, code: str, message: str) -> tuple[bytes, str]:
    # Sent before any page machinery runs, so in both languages at once.
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Heard</title>"
        "<p>What you sent is too large. Please shorten it and try again.</p>"
        "<p lang=es>Lo que envió es demasiado grande. Acórtelo e inténtelo de nuevo.</p>"
    )
    return body.encode(), "text/html; charset=utf-8"


def _install_error_pages(app: FastAPI, site: Site) -> None:
    """Errors as pages a person understands, in their language; none of them shows any feedback data."""

    def error_page(request: Request, status: int, title: str, message: str = "", **params: object) -> Response:
        return site.page(site.visit(request), "error.html", status=status, title=title, message=message, params=params)

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, error: SignInRequired) -> Response:
        visit = site.visit(request)
        reason = "&reason=expired" if error.reason else ""
        response = site.redirect(visit, f"/staff/sign-in?next={quote(error.next_path, safe='')}{reason}")
        site.clear_cookie(request, response, SESSION_COOKIE)
        return response

    @app.exception_handler(FormRejected)
    async def form_rejected(request: Request, _: FormRejected) -> Response:
        return error_page(
            request,
            403,
            N_("This form could not be accepted"),
            N_(
                "The page was open too long, or the form came from another site. Go back, reload the page and "
                "try again. Heard needs cookies to be allowed for this."
            ),
        )

    @app.exception_handler(BackendError)
    async def backend_error(request: Request, error: BackendError) -> Response:
        if isinstance(error, BackendUnavailable):
            log.warning("backend unavailable", service=error.service, code=error.code, path=request.url.path)
            response = error_page(
                request,
                503,
                N_("Heard is busy right now"),
                N_("Nothing was lost. Please try again in a moment."),
            )
            response.headers["retry-after"] = str(error.retry_after or 5)
            return response
        if error.status == 401 and request.url.path.startswith(("/staff", "/oversight")):
            visit = site.visit(request)
            if visit.staff is not None:  # the token was revoked: the session ends with it
                await site.sessions.end(visit.staff.key)
            return await sign_in_required(request, SignInRequired(visit.path, reason="expired"))
        if error.status == 403:
            return error_page(
                request, 403, N_("You do not have access to this page"), REFUSALS.get(error.code, REFUSALS["forbidden"])
            )
        if error.status == 404:
            return error_page(
                request, 404, N_("Not found"), N_("There is nothing at this address. It may have been mistyped.")
            )
        if error.status == 429:
            return error_page(
                request,
                429,
                N_("Too many requests"),
                N_("Too many requests from your connection. Wait %(seconds)s seconds, then try again."),
                seconds=error.retry_after or 30,
            )
        log.warning("backend refused", service=error.service, status=error.status, code=error.code)
        return error_page(
            request, 400, N_("This was not accepted"), N_("This was not accepted: %(reason)s"), reason=error.message
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            return error_page(
                request, 404, N_("Page not found"), N_("There is nothing at this address. It may have been mistyped.")
            )
        return error_page(request, error.status_code, N_("This was not accepted"), str(error.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unhandled error", path=request.url.path)
        return error_page(
            request, 500, N_("Something went wrong on our side"), N_("Nothing was lost. Please try again in a moment.")
        )
