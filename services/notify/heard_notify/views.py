"""Notify's HTTP API: deliveries for the staff console, one-click unsubscribe, follow-up answers, SMS STOP.

No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.
"""

import base64
import hashlib
import hmac
import html
import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from heard_notify.channels import CaptureSms, SmsProvider
from heard_notify.keys import NotifyKeys
from heard_notify.ledger import DeliveryLedger, public_delivery
from heard_notify.metrics import NotifyMetrics
from heard_notify.suppression import SuppressionList
from heard_shared.events import utc_now
from heard_shared.http import ApiError

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "PARAR", "BAJA", "ALTO"})
START_WORDS = frozenset({"START", "UNSTOP", "YES", "ALTA"})

PAGES = {
    "en": {
        "unsubscribe_title": "Stop e-mails about your feedback",
        "unsubscribe_ask": "Press the button to stop receiving e-mails from Heard at this address.",
        "unsubscribe_button": "Stop these e-mails",
        "unsubscribed": "Done: Heard will not e-mail this address again.",
        "yes": "Thank you. We are glad the answer addressed your concern.",
        "no": "Thank you for telling us. You can contest the answer from your tracking page; the feedback then "
        "reopens one level higher.",
        "invalid": "This link is not valid.",
    },
    "es": {
        "unsubscribe_title": "Dejar de recibir correos sobre su comentario",
        "unsubscribe_ask": "Pulse el botón para dejar de recibir correos de Heard en esta dirección.",
        "unsubscribe_button": "Dejar de recibir estos correos",
        "unsubscribed": "Listo: Heard no volverá a escribir a esta dirección.",
        "yes": "Gracias. Nos alegra que la respuesta haya atendido su inquietud.",
        "no": "Gracias por decírnoslo. Puede impugnar la respuesta desde su página de seguimiento; el comentario se "
        "reabre un nivel más arriba.",
        "invalid": "Este enlace no es válido.",
    },
}


def _page(language: str, title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{html.escape(title)}</title></head>'
        f'<body style="font-family:Arial,sans-serif;max-width:600px;margin:2em auto;padding:0 1em;line-height:1.5">'
        f"<main><h1>{html.escape(title)}</h1>{body}</main></body></html>",
        status_code=status,
    )


def build_router(
    *,
    ledger: DeliveryLedger,
    suppression: SuppressionList,
    keys: NotifyKeys,
    metrics: NotifyMetrics,
    sms: SmsProvider,
    sms_auth_token: str,
    public_base_url: str,
) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/deliveries", tags=["deliveries"], summary="Deliveries by item or recipient, oldest first")
    async def deliveries(
        feedback_id: str | None = None,
        recipient: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        found = await ledger.list(feedback_id=feedback_id, recipient=recipient, status=status, limit=limit)
        return {"items": [public_delivery(d) for d in found]}

    @router.get("/deliveries/{delivery_id}", tags=["deliveries"], summary="One delivery with every attempt")
    async def delivery(delivery_id: str) -> dict[str, Any]:
        found = await ledger.get(delivery_id)
        if found is None:
            raise ApiError(404, "delivery_not_found", f"No delivery with id {delivery_id!r}.")
        return public_delivery(found)

    async def _resident_delivery(purpose: str, token: str) -> dict[str, Any] | None:
        delivery_id = keys.check_link(purpose, token)
        return await ledger.get(delivery_id) if delivery_id else None

    @router.get("/unsubscribe/{token}", tags=["residents"], response_class=HTMLResponse, summary="Confirm unsubscribe")
    async def unsubscribe_page(token: str) -> HTMLResponse:
        # A GET never unsubscribes: mail scanners open links. The page's button POSTs, like a one-click client.
        found = await _resident_delivery("unsubscribe", token)
        language = (found or {}).get("language") or "en"
        text = PAGES[language]
        if found is None:
            return _page(language, text["invalid"], "", 404)
        form = (
            f'<p>{html.escape(text["unsubscribe_ask"])}</p><form method="post">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            f'<button type="submit">{html.escape(text["unsubscribe_button"])}</button></form>'
        )
        return _page(language, text["unsubscribe_title"], form)

    @router.post("/unsubscribe/{token}", tags=["residents"], summary="RFC 8058 one-click unsubscribe")
    async def unsubscribe(token: str, request: Request) -> Response:
        found = await _resident_delivery("unsubscribe", token)
        if found is None or not found.get("address_hash"):
            raise ApiError(404, "invalid_link", "This unsubscribe link is not valid.")
        await suppression.add(found["address_hash"], reason="unsubscribed", delivery_id=found["_id"])
        metrics.unsubscribes.labels(found["channel"]).inc()
        language = found.get("language") or "en"
        if "text/html" in request.headers.get("accept", ""):
            return _page(language, PAGES[language]["unsubscribed"], "")
        return Response(json.dumps({"status": "unsubscribed"}), media_type="application/json")

    @router.get("/follow-up/{token}/{answer}", tags=["residents"], response_class=HTMLResponse)
    async def follow_up(token: str, answer: str) -> HTMLResponse:
        found = await _resident_delivery("follow-up", token)
        language = (found or {}).get("language") or "en"
        if found is None or answer not in ("yes", "no"):
            return _page(language, PAGES[language]["invalid"], "", 404)
        recorded = await ledger.deliveries.update_one(
            {"_id": found["_id"], "follow_up_answer": {"$exists": False}},
            {"$set": {"follow_up_answer": answer, "follow_up_answered_at": utc_now()}},
        )
        if recorded.modified_count:
            metrics.follow_up_answers.labels(answer).inc()
        return _page(language, PAGES[language][answer], "")

    @router.post("/sms/inbound", tags=["sms"], summary="Replies from the SMS provider: STOP opts out, START opts in")
    async def sms_inbound(
        request: Request, From: Annotated[str, Form()], Body: Annotated[str, Form()] = ""
    ) -> Response:
        if sms_auth_token and not _twilio_signature_ok(request, await request.form(), sms_auth_token, public_base_url):
            raise ApiError(403, "invalid_signature", "The request is not signed by the SMS provider.")
        word = Body.strip().split()[0].upper() if Body.strip() else ""
        address_hash = keys.address_hash("sms", From)
        if word in STOP_WORDS:
            await suppression.add(address_hash, reason="sms_opted_out")
            metrics.unsubscribes.labels("sms").inc()
        elif word in START_WORDS:
            await suppression.remove(address_hash)
        # An empty TwiML answer: the provider sends its own STOP confirmation.
        return Response("<Response></Response>", media_type="application/xml")

    if isinstance(sms, CaptureSms):

        @router.get("/dev/sms", tags=["development"], summary="SMS captured instead of sent (capture provider only)")
        async def captured_sms(to: str | None = None) -> dict[str, Any]:
            return {"items": [m for m in sms.messages if to is None or m["to"] == to]}

    return router


def _twilio_signature_ok(request: Request, form: Any, auth_token: str, public_base_url: str) -> bool:
    """Twilio's X-Twilio-Signature: HMAC-SHA1 over the public URL followed by the sorted form fields."""
    url = public_base_url.rstrip("/") + request.url.path
    payload = url + "".join(f"{key}{form[key]}" for key in sorted(form.keys()))
    expected = base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()
    return hmac.compare_digest(expected, request.headers.get("x-twilio-signature", ""))
