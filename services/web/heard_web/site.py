"""What every page shares: the visitor's language and CSRF token, the signed-in staff member, templates, static
files, and the responses (pages, redirects, errors) with the right cookies.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData

from heard_web import presenters
from heard_web.areas import MAP_HEIGHT, MAP_WIDTH, CityMap
from heard_web.backends import Backends
from heard_web.config import WebSettings
from heard_web.forms import FieldError
from heard_web.i18n import LANGUAGE_COOKIE, LANGUAGE_NAMES, LOCALES, Formats, load_translations, negotiate
from heard_web.security import CSRF_FIELD, CookiePolicy, cross_site, new_csrf_token, same_token
from heard_web.staff_sessions import SessionStore, StaffSession

STATIC_DIR = Path(__file__).with_name("static")
SESSION_COOKIE = "heard_session"
CSRF_COOKIE = "heard_csrf"
LANGUAGE_MAX_AGE = 365 * 24 * 3600


class SignInRequired(Exception):
    """No live staff session: the visitor is sent to the sign-in page, then back to `next_path`."""

    def __init__(self, next_path: str, *, reason: str = "") -> None:
        super().__init__(reason or "sign-in required")
        self.next_path = next_path
        self.reason = reason


class FormRejected(Exception):
    """A POST without the right CSRF token, or sent from another site."""


@dataclass
class Visit:
    """One request as the pages see it."""

    request: Request
    locale: str
    csrf_token: str
    new_csrf: bool
    formats: Formats
    gettext: Callable[[str], str]
    staff: StaffSession | None = None

    @property
    def path(self) -> str:
        query = self.request.url.query
        return self.request.url.path + (f"?{query}" if query else "")


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    version: str


class Site:
    def __init__(self, *, settings: WebSettings, backends: Backends, sessions: SessionStore, city: CityMap) -> None:
        self.settings = settings
        self.backends = backends
        self.sessions = sessions
        self.city = city
        self.cookies = CookiePolicy(settings.secure_cookies)
        self.translations = load_translations()
        self.environments = {locale: self._environment(locale) for locale in LOCALES}
        # Built once: looking a locale up in Babel's data on every request costs about a millisecond.
        self.formats = {locale: Formats(locale, settings.timezone) for locale in LOCALES}
        self.static = {
            path.name: StaticFile(
                body=path.read_bytes(),
                media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                version=hashlib.sha256(path.read_bytes()).hexdigest()[:12],
            )
            for path in sorted(STATIC_DIR.iterdir())
            if path.is_file()
        }

    def _environment(self, locale: str) -> Environment:
        environment = Environment(
            loader=PackageLoader("heard_web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            # Templates ship inside the package and never change under a running server: no stat() per page.
            auto_reload=False,
            extensions=["jinja2.ext.i18n"],
            # Backends leave out fields that are not set; a missing one renders as nothing.
            undefined=ChainableUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        environment.install_gettext_translations(self.translations[locale], newstyle=True)  # type: ignore[attr-defined]
        environment.filters["options"] = lambda values: [(value, value) for value in values]
        environment.globals.update(
            static=self.static_url,
            languages=LANGUAGE_NAMES,
            city_name=self.settings.city_name,
            transparency_url=self.settings.transparency_url,
            kinds=presenters.KINDS,
            statuses=presenters.STATUSES,
            severities=presenters.SEVERITIES,
            allegations=presenters.allegation_choices(locale),
            triage_states=presenters.TRIAGE_STATES,
            delivery_statuses=presenters.DELIVERY_STATUSES,
            delivery_channels=presenters.DELIVERY_CHANNELS,
            delivery_audiences=presenters.DELIVERY_AUDIENCES,
            neighbourhoods=self.settings.neighbourhoods,
            map_width=MAP_WIDTH,
            map_height=MAP_HEIGHT,
            csrf_field=CSRF_FIELD,
        )
        return environment

    def static_url(self, name: str) -> str:
        return f"/static/{name}?v={self.static[name].version}"

    # -- the visitor -------------------------------------------------------------------------------------------

    def visit(self, request: Request) -> Visit:
        cached: Visit | None = getattr(request.state, "visit", None)
        if cached is not None:
            return cached
        locale = negotiate(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))
        token = request.cookies.get(self.cookies.name(request, CSRF_COOKIE))
        visit = Visit(
            request=request,
            locale=locale,
            csrf_token=token or new_csrf_token(),
            new_csrf=not token,
            formats=self.formats[locale],
            gettext=self.translations[locale].gettext,
        )
        request.state.visit = visit
        return visit

    async def staff_visit(self, request: Request) -> Visit:
        """The visit of a signed-in staff member; otherwise `SignInRequired` (sent to the sign-in page)."""
        visit = self.visit(request)
        secret = request.cookies.get(self.cookies.name(request, SESSION_COOKIE))
        staff = await self.sessions.load(secret) if secret else None
        if staff is None:
            raise SignInRequired(visit.path, reason="expired" if secret else "")
        visit.staff = staff
        return visit

    async def form(self, request: Request) -> FormData:
        """The posted form, once its CSRF token and origin are checked."""
        visit = self.visit(request)
        form = await request.form(max_files=1, max_fields=100)
        if visit.new_csrf or cross_site(request) or not same_token(visit.csrf_token, _text(form.get(CSRF_FIELD))):
            raise FormRejected()
        return form

    # -- responses ---------------------------------------------------------------------------------------------

    def page(self, visit: Visit, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        return self.html(visit, self.render(visit, template, **context), status=status)

    def render(self, visit: Visit, template: str, **context: Any) -> str:
        environment = self.environments[visit.locale]
        errors: list[FieldError] = list(context.pop("errors", []))
        context.setdefault("flash", None)
        context.setdefault("page_path", visit.path)  # where switching language returns to
        return environment.get_template(template).render(
            visit=visit,
            locale=visit.locale,
            staff=visit.staff,
            csrf_token=visit.csrf_token,
            fmt=visit.formats,
            errors=errors,
            error_for={error.field: error for error in reversed(errors)},
            **context,
        )

    def html(self, visit: Visit, html: str, *, status: int = 200) -> HTMLResponse:
        response = HTMLResponse(html, status_code=status)
        self._set_cookies(visit, response)
        return response

    def redirect(self, visit: Visit, location: str) -> RedirectResponse:
        response = RedirectResponse(location, status_code=303)
        self._set_cookies(visit, response)
        return response

    def _set_cookies(self, visit: Visit, response: Response) -> None:
        if visit.new_csrf:
            self.set_cookie(visit.request, response, CSRF_COOKIE, visit.csrf_token)

    def set_cookie(
        self, request: Request, response: Response, base: str, value: str, *, max_age: int | None = None
    ) -> None:
        response.set_cookie(
            self.cookies.name(request, base),
            value,
            max_age=max_age,
            path="/",
            secure=self.cookies.secure(request),
            httponly=True,
            samesite="lax",
        )

    def clear_cookie(self, request: Request, response: Response, base: str) -> None:
        response.delete_cookie(
            self.cookies.name(request, base), path="/", secure=self.cookies.secure(request), httponly=True
        )

    def remember_language(self, request: Request, response: Response, locale: str) -> None:
        self.set_cookie(request, response, LANGUAGE_COOKIE, locale, max_age=LANGUAGE_MAX_AGE)

    def static_response(self, name: str) -> Response:
        found = self.static.get(name)
        if found is None:
            return Response(status_code=404)
        return Response(
            found.body,
            media_type=found.media_type,
            headers={"cache-control": "public, max-age=31536000, immutable"},
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def flash(done: str | None, messages: Mapping[str, str]) -> str | None:
    """The message for a `?done=` after a redirect, from a fixed list (nothing from the address is echoed)."""
    return messages.get(done or "")
