"""Contact details encrypted at rest.

A leaked database dump or backup must not reveal how to reach the residents who trusted Heard with a
complaint, so contact details are stored only as Fernet tokens (AES-128-CBC + HMAC-SHA256) under keys
that live in the environment, never in the database. `HEARD_INTAKE_CONTACT_KEYS` is a comma-separated
list: the first key encrypts, every key decrypts, so a key is rotated by prepending a new one, running
`python -m heard_intake.cli rotate-contact-keys`, then dropping the old one.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from heard_intake.config import IntakeSettings
from heard_shared.events import Contact
from heard_shared.settings import SettingsError

# Well known on purpose: it protects nothing and is accepted only with HEARD_INTAKE_ENVIRONMENT=development.
DEVELOPMENT_CONTACT_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"heard development contact key - not a secret").digest()
).decode()


class ContactCipher:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def encrypt(self, contact: Contact) -> str:
        return self._fernet.encrypt(contact.model_dump_json(exclude_none=True).encode()).decode()

    def decrypt(self, token: str) -> Contact:
        try:
            plain = self._fernet.decrypt(token.encode())
        except InvalidToken as error:
            raise ContactUnreadable("no configured key decrypts this contact (was a key dropped too early?)") from error
        return Contact.model_validate(json.loads(plain))

    def encrypt_text(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt_text(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise ContactUnreadable("no configured key decrypts this value") from error

    def rotate(self, token: str) -> str:
        """Re-encrypts under the first key, so older keys can be removed afterwards."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as error:
            raise ContactUnreadable("no configured key decrypts this contact") from error


class ContactUnreadable(Exception):
    pass


def contact_cipher(settings: IntakeSettings) -> ContactCipher:
    """The cipher the service runs with; stops start-up with a clear message when no key is configured."""
    raw = settings.contact_keys.get_secret_value()
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    if not keys:
        if settings.environment == "development":
            return ContactCipher([DEVELOPMENT_CONTACT_KEY])
        raise SettingsError(
            "Invalid configuration:\n  HEARD_INTAKE_CONTACT_KEYS is not set. Contact details are encrypted at rest "
            "and need at least one Fernet key (comma-separated; the first encrypts, all decrypt). Create one with\n"
            '    python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"\n'
            "  or set HEARD_INTAKE_ENVIRONMENT=development to use the built-in development key."
        )
    invalid = []
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            invalid.append(position)
    if invalid:
        # Positions, never the values: the message ends up in logs.
        raise SettingsError(
            "Invalid configuration:\n  HEARD_INTAKE_CONTACT_KEYS: key(s) at position "
            f"{', '.join(map(str, invalid))} are not Fernet keys (32 url-safe base64-encoded bytes)."
        )
    return ContactCipher(keys)
