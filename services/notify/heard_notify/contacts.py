"""The department's contacts file: how each unit, level and the oversight board is reached.

Edited by the department (`config/contacts.yaml`), validated at start-up: a bad value, an unknown unit or a
level of the chain nobody can be reached at stops the service with the file, line and reason, because a
level without a contact method would silently skip people who must be told (FixMyStreet-style "nobody
was told" failures start exactly there). Addresses stay in this file and in memory; deliveries name a
contact by `unit/contact-id`, never by address.
"""

from __future__ import annotations

import os
import re
from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from heard_shared.config_files import ConfigFileError, load_model
from heard_shared.events import Language

ContactChannel = Literal["email", "webhook", "sms"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _clock(value: str) -> time:
    match = _CLOCK.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a time of day like 07:30")
    return time(int(match[1]), int(match[2]))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuietHours(Strict):
    start: time
    end: time

    @classmethod
    def parse(cls, value: str) -> QuietHours:
        start, sep, end = value.partition("-")
        if not sep:
            raise ValueError(f"{value!r} is not a range like 22:00-07:00")
        return cls(start=_clock(start), end=_clock(end))


class Contact(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    webhook: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    # The environment variable holding the webhook's `whsec_` secret(s), comma-separated while rotating.
    secret_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    sms: Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$")] | None = None
    language: Language = "en"
    # `digest`: new items and reminders wait for the daily digest instead of arriving one by one.
    mode: Literal["immediate", "digest"] = "immediate"
    quiet_hours: QuietHours | None = None

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _quiet_hours(cls, value: object) -> object:
        return QuietHours.parse(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_channel(self) -> Contact:
        given = [name for name in ("email", "webhook", "sms") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(f"contact {self.id!r} needs exactly one of email, webhook or sms (has {given or 'none'})")
        if self.webhook and not self.secret_env:
            raise ValueError(f"webhook contact {self.id!r} needs secret_env (the variable holding its whsec_ secret)")
        return self

    @property
    def channel(self) -> ContactChannel:
        return "email" if self.email else "webhook" if self.webhook else "sms"

    def webhook_secrets(self) -> list[str]:
        raw = os.environ.get(self.secret_env or "", "")
        return [secret.strip() for secret in raw.split(",") if secret.strip()]


class ContactsFile(Strict):
    timezone: str = "UTC"
    digest_time: time = time(8, 0)
    oversight_board: str
    units: dict[str, list[Contact]]

    @field_validator("digest_time", mode="before")
    @classmethod
    def _digest_time(cls, value: object) -> object:
        return _clock(value) if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as America/Chicago") from None
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> ContactsFile:
        for unit, contacts in self.units.items():
            ids = [c.id for c in contacts]
            if not contacts:
                raise ValueError(f"unit {unit!r} lists no contacts")
            if len(set(ids)) != len(ids):
                raise ValueError(f"unit {unit!r} uses a contact id twice")
        if self.oversight_board not in self.units:
            raise ValueError(f"the oversight board {self.oversight_board!r} has no contacts")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Directory:
    """Looks up contacts; `recipient` strings are `unit:<unit-id>/<contact-id>`."""

    def __init__(self, contacts: ContactsFile) -> None:
        self.file = contacts

    @property
    def oversight_board(self) -> str:
        return self.file.oversight_board

    def contacts_of(self, unit_id: str) -> list[Contact]:
        return list(self.file.units.get(unit_id, []))

    def units(self) -> list[str]:
        return sorted(self.file.units)

    def resolve(self, recipient: str) -> Contact | None:
        unit, _, contact_id = recipient.removeprefix("unit:").partition("/")
        return next((c for c in self.file.units.get(unit, []) if c.id == contact_id), None)


def staff_recipient(unit_id: str, contact: Contact) -> str:
    return f"unit:{unit_id}/{contact.id}"


def _organisation_ids(path: Path) -> tuple[set[str], str | None]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigFileError(f"{path}: cannot read the organisation: {error}") from error
    ids: set[str] = set()
    for key in ("oversight_board", "professional_standards"):
        if isinstance(raw.get(key), dict):
            ids.add(str(raw[key].get("id")))
    for key in ("commands", "supervisors", "units"):
        ids |= {str(item.get("id")) for item in raw.get(key) or [] if isinstance(item, dict)}
    board = raw.get("oversight_board", {}).get("id") if isinstance(raw.get("oversight_board"), dict) else None
    return ids, board


def load_directory(contacts_path: Path, organisation_path: Path | None) -> Directory:
    """Loads and checks the contacts file; with the organisation, every unit of every chain must be reachable."""
    contacts = load_model(contacts_path, ContactsFile)
    problems: list[str] = []
    for unit, entries in contacts.units.items():
        for contact in entries:
            if contact.webhook:
                secrets = contact.webhook_secrets()
                if not secrets or not all(s.startswith("whsec_") for s in secrets):
                    problems.append(
                        f"{contacts_path}: {unit}/{contact.id}: environment variable {contact.secret_env} must hold "
                        "the webhook's whsec_ secret(s)"
                    )
    if organisation_path is not None:
        ids, board = _organisation_ids(organisation_path)
        unknown = sorted(set(contacts.units) - ids)
        if unknown:
            problems.append(f"{contacts_path}: units not in {organisation_path}: {', '.join(unknown)}")
        unreachable = sorted(ids - set(contacts.units))
        if unreachable:
            problems.append(
                f"{contacts_path}: no contact for {', '.join(unreachable)} — every unit and level in "
                f"{organisation_path} must be reachable, or escalations to it would reach nobody"
            )
        if board and board != contacts.oversight_board:
            problems.append(
                f"{contacts_path}: oversight_board is {contacts.oversight_board!r}, the organisation's is {board!r}"
            )
    if problems:
        raise ConfigFileError("Invalid contacts file:\n" + "\n".join(problems))
    return Directory(contacts)
