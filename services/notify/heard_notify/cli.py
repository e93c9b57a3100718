"""`python -m heard_notify.cli`: operator commands for city systems' webhook subscriptions and the suppression list.

Reads the same HEARD_NOTIFY_* environment as the service (MongoDB, secret key), so it acts on exactly the
data the running service uses; every replica sees a change within seconds, without a restart.

    register-webhook --id ID --name NAME --url URL --event TYPE [--event TYPE ...] [--secret whsec_...]
                                              prints the secret once (a new one unless given)
    rotate-webhook-secret --id ID             adds a new secret; both sign until retire-old-webhook-secret
    retire-old-webhook-secret --id ID
    disable-webhook --id ID  /  enable-webhook --id ID  /  remove-webhook --id ID
    list-webhooks                             as JSON, without secrets
    unsuppress --channel email|sms --address ADDRESS   lets notify write to an address again
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from heard_notify.config import NotifySettings
from heard_notify.keys import notify_keys
from heard_notify.subscriptions import SUBSCRIBABLE, SubscriptionError, SubscriptionRegistry
from heard_notify.suppression import SuppressionList
from heard_shared.mongo import MongoResource
from heard_shared.settings import load_settings

T = TypeVar("T")


@contextlib.asynccontextmanager
async def _registry(settings: NotifySettings) -> AsyncIterator[tuple[SubscriptionRegistry, SuppressionList]]:
    mongo = MongoResource(
        settings.mongodb_uri, settings.mongodb_database or "heard_notify", app_name="heard-notify-cli"
    )
    keys = notify_keys(settings.secret_key.get_secret_value(), settings.environment)
    try:
        yield (
            SubscriptionRegistry(
                mongo.db["subscriptions"], keys, allow_private=settings.webhook_allow_private_addresses
            ),
            SuppressionList(mongo.db["suppression"]),
        )
    finally:
        await mongo.close()


def _run(settings: NotifySettings, action: Callable[[SubscriptionRegistry, SuppressionList], Awaitable[T]]) -> T:
    async def go() -> T:
        async with _registry(settings) as (registry, suppression):
            return await action(registry, suppression)

    return asyncio.run(go())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m heard_notify.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    register = commands.add_parser("register-webhook", help="subscribe a city system's endpoint to event types")
    register.add_argument("--id", required=True, help="a short stable name, e.g. city-311")
    register.add_argument("--name", required=True)
    register.add_argument("--url", required=True)
    register.add_argument(
        "--event", required=True, action="append", dest="events", help=f"one of {', '.join(SUBSCRIBABLE)}, or *"
    )
    register.add_argument("--secret", help="an existing whsec_ secret to keep (default: a new one)")
    for name, text in (
        ("rotate-webhook-secret", "add a new secret; the old one stays valid until retired"),
        ("retire-old-webhook-secret", "keep only the newest secret"),
        ("disable-webhook", "stop calling the endpoint"),
        ("enable-webhook", "call the endpoint again (after a 410 or a manual disable)"),
        ("remove-webhook", "delete the subscription"),
    ):
        commands.add_parser(name, help=text).add_argument("--id", required=True)
    commands.add_parser("list-webhooks", help="subscriptions as JSON, without secrets")
    unsuppress = commands.add_parser("unsuppress", help="allow e-mail or SMS to an address again")
    unsuppress.add_argument("--channel", required=True, choices=["email", "sms"])
    unsuppress.add_argument("--address", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings(NotifySettings)
    try:
        if args.command == "register-webhook":
            secret = _run(
                settings,
                lambda r, _: r.register(
                    subscription_id=args.id, name=args.name, url=args.url, event_types=args.events, secret=args.secret
                ),
            )
            print(secret)
            print(
                "Give this secret to the receiving system; it is stored encrypted and shown only now.", file=sys.stderr
            )
            return 0
        if args.command == "rotate-webhook-secret":
            print(_run(settings, lambda r, _: r.rotate(args.id)))
            print(
                "Both the old and the new secret sign every delivery until retire-old-webhook-secret.", file=sys.stderr
            )
            return 0
        if args.command == "retire-old-webhook-secret":
            retired = _run(settings, lambda r, _: r.retire_old_secret(args.id))
            print(f"retired {retired} secret(s) of {args.id!r}")
            return 0
        if args.command in ("disable-webhook", "enable-webhook"):
            enabled = args.command == "enable-webhook"
            found = _run(settings, lambda r, _: r.set_enabled(args.id, enabled, reason="disabled by an operator"))
            print(f"{'enabled' if enabled else 'disabled'} {args.id!r}" if found else f"no subscription {args.id!r}")
            return 0 if found else 1
        if args.command == "remove-webhook":
            found = _run(settings, lambda r, _: r.remove(args.id))
            print(f"removed {args.id!r}" if found else f"no subscription {args.id!r}")
            return 0 if found else 1
        if args.command == "list-webhooks":
            print(json.dumps(_run(settings, lambda r, _: r.describe()), indent=2))
            return 0
        keys = notify_keys(settings.secret_key.get_secret_value(), settings.environment)
        removed = _run(settings, lambda _, s: s.remove(keys.address_hash(args.channel, args.address)))
        print("removed from the suppression list" if removed else "that address was not suppressed")
        return 0 if removed else 1
    except SubscriptionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
