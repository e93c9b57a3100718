"""Browser-facing protections: a strict Content-Security-Policy and friends on every response, cookie names
and flags, and CSRF checks on every form.

CSRF uses a double-submit token: a random value in an HttpOnly cookie that every form repeats in a hidden field,
compared in constant time, plus the browser's own word on where a POST came from (`Sec-Fetch-Site`, `Origin`).
Over TLS the cookies carry the `__Host-` prefix, so no subdomain and no plain-HTTP response can plant them.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Everything comes from this origin and nothing runs inline: no third-party request is even possible.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    # Tracking codes appear in page addresses; no other site ever learns one from a Referer header. (Not
    # "no-referrer": with it, browsers send `Origin: null` on the site's own forms.)
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
}
CSRF_FIELD = "csrf_token"


class SecurityHeaders:
    """Adds the headers above to every response; pages without their own caching rule are never stored."""

    def __init__(self, app: ASGIApp, *, always_secure: bool = False) -> None:
        self.app = app
        self.always_secure = always_secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = self.always_secure or scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("cache-control", "no-store")
                if secure:
                    headers.setdefault("strict-transport-security", "max-age=31536000; includeSubDomains")
            await send(message)

        await self.app(scope, receive, with_headers)


class CookiePolicy:
    """Names and flags of web's cookies for one request: `__Host-` and Secure over TLS."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def secure(self, request: Request) -> bool:
        return self.mode == "always" or (self.mode == "auto" and request.url.scheme == "https")

    def name(self, request: Request, base: str) -> str:
        return f"__Host-{base}" if self.secure(request) else base


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, presented: str | None) -> bool:
    return bool(expected) and bool(presented) and hmac.compare_digest(str(expected), str(presented))


def cross_site(request: Request) -> bool:
    """True when the browser says the form came from another site or subdomain.

    `Sec-Fetch-Site` is what current browsers send; `Origin` is the fallback (a privacy-minded browser may send
    "null", which proves nothing either way: the CSRF token still has to match).
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc != request.url.netloc
    return False


def local_path(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default`: redirects never leave the site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(character) < 0x20 for character in target):
        return default
    return target
