"""Notify's one secret, and what is derived from it: link tokens, the suppression list's keyed hashes, and
the key that encrypts webhook secrets at rest.

`HEARD_NOTIFY_SECRET_KEY` is required in production; development (make up, the tests) uses a well-known key.
Rotating it invalidates unsubscribe and follow-up links already sent and the suppression list's hashes, so
keep it for as long as those must keep working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken

from heard_shared.settings import SettingsError

DEVELOPMENT_SECRET = "heard development notify key - not a secret"


class NotifyKeys:
    def __init__(self, secret: str) -> None:
        self._root = secret.encode()
        self._box = Fernet(base64.urlsafe_b64encode(self._derive("webhook-secrets")))

    def _derive(self, purpose: str) -> bytes:
        return hmac.new(self._root, purpose.encode(), hashlib.sha256).digest()

    # -- links in messages -------------------------------------------------------------------------------------

    def link_token(self, purpose: str, delivery_id: str) -> str:
        mac = hmac.new(self._derive(f"link:{purpose}"), delivery_id.encode(), hashlib.sha256).digest()[:16]
        return f"{delivery_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def check_link(self, purpose: str, token: str) -> str | None:
        """The delivery id a genuine token names, or None."""
        delivery_id, _, _ = token.rpartition(".")
        if delivery_id and hmac.compare_digest(self.link_token(purpose, delivery_id), token):
            return delivery_id
        return None

    # -- suppression list --------------------------------------------------------------------------------------

    def address_hash(self, channel: str, address: str) -> str:
        """A keyed hash of a normalised address: enough to recognise it again, useless to reach anyone."""
        normalised = address.strip().lower() if channel == "email" else "".join(c for c in address if c.isdigit())
        return hmac.new(self._derive("suppression"), f"{channel}:{normalised}".encode(), hashlib.sha256).hexdigest()

    # -- webhook secrets at rest -------------------------------------------------------------------------------

    def seal(self, secret: str) -> str:
        return self._box.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._box.decrypt(sealed.encode()).decode()
        except InvalidToken as error:
            raise ValueError("a webhook secret cannot be decrypted: was HEARD_NOTIFY_SECRET_KEY changed?") from error


def notify_keys(secret: str, environment: str) -> NotifyKeys:
    if secret:
        if len(secret) < 32:
            raise SettingsError("Invalid configuration:\n  HEARD_NOTIFY_SECRET_KEY must be at least 32 characters.")
        return NotifyKeys(secret)
    if environment == "development":
        return NotifyKeys(DEVELOPMENT_SECRET)
    raise SettingsError(
        "Invalid configuration:\n  HEARD_NOTIFY_SECRET_KEY is not set. It keys unsubscribe links, the suppression "
        "list and stored webhook secrets. Create one with\n"
        '    python -c "import secrets; print(secrets.token_urlsafe(48))"\n'
        "  or set HEARD_NOTIFY_ENVIRONMENT=development to use the built-in development key."
    )
