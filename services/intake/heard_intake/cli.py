"""`python -m heard_intake.cli`: operator commands for tokens, the audit ledger and contact keys.

Reads the same HEARD_INTAKE_* environment as the service (MongoDB URI and database, contact keys), so
it acts on exactly the data the running service uses.

    issue-token --name NAME --role ROLE [--role ROLE ...] [--unit UNIT]   prints the new token once
    revoke-token --name NAME
    verify-audit [--feedback-id ID]                                       exit status 1 if a chain is broken
    rotate-contact-keys                                                   re-encrypts contacts under the first key
    register-city-system --source URI --name NAME                         may publish on feedback.inbound
    revoke-city-system --source URI
    list-city-systems                                                     configured and registered, as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Sequence
from typing import get_args

from pymongo.asynchronous.database import AsyncDatabase

from heard_intake.auth import Role, TokenStore
from heard_intake.city_systems import CitySystemRegistry
from heard_intake.config import IntakeSettings
from heard_intake.ledger import AuditLedger, head_of
from heard_intake.privacy import ContactUnreadable, contact_cipher
from heard_shared.mongo import Document, MongoResource
from heard_shared.settings import load_settings

ROLES: tuple[str, ...] = get_args(Role)


@contextlib.asynccontextmanager
async def _database(settings: IntakeSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    # The same default as the service's platform, so both find the same database.
    mongo = MongoResource(
        settings.mongodb_uri, settings.mongodb_database or "heard_intake", app_name="heard-intake-cli"
    )
    try:
        yield mongo.db
    finally:
        await mongo.close()


async def issue_token(settings: IntakeSettings, *, name: str, roles: list[str], unit_id: str | None) -> str:
    async with _database(settings) as db:
        return await TokenStore(db["tokens"]).issue(name=name, roles=roles, unit_id=unit_id)


async def revoke_token(settings: IntakeSettings, *, name: str) -> int:
    async with _database(settings) as db:
        return await TokenStore(db["tokens"]).revoke(name=name)


async def register_city_system(settings: IntakeSettings, *, source: str, name: str) -> None:
    async with _database(settings) as db:
        await CitySystemRegistry(db["city_systems"]).register(source=source, name=name)


async def revoke_city_system(settings: IntakeSettings, *, source: str) -> bool:
    async with _database(settings) as db:
        return await CitySystemRegistry(db["city_systems"]).revoke(source=source)


async def list_city_systems(settings: IntakeSettings) -> dict[str, str]:
    async with _database(settings) as db:
        return await CitySystemRegistry(db["city_systems"], settings.city_systems).all()


def _source_uri(value: str) -> str:
    """A CloudEvents `source` is a URI reference; refuse what is plainly not one before storing it."""
    if not value.strip() or value != value.strip() or any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError("a source is a URI reference such as urn:city:311, without spaces")
    return value


async def verify_audit(settings: IntakeSettings, *, feedback_id: str | None) -> list[dict[str, object]]:
    """One result per feedback item: whether its chain verifies, and where it breaks."""
    async with _database(settings) as db:
        audit = AuditLedger(db["audit"])
        records = db["feedback"]
        ids = [feedback_id] if feedback_id else await audit.feedback_ids()
        results: list[dict[str, object]] = []
        for one in ids:
            record = await records.find_one({"_id": one}, {"audit_seq": 1, "audit_head": 1})
            verification = await audit.verify(one, head=head_of(record))
            results.append(
                {
                    "feedback_id": one,
                    "verified": verification.verified,
                    "broken_at": verification.broken_at,
                    "reason": verification.reason,
                    "entries": verification.entries,
                }
            )
        return results


async def rotate_contact_keys(settings: IntakeSettings) -> tuple[int, int]:
    """Re-encrypts every stored contact under the first key; returns (rotated, unreadable)."""
    cipher = contact_cipher(settings)
    rotated = unreadable = 0
    async with _database(settings) as db:
        records = db["feedback"]
        async for record in records.find({"contact_encrypted": {"$exists": True}}, {"contact_encrypted": 1}):
            try:
                token = cipher.rotate(record["contact_encrypted"])
            except ContactUnreadable:
                unreadable += 1
                continue
            # Only if nobody changed or erased it meanwhile.
            result = await records.update_one(
                {"_id": record["_id"], "contact_encrypted": record["contact_encrypted"]},
                {"$set": {"contact_encrypted": token}},
            )
            rotated += result.modified_count
        return rotated, unreadable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m heard_intake.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    issue = commands.add_parser("issue-token", help="create a bearer token; it is printed once and stored hashed")
    issue.add_argument("--name", required=True, help="who or what holds the token (shown in the audit trail)")
    issue.add_argument("--role", required=True, action="append", choices=ROLES, dest="roles")
    issue.add_argument("--unit", help="the unit a unit_member works for")
    revoke = commands.add_parser("revoke-token", help="revoke every active token of a name")
    revoke.add_argument("--name", required=True)
    verify = commands.add_parser("verify-audit", help="verify the hash chains of the audit ledger")
    verify.add_argument("--feedback-id", help="only this item (default: every item in the ledger)")
    commands.add_parser("rotate-contact-keys", help="re-encrypt stored contacts under the first configured key")
    register = commands.add_parser(
        "register-city-system", help="allow a city system's CloudEvents source on feedback.inbound (no restart)"
    )
    register.add_argument("--source", required=True, type=_source_uri, help="the CloudEvents source, e.g. urn:city:311")
    register.add_argument("--name", required=True, help="the system's name, shown to staff and in the ledger")
    revoke_system = commands.add_parser("revoke-city-system", help="stop accepting a city system's events")
    revoke_system.add_argument("--source", required=True, type=_source_uri)
    commands.add_parser("list-city-systems", help="the sources accepted on feedback.inbound, as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings(IntakeSettings)
    if args.command == "issue-token":
        if "unit_member" in args.roles and not args.unit:
            print("error: a unit_member token needs --unit (it sees only its unit's feedback)", file=sys.stderr)
            return 2
        token = asyncio.run(issue_token(settings, name=args.name, roles=args.roles, unit_id=args.unit))
        print(token)
        print("Store this token now: only its hash is kept, it cannot be shown again.", file=sys.stderr)
        return 0
    if args.command == "revoke-token":
        revoked = asyncio.run(revoke_token(settings, name=args.name))
        print(f"revoked {revoked} token(s) named {args.name!r}")
        return 0 if revoked else 1
    if args.command == "verify-audit":
        results = asyncio.run(verify_audit(settings, feedback_id=args.feedback_id))
        for result in results:
            print(json.dumps(result))
        broken = [r for r in results if not r["verified"]]
        print(f"{len(results)} chain(s) checked, {len(broken)} broken", file=sys.stderr)
        return 1 if broken else 0
    if args.command == "register-city-system":
        asyncio.run(register_city_system(settings, source=args.source, name=args.name))
        print(f"registered {args.source!r} ({args.name}); every intake replica accepts it within seconds")
        return 0
    if args.command == "revoke-city-system":
        if asyncio.run(revoke_city_system(settings, source=args.source)):
            print(f"revoked {args.source!r}; its further events are dead-lettered as unregistered_source")
            return 0
        configured = args.source in settings.city_systems
        where = "it is configured in HEARD_INTAKE_CITY_SYSTEMS" if configured else "no active registration"
        print(f"nothing revoked for {args.source!r}: {where}", file=sys.stderr)
        return 1
    if args.command == "list-city-systems":
        print(json.dumps(asyncio.run(list_city_systems(settings)), indent=2, sort_keys=True))
        return 0
    rotated, unreadable = asyncio.run(rotate_contact_keys(settings))
    print(f"re-encrypted {rotated} contact(s); {unreadable} could not be decrypted with the configured keys")
    return 1 if unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
