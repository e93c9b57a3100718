"""Privacy at intake: redaction of text that leaves intake, contact encryption and its configuration."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from heard_intake import domain
from heard_intake.config import IntakeSettings
from heard_intake.privacy import DEVELOPMENT_CONTACT_KEY, ContactCipher, ContactUnreadable, contact_cipher
from heard_shared.events import Contact
from heard_shared.settings import SettingsError


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("The car ABC 1234 hit my fence", "ABC 1234"),
        ("Plate 7ABC123, a red sedan", "7ABC123"),
        ("license plate: abc 1234 was on the cruiser", "abc 1234"),
        ("plate number xyz-987 drove off", "xyz-987"),
        ("a truck with tag 4KX 220", "4KX 220"),
        ("el coche con placa ABC-123 se fue", "ABC-123"),
        ("ABC-1234 and 8XYZ99 were both there", "8XYZ99"),
    ],
)
def test_licence_plates_are_redacted(text: str, gone: str) -> None:
    redacted = domain.redact(text)
    assert gone not in redacted
    assert "[plate]" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "Officer with badge 4127 was very helpful",
        "badge #4127 and badge PD4127",
        "el agente con placa 5521 me ayudó",  # in Spanish "placa" is also a police badge
        "I live at 1234 Main St",
        "on HWY 101 near US 101 at 5 PM",
        "the plates were dirty and the tags expired",
        "unit 12 arrived",
    ],
)
def test_badges_addresses_and_ordinary_words_survive(text: str) -> None:
    assert domain.redact(text) == text


def test_redaction_covers_all_kinds_together_and_is_idempotent() -> None:
    text = "Mail ana@example.org, call +1 (612) 555-0199, car 7QXZ493, badge 4127."
    once = domain.redact(text)
    assert once == "Mail [email], call [phone], car [plate], badge 4127."
    assert domain.redact(once) == once


def test_contacts_are_encrypted_and_keys_rotate() -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    contact = Contact(name="Ana Canary", email="ana@example.org", phone="+1 612 555 0199", consent_to_contact=True)
    old = ContactCipher([old_key])
    token = old.encrypt(contact)
    assert "ana@example.org" not in token and "Ana" not in token
    # A new key in front: old tokens still decrypt, new ones use the new key, rotate moves old ones over.
    both = ContactCipher([new_key, old_key])
    assert both.decrypt(token) == contact
    rotated = both.rotate(token)
    assert ContactCipher([new_key]).decrypt(rotated) == contact
    with pytest.raises(ContactUnreadable):
        ContactCipher([new_key]).decrypt(token)


def test_production_refuses_to_start_without_a_contact_key() -> None:
    with pytest.raises(SettingsError) as stopped:
        contact_cipher(IntakeSettings(environment="production", contact_keys=""))
    assert "HEARD_INTAKE_CONTACT_KEYS is not set" in str(stopped.value)
    assert "HEARD_INTAKE_ENVIRONMENT=development" in str(stopped.value)


def test_invalid_keys_are_named_by_position_never_by_value() -> None:
    good = Fernet.generate_key().decode()
    with pytest.raises(SettingsError) as stopped:
        contact_cipher(IntakeSettings(contact_keys=f"{good},not-a-key-s3cret"))
    assert "position 2" in str(stopped.value)
    assert "s3cret" not in str(stopped.value)


def test_development_uses_the_well_known_key_and_configured_keys_win() -> None:
    contact = Contact(email="dev@example.org")
    dev = contact_cipher(IntakeSettings(environment="development"))
    assert ContactCipher([DEVELOPMENT_CONTACT_KEY]).decrypt(dev.encrypt(contact)) == contact
    key = Fernet.generate_key().decode()
    configured = contact_cipher(IntakeSettings(environment="development", contact_keys=f" {key} ,"))
    assert ContactCipher([key]).decrypt(configured.encrypt(contact)) == contact


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("HEARD_INTAKE_CONTACT_KEYS", key)
    monkeypatch.setenv("HEARD_INTAKE_CONTACT_RETENTION_DAYS", "30")
    settings = IntakeSettings()
    assert settings.environment == "production"
    assert settings.contact_retention_days == 30
    assert key not in repr(settings), "the key is a secret and never printed"
    assert ContactCipher([key]).decrypt(contact_cipher(settings).encrypt(Contact(name="x"))).name == "x"
