"""The staff console: sign-in, the inbox, the item page and its actions, feedback sessions.

Every read and every action is a call to intake with the signed-in person's own token: what someone may see and
do is intake's decision, and a page shows only what intake returned. The roles kept in the session only choose
which links and buttons to offer.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter
from starlette.datastructures import UploadFile

from heard_shared.events import utc_now
from heard_web import forms, presenters
from heard_web.backends import BackendError, BackendUnavailable
from heard_web.forms import FieldError
from heard_web.i18n import N_
from heard_web.security import local_path, new_csrf_token
from heard_web.site import CSRF_COOKIE, SESSION_COOKIE, Site, Visit, client_ip, flash

_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")
INBOX_LIMIT = 500
ITEM_ACTIONS = ("acknowledge", "answer", "refer", "close", "notes")
DONE = {
    "acknowledged": N_("Acknowledged. The resident sees that the unit is working on it."),
    "answered": N_("The answer was published to the resident."),
    "referred": N_("Referred. Routing assigns the new unit; the deadlines keep running."),
    "closed": N_("Closed."),
    "noted": N_("Internal note added."),
    "signed_out": N_("You are signed out."),
    "created": N_("Session created. Now enter what was said."),
    "published": N_("The summary is published on the public sessions page."),
    "item_added": N_("The item was added to the session."),
}
REFUSALS = {
    "answer_required": N_("Negative feedback cannot be closed until an answer has been published to the resident."),
    "invalid_transition": N_("This is not possible in the item's current status."),
    "already_closed": N_("This item is already closed."),
    "already_answered": N_("Answered feedback is not referred: the answer stands, or the resident contests it."),
    "referral_pending": N_("The item was already referred and is waiting for its new unit."),
    "not_routed": N_("The item has no unit yet, so there is nothing to refer from."),
    "read_only": N_("Your role can read feedback and its history but not change it."),
    "not_your_unit": N_("This feedback is not assigned to your unit."),
    "no_unit": N_("Your account has no unit, so no feedback is assigned to you."),
    "forbidden": N_("Your role cannot see this page."),
    "conflict": N_("Someone changed this item at the same moment. Please try again."),
}


def refusal(error: BackendError) -> FieldError:
    message = REFUSALS.get(error.code)
    if message:
        return FieldError("", message)
    return FieldError("", N_("This was not accepted: %(reason)s"), {"reason": error.message})


def build_staff_router(site: Site, registry: CollectorRegistry) -> APIRouter:
    router = APIRouter(tags=["staff pages"])
    intake = site.backends.intake
    sign_ins = Counter(
        "heard_web_sign_ins_total", "Staff sign-in attempts, by outcome.", ["outcome"], registry=registry
    )

    def done_message(visit: Visit) -> str | None:
        return flash(visit.request.query_params.get("done"), {key: visit.gettext(v) for key, v in DONE.items()})

    # -- signing in and out ----------------------------------------------------------------------------------

    @router.get("/staff/sign-in")
    async def sign_in_form(request: Request, next: str = "/staff", reason: str = "") -> Response:
        visit = site.visit(request)
        return site.page(
            visit,
            "staff/sign_in.html",
            next_path=local_path(next, "/staff"),
            expired=reason == "expired",
            flash=done_message(visit),
            values={},
        )

    @router.post("/staff/sign-in")
    async def sign_in(request: Request) -> Response:
        visit = site.visit(request)
        form = await site.form(request)
        name, token = forms.clean(form.get("name")), forms.clean(form.get("token"))
        next_path = local_path(forms.clean(form.get("next")), "/staff")
        errors = []
        if not name:
            errors.append(FieldError("name", N_("Enter your name as it is on your account.")))
        if not token:
            errors.append(FieldError("token", N_("Enter your access token.")))
        if not errors:
            try:
                account = await intake.call(
                    "POST", "/v1/auth/sign-in", json={"name": name, "token": token}, client_ip=client_ip(request)
                )
            except BackendUnavailable:
                raise
            except BackendError as refused:
                sign_ins.labels(refused.code).inc()
                errors.append(_sign_in_error(refused, visit))
            else:
                sign_ins.labels("signed_in").inc()
                secret = await site.sessions.create(
                    token=token, name=account["name"], roles=account["roles"], unit_id=account.get("unit_id")
                )
                start = "/oversight" if set(account["roles"]) == {"oversight"} and next_path == "/staff" else next_path
                response = site.redirect(visit, start)
                site.set_cookie(request, response, SESSION_COOKIE, secret)
                # A fresh CSRF token with the new session: one planted before sign-in is worth nothing after it.
                site.set_cookie(request, response, CSRF_COOKIE, new_csrf_token())
                return response
        return site.page(
            visit, "staff/sign_in.html", status=401, next_path=next_path, errors=errors, values={"name": name}
        )

    @router.post("/staff/sign-out")
    async def sign_out(request: Request) -> Response:
        visit = await site.staff_visit(request)
        await site.form(request)
        assert visit.staff is not None
        await site.sessions.end(visit.staff.key)
        response = site.redirect(visit, "/staff/sign-in?done=signed_out")
        site.clear_cookie(request, response, SESSION_COOKIE)
        return response

    # -- the inbox -------------------------------------------------------------------------------------------

    @router.get("/staff")
    async def inbox(
        request: Request,
        status: str = "open",
        unit: str | None = None,
        kind: str = "",
        severity: str = "",
        overdue: str = "",
    ) -> Response:
        visit = await site.staff_visit(request)
        staff = visit.staff
        assert staff is not None
        status = status if status in presenters.STATUSES or status == "all" else "open"
        # A unit member's list is always their unit's (intake enforces it); others start with their own unit.
        unit_filter = (unit if unit is not None else staff.unit_id or "") if staff.sees_all_units else ""
        listing = await intake.call(
            "GET",
            "/v1/staff/feedback",
            token=staff.token,
            params={"status": None if status == "all" else status, "unit_id": unit_filter, "limit": INBOX_LIMIT},
        )
        now = utc_now()
        items = listing.get("items") or []
        shown = [
            item
            for item in items
            if (not kind or item.get("kind") == kind)
            and (not severity or item.get("severity") == severity)
            and (not overdue or item.get("overdue"))
        ]
        units = await site.backends.unit_names()
        rows = [(item, presenters.next_deadline(item, now)) for item in shown]
        return site.page(
            visit,
            "staff/inbox.html",
            rows=rows,
            total=len(items),
            capped=len(items) >= INBOX_LIMIT,
            units=units,
            filters={"status": status, "unit": unit_filter, "kind": kind, "severity": severity, "overdue": overdue},
            flash=done_message(visit),
        )

    # -- one item --------------------------------------------------------------------------------------------

    async def item_page(visit: Visit, feedback_id: str, *, status: int = 200, **context: Any) -> Response:
        staff = visit.staff
        assert staff is not None
        item = await intake.call("GET", f"/v1/staff/feedback/{feedback_id}", token=staff.token)
        # Asked only once intake has let this person see the item (notify's list is not scoped to people).
        try:
            deliveries: list[dict[str, Any]] | None = (
                await site.backends.notify.call(
                    "GET", "/v1/deliveries", token=staff.token, params={"feedback_id": feedback_id}
                )
            ).get("items") or []
        except BackendError:
            deliveries = None  # the page says the delivery status cannot be shown right now
        units = await site.backends.unit_names()
        return site.page(
            visit,
            "staff/item.html",
            status=status,
            item=item,
            units=units,
            deadline=presenters.next_deadline(item, utc_now()),
            timeline=presenters.staff_timeline(item.get("history") or [], units, visit.gettext),
            actions=presenters.staff_actions(item),
            deliveries=deliveries,
            flash=done_message(visit),
            values=context.pop("values", {}),
            **context,
        )

    @router.get("/staff/items/{feedback_id}")
    async def item(request: Request, feedback_id: str) -> Response:
        visit = await site.staff_visit(request)
        if not _ID.fullmatch(feedback_id):
            return site.page(visit, "error.html", status=404, title=N_("Page not found"))
        return await item_page(visit, feedback_id)

    @router.post("/staff/items/{feedback_id}/{action}")
    async def act(request: Request, feedback_id: str, action: str) -> Response:
        visit = await site.staff_visit(request)
        form = await site.form(request)
        staff = visit.staff
        assert staff is not None
        if action not in ITEM_ACTIONS or not _ID.fullmatch(feedback_id):
            return site.page(visit, "error.html", status=404, title=N_("Page not found"))
        decision = form.get("decision")
        path = f"/v1/staff/feedback/{feedback_id}/{action}"
        body: dict[str, Any] | None = None
        if action == "answer":
            text, error = forms.read_text(
                form, "answer", maximum=forms.ANSWER_MAX, required=N_("Write the answer the resident will read.")
            )
            if error is not None or decision == "edit":
                return await item_page(
                    visit,
                    feedback_id,
                    status=400 if error else 200,
                    errors=[error] if error else [],
                    values={"answer": text},
                )
            if decision != "publish":
                preview = await intake.call(
                    "POST", "/v1/staff/answer-preview", token=staff.token, json={"answer": text}
                )
                return await item_page(visit, feedback_id, preview=preview, values={"answer": text})
            body = {"answer": text}
        elif action == "refer":
            reason, error = forms.read_text(
                form, "reason", maximum=forms.REASON_MAX, required=N_("Say why this is not your unit's to answer.")
            )
            suggested = forms.clean(form.get("suggested_unit_id"))
            if error is not None:
                return await item_page(visit, feedback_id, status=400, errors=[error], values={"reason": reason})
            body = {"reason": reason, **({"suggested_unit_id": suggested} if suggested else {})}
        elif action == "notes":
            text, error = forms.read_text(form, "note", maximum=forms.TEXT_MAX, required=N_("Write the note."))
            if error is not None:
                return await item_page(visit, feedback_id, status=400, errors=[error], values={"note": text})
            body = {"text": text}
        elif action == "close" and decision != "confirm":
            return site.page(visit, "staff/confirm_close.html", feedback_id=feedback_id)
        try:
            await intake.call("POST", path, token=staff.token, json=body)
        except BackendUnavailable:
            raise
        except BackendError as refused:
            if refused.status in (401, 403, 404):
                raise
            return await item_page(visit, feedback_id, status=409, problem=refusal(refused))
        done = {
            "acknowledge": "acknowledged",
            "answer": "answered",
            "refer": "referred",
            "close": "closed",
            "notes": "noted",
        }
        return site.redirect(visit, f"/staff/items/{feedback_id}?done={done[action]}")

    # -- feedback sessions -----------------------------------------------------------------------------------

    @router.get("/staff/sessions")
    async def sessions(request: Request) -> Response:
        visit = await site.staff_visit(request)
        assert visit.staff is not None
        listing = await intake.call("GET", "/v1/staff/sessions", token=visit.staff.token)
        return site.page(visit, "staff/sessions.html", sessions=listing.get("items") or [], values={})

    @router.post("/staff/sessions")
    async def create_session(request: Request) -> Response:
        visit = await site.staff_visit(request)
        form = await site.form(request)
        assert visit.staff is not None
        read = forms.read_session_form(form, neighbourhoods=site.settings.neighbourhoods)
        if read.body is None:
            listing = await intake.call("GET", "/v1/staff/sessions", token=visit.staff.token)
            return site.page(
                visit,
                "staff/sessions.html",
                status=400,
                sessions=listing.get("items") or [],
                values=read.values,
                errors=read.errors,
            )
        created = await intake.call("POST", "/v1/staff/sessions", token=visit.staff.token, json=read.body)
        return site.redirect(visit, f"/staff/sessions/{created['session_id']}?done=created")

    async def session_page(visit: Visit, session_id: str, *, status: int = 200, **context: Any) -> Response:
        assert visit.staff is not None
        session = await intake.call("GET", f"/v1/staff/sessions/{session_id}", token=visit.staff.token)
        summary = await intake.call("GET", f"/v1/sessions/{session_id}/summary")
        return site.page(
            visit,
            "staff/session.html",
            status=status,
            session=session,
            summary=summary,
            flash=done_message(visit),
            values=context.pop("values", {}),
            **context,
        )

    @router.get("/staff/sessions/{session_id}")
    async def session_detail(request: Request, session_id: str) -> Response:
        visit = await site.staff_visit(request)
        if not _ID.fullmatch(session_id):
            return site.page(visit, "error.html", status=404, title=N_("Page not found"))
        return await session_page(visit, session_id)

    @router.post("/staff/sessions/{session_id}/{action}")
    async def session_action(request: Request, session_id: str, action: str) -> Response:
        visit = await site.staff_visit(request)
        form = await site.form(request)
        assert visit.staff is not None
        token = visit.staff.token
        if action not in ("items", "upload", "publish") or not _ID.fullmatch(session_id):
            return site.page(visit, "error.html", status=404, title=N_("Page not found"))
        if action == "publish":
            await intake.call("POST", f"/v1/staff/sessions/{session_id}/publish", token=token)
            return site.redirect(visit, f"/staff/sessions/{session_id}?done=published")
        if action == "items":
            read = forms.read_session_item(form, neighbourhoods=site.settings.neighbourhoods)
            if read.body is None:
                return await session_page(visit, session_id, status=400, errors=read.errors, values=read.values)
            report = await intake.call("POST", f"/v1/staff/sessions/{session_id}/items", token=token, json=[read.body])
            if report.get("rejected"):
                return await session_page(visit, session_id, status=400, report=report, values=read.values)
            return site.redirect(visit, f"/staff/sessions/{session_id}?done=item_added")
        upload = form.get("file")
        sheet = await upload.read() if isinstance(upload, UploadFile) else b""
        if not sheet:
            error = FieldError("file", N_("Choose the CSV file to upload."))
            return await session_page(visit, session_id, status=400, errors=[error])
        try:
            report = await intake.call(
                "POST", f"/v1/staff/sessions/{session_id}/items", token=token, content=sheet, content_type="text/csv"
            )
        except BackendUnavailable:
            raise
        except BackendError as refused:
            if refused.status in (401, 403, 404):
                raise
            error = FieldError("file", N_("The file cannot be read: %(reason)s"), {"reason": refused.message})
            return await session_page(visit, session_id, status=400, errors=[error])
        return await session_page(visit, session_id, report=report)

    return router


def _sign_in_error(refused: BackendError, visit: Visit) -> FieldError:
    details = refused.details if isinstance(refused.details, dict) else {}
    if refused.code == "account_locked":
        return FieldError(
            "token",
            N_("Too many failed sign-ins: this account is locked until %(time)s. Try again then."),
            {"time": visit.formats.datetime(details.get("locked_until"))},
        )
    if refused.status == 429:
        return FieldError(
            "token",
            N_("Too many attempts from your connection. Wait %(seconds)s seconds and try again."),
            {"seconds": refused.retry_after or 30},
        )
    if "attempts_left" in details:
        return FieldError(
            "token",
            N_("The name or the token is wrong. Attempts left before the account is locked for a while: %(left)s."),
            {"left": details["attempts_left"]},
        )
    return FieldError("token", N_("The name or the token is wrong."))
