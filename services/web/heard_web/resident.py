"""The resident site: submit, confirmation, tracking with reply/contest/withdraw/erasure, public sessions.

Every page works without JavaScript. Each resident action asks for confirmation on a page of its own before it
calls intake, and every form answers with a redirect, so reloading never sends anything twice. The submit form is
the exception: it answers with the confirmation page itself (one request less on the busiest path), and carries
an idempotency key made with the form, so sending it again (reload, back and send, a double click) gets the same
item and tracking code back from intake.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from heard_shared.http import IDEMPOTENCY_KEY
from heard_shared.logs import get_logger
from heard_web import forms, presenters
from heard_web.backends import BackendError, BackendUnavailable
from heard_web.forms import FieldError
from heard_web.i18n import LOCALES, N_
from heard_web.security import local_path
from heard_web.site import Site, Visit, client_ip, flash

log = get_logger(__name__)
# Tracking codes are 20 symbols in groups of five; people type them with spaces, dashes and lower case.
_CODE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z -]{8,38}[0-9A-Za-z]$")
_ISSUED_CODE = re.compile(r"^[0-9A-Z]{5}(?:-[0-9A-Z]{5}){3}$")  # upper case, dashes: safe in HTML and in URLs as is
_CODE_SLOT = "\ufffctracking-code\ufffc"  # U+FFFC, which no template contains
SUBMISSION_KEY = "submission_key"  # the form's idempotency key, sent to intake as Idempotency-Key
_SESSION_ID = re.compile(r"^[0-9a-f-]{36}$")
RESIDENT_ACTIONS = ("reply", "contest", "withdraw", "erase")
DONE = {
    "replied": N_("Your reply was added."),
    "contested": N_("You contested the answer. Your feedback is open again, one level higher."),
    "withdrawn": N_("Your feedback was withdrawn."),
    "erased": N_("Your personal details were erased. The record and its status stay."),
}
BACKEND_REFUSALS = {
    "no_answer_to_contest": N_("An answer can be contested once it has been published."),
    "already_reopened": N_("The answer is already contested; a new answer will follow."),
    "feedback_withdrawn": N_("This feedback was withdrawn; submit new feedback instead."),
    "feedback_closed": N_("This feedback is closed. Contest the answer to reopen it, or submit new feedback."),
    "already_closed": N_("This feedback is already closed."),
}


def build_resident_router(site: Site) -> APIRouter:
    router = APIRouter(tags=["resident pages"])

    @router.get("/")
    async def home(request: Request) -> Response:
        return site.page(site.visit(request), "resident/home.html")

    @router.get("/language/{locale}")
    async def language(request: Request, locale: str, next: str = "/") -> Response:
        visit = site.visit(request)
        response = site.redirect(visit, local_path(next))
        if locale in LOCALES:
            site.remember_language(request, response, locale)
        return response

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        return site.static_response(name)

    @router.get("/map.svg")
    async def city_map(lat: float | None = None, lon: float | None = None) -> Response:
        marker = (lat, lon) if lat is not None and lon is not None else None
        return Response(
            site.city.svg(marker),
            media_type="image/svg+xml",
            headers={"cache-control": "public, max-age=3600"},
        )

    # -- submitting ----------------------------------------------------------------------------------------

    def submit_page(
        visit: Visit, values: dict[str, str], *, declared: tuple[str, ...] = (), status: int = 200, **context: Any
    ) -> Response:
        area = None
        try:
            spot = (float(values.get("latitude", "")), float(values.get("longitude", "")))
            area = site.city.area_at(*spot)
        except ValueError:
            spot = None
        return site.page(
            visit,
            "resident/submit.html",
            status=status,
            values=values,
            submission_key=values.get(SUBMISSION_KEY) or new_submission_key(),
            declared=declared,
            spot=spot if area else None,
            area=area,
            **context,
        )

    @router.get("/submit")
    async def submit_form(request: Request) -> Response:
        return submit_page(site.visit(request), {})

    confirmations: dict[str, str] = {}  # by language, the confirmation page with _CODE_SLOT for its code

    def confirmation(visit: Visit, code: str) -> Response:
        """The confirmation page of a code as intake issues it: rendered once per language, the code filled in.

        It is the same page for every submission but for the code, and shown after each one: rendering it whole
        cost as much CPU as the rest of the form post. Its address is /submitted/<code> wherever it is served, so
        switching language from it keeps the code on screen.
        """
        path = f"/submitted/{code}"
        if not _ISSUED_CODE.fullmatch(code):  # typed by hand: shown as typed
            return site.page(visit, "resident/submitted.html", code=code, page_path=path)
        shell = confirmations.get(visit.locale)
        if shell is None:
            html = site.render(visit, "resident/submitted.html", code=code, page_path=path)
            shell = confirmations[visit.locale] = html.replace(code, _CODE_SLOT)
        return site.html(visit, shell.replace(_CODE_SLOT, code))

    @router.post("/submit")
    async def submit(request: Request) -> Response:
        visit = site.visit(request)
        form = await site.form(request)
        values = {key: forms.clean(value) for key, value in form.items() if isinstance(value, str)}
        declared = tuple(forms.read_allegations(form)[0])
        if "map.x" in form:  # a click on the map (an image button): place the pin, keep everything typed
            try:
                location = site.city.location_at(float(values["map.x"]), float(values["map.y"]))
            except (KeyError, ValueError):
                location = None
            if location is None:
                error = FieldError("map", N_("That place is not on the map. Click inside one of the areas."))
                return submit_page(visit, values, declared=declared, status=400, errors=[error])
            values["latitude"], values["longitude"] = str(location[0]), str(location[1])
            return submit_page(visit, values, declared=declared, placed=True)
        if "clear_map" in form:
            values["latitude"] = values["longitude"] = ""
            return submit_page(visit, values, declared=declared)
        read = forms.read_submit_form(
            form, language=visit.locale, neighbourhoods=site.settings.neighbourhoods, city=site.city
        )
        if read.body is None:
            return submit_page(visit, read.values, declared=read.allegations, status=400, errors=read.errors)
        key = values.get(SUBMISSION_KEY, "")
        if not IDEMPOTENCY_KEY.fullmatch(key):  # a form from before keys existed, or tampered with
            key = new_submission_key()
        try:
            created = await site.backends.intake.call(
                "POST", "/v1/feedback", json=read.body, client_ip=client_ip(request), idempotency_key=key
            )
        except BackendError as error:
            if isinstance(error, BackendUnavailable):  # the page says "try again"; operators need to hear of it too
                log.warning("backend unavailable", service=error.service, code=error.code, path="/submit")
            if error.code == "idempotency_key_reused":
                # This form was sent before with other contents (back, edit, send): sent again, it is new feedback.
                problem = FieldError(
                    "", N_("This form was already sent once. Check it, then send it again to give new feedback.")
                )
                return submit_page(visit, read.values, declared=read.allegations, status=409, problem=problem)
            values = {**read.values, SUBMISSION_KEY: key}  # trying again is safe: intake knows this key
            return submit_page(visit, values, declared=read.allegations, status=_status(error), problem=_problem(error))
        return confirmation(visit, str(created["tracking_code"]))

    @router.get("/submitted/{code}")
    async def submitted(request: Request, code: str) -> Response:
        visit = site.visit(request)
        if not _CODE.fullmatch(code):
            return site.page(visit, "error.html", status=404, title=N_("Page not found"))
        return confirmation(visit, code)

    @router.get("/submitted/{code}/tracking-code.txt")
    async def tracking_code_file(request: Request, code: str) -> Response:
        visit = site.visit(request)
        if not _CODE.fullmatch(code):
            return Response(status_code=404)
        lines = [
            visit.gettext(N_("Your Heard tracking code")),
            "",
            code,
            "",
            visit.gettext(N_("Follow your feedback at %(url)s")) % {"url": f"{request.base_url}track/{code}"},
            visit.gettext(N_("Not for emergencies. In an emergency call 911.")),
            "",
        ]
        return Response(
            "\n".join(lines),
            media_type="text/plain; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="heard-tracking-code.txt"'},
        )

    # -- tracking ------------------------------------------------------------------------------------------

    @router.get("/track")
    async def track_lookup(request: Request, code: str | None = None) -> Response:
        visit = site.visit(request)
        if code is None:
            return site.page(visit, "resident/track_lookup.html", value="")
        cleaned = forms.clean(code)
        if not _CODE.fullmatch(cleaned):
            error = FieldError("code", N_("A tracking code has 20 letters and digits, like 7K3QD-M2XPA-9RT4B-CHW8N."))
            return site.page(visit, "resident/track_lookup.html", status=400, value=cleaned, errors=[error])
        return site.redirect(visit, f"/track/{cleaned.replace(' ', '')}")

    async def track_page(
        request: Request, code: str, *, status: int = 200, view: dict[str, Any] | None = None, **context: Any
    ) -> Response:
        visit = site.visit(request)
        if not _CODE.fullmatch(code):
            return site.page(visit, "resident/track_lookup.html", status=404, value=code, not_found=True)
        try:
            view = view or await site.backends.intake.call("GET", f"/v1/feedback/{code}", client_ip=client_ip(request))
        except BackendError as error:
            if error.status == 404:
                return site.page(visit, "resident/track_lookup.html", status=404, value=code, not_found=True)
            raise
        units = await site.backends.unit_names()
        return site.page(
            visit,
            "resident/track.html",
            status=status,
            code=code,
            view=view,
            status_label=presenters.label(presenters.STATUSES, view.get("status"), visit.gettext),
            status_help=presenters.explanation(presenters.STATUSES, view.get("status"), visit.gettext),
            with_unit=presenters.unit_label(view.get("unit_id"), units),
            with_level=presenters.level_name(view.get("level"), visit.gettext),
            timeline=presenters.resident_timeline(view.get("history") or [], units, visit.gettext),
            actions=presenters.resident_actions(view),
            flash=flash(request.query_params.get("done"), {k: visit.gettext(v) for k, v in DONE.items()}),
            values=context.pop("values", {}),
            **context,
        )

    @router.get("/track/{code}")
    async def track(request: Request, code: str) -> Response:
        return await track_page(request, code)

    @router.post("/track/{code}/{action}")
    async def act(request: Request, code: str, action: str) -> Response:
        visit = site.visit(request)
        form = await site.form(request)
        if action not in RESIDENT_ACTIONS or not _CODE.fullmatch(code):
            return site.page(visit, "error.html", status=404, title=N_("Page not found"))
        field = {"reply": "text", "contest": "reason", "withdraw": "reason"}.get(action)
        required = {"reply": N_("Write your reply."), "contest": N_("Say why the answer is not adequate.")}.get(action)
        maximum = 2000 if action == "withdraw" else forms.TEXT_MAX
        text, error = forms.read_text(form, field, maximum=maximum, required=required) if field else ("", None)
        values = {field: text} if field else {}
        if error is not None or form.get("decision") == "edit":
            return await track_page(
                request,
                code,
                status=400 if error else 200,
                errors=[error] if error else [],
                values=values,
                focus=action,
            )
        if form.get("decision") != "confirm":
            return site.page(visit, "resident/confirm.html", code=code, action=action, field=field, text=text)
        body: dict[str, Any] | None = {
            "reply": {"text": text},
            "contest": {"reason": text},
            "withdraw": {"reason": text} if text else None,
            "erase": None,
        }[action]
        path = {"reply": "reply", "contest": "contest", "withdraw": "withdraw", "erase": "erasure"}[action]
        try:
            await site.backends.intake.call(
                "POST", f"/v1/feedback/{code}/{path}", json=body, client_ip=client_ip(request)
            )
        except BackendUnavailable:
            raise
        except BackendError as refused:
            if refused.status == 404:
                return site.page(visit, "resident/track_lookup.html", status=404, value=code, not_found=True)
            message = BACKEND_REFUSALS.get(refused.code)
            problem = FieldError("", message) if message else _problem(refused)
            return await track_page(request, code, status=_status(refused), problem=problem, values=values)
        done = {"reply": "replied", "contest": "contested", "withdraw": "withdrawn", "erase": "erased"}[action]
        return site.redirect(visit, f"/track/{code}?done={done}")

    # -- public sessions -------------------------------------------------------------------------------------

    @router.get("/sessions")
    async def sessions(request: Request) -> Response:
        visit = site.visit(request)
        listing = await site.backends.intake.call("GET", "/v1/sessions", client_ip=client_ip(request))
        return site.page(visit, "resident/sessions.html", sessions=listing.get("items") or [])

    @router.get("/sessions/{session_id}")
    async def session_summary(request: Request, session_id: str) -> Response:
        visit = site.visit(request)
        if not _SESSION_ID.fullmatch(session_id):
            return site.page(visit, "error.html", status=404, title=N_("Page not found"))
        summary = await site.backends.intake.call(
            "GET", f"/v1/sessions/{session_id}/summary", client_ip=client_ip(request)
        )
        return site.page(visit, "resident/session.html", summary=summary)

    return router


def new_submission_key() -> str:
    return secrets.token_urlsafe(24)


def _status(error: BackendError) -> int:
    return error.status if error.status in (409, 429, 503) else (503 if error.status >= 500 else 400)


def _problem(error: BackendError) -> FieldError:
    """A backend's refusal as a message a person understands (the form keeps what they typed)."""
    if error.status == 429:
        return FieldError(
            "",
            N_("Too many requests from your connection. Wait %(seconds)s seconds, then send it again."),
            {"seconds": error.retry_after or 30},
        )
    if isinstance(error, BackendUnavailable):
        return FieldError("", N_("Heard is busy right now and nothing was sent. Please try again in a moment."))
    return FieldError("", N_("This was not accepted: %(reason)s"), {"reason": error.message})
