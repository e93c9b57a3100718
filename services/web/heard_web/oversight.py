"""The oversight view: everything at the civilian oversight board with its reminders and age, the answers
residents contested, and each item's audit trail with a visible verdict ("verified" or "broken at entry N").

Read-only, like the board's role: intake refuses these reads to anyone without an oversight role, and the pages
then show no data at all.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from heard_shared.events import utc_now
from heard_web import presenters
from heard_web.i18n import N_
from heard_web.site import Site

_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")


def build_oversight_router(site: Site) -> APIRouter:
    router = APIRouter(tags=["oversight pages"])
    intake = site.backends.intake
    board = site.settings.oversight_board_unit

    @router.get("/oversight")
    async def overview(request: Request) -> Response:
        visit = await site.staff_visit(request)
        assert visit.staff is not None
        token = visit.staff.token
        # The contested list needs an oversight role; asked first, so nobody else sees even the board's queue.
        contested = (await intake.call("GET", "/v1/oversight/contested", token=token, params={"limit": 200})).get(
            "items"
        ) or []
        at_board = (
            await intake.call("GET", "/v1/staff/feedback", token=token, params={"unit_id": board, "limit": 500})
        ).get("items") or []
        now = utc_now()
        rows = sorted(
            (presenters.board_item(item, board, now) for item in at_board),
            key=lambda row: (row.answered, -row.age.total_seconds()),
        )
        units = await site.backends.unit_names()
        return site.page(visit, "oversight/overview.html", board=rows, contested=contested, units=units, now=now)

    @router.get("/oversight/items/{feedback_id}/audit")
    async def audit(request: Request, feedback_id: str) -> Response:
        visit = await site.staff_visit(request)
        assert visit.staff is not None
        if not _ID.fullmatch(feedback_id):
            return site.page(visit, "error.html", status=404, title=N_("Page not found"))
        trail = await intake.call("GET", f"/v1/oversight/feedback/{feedback_id}/audit", token=visit.staff.token)
        return site.page(
            visit,
            "oversight/audit.html",
            feedback_id=feedback_id,
            trail=trail,
            rows=presenters.audit_rows(trail, visit.gettext),
        )

    return router
