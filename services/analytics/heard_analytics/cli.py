"""`python -m heard_analytics.cli`: operator commands for the read model.

Reads the same HEARD_ANALYTICS_* environment as the service (Kafka, MongoDB URI and database, area files).

    rebuild [--database NAME] [--replace] [--compare] [--concurrency N]
        Replays every consumed topic from the beginning into a fresh database (default: the live database's name
        with "_rebuild"), then prints what it read as JSON. --replace empties that database first (never the live
        one); --compare also lists where the rebuilt read model differs from the live one, and exits with status 1
        if it does. To switch to the rebuilt database, set HEARD_ANALYTICS_MONGODB_DATABASE to it and restart the
        service: its consumer group resumes where the live one stopped, and a repeated event changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from heard_analytics import rebuild
from heard_analytics.bootstrap import build_service
from heard_analytics.config import AnalyticsSettings
from heard_shared.mongo import MongoResource
from heard_shared.settings import load_settings

DEFAULT_DATABASE = "heard_analytics"


async def rebuild_into(
    settings: AnalyticsSettings, *, database: str | None, replace: bool, compare: bool, concurrency: int
) -> dict[str, Any]:
    live_name = settings.mongodb_database or DEFAULT_DATABASE
    target = database or f"{live_name}_rebuild"
    if target == live_name:
        raise SystemExit(f"refusing to rebuild into the live database {live_name!r}; name another with --database")
    mongo = MongoResource(settings.mongodb_uri, target, app_name="heard-analytics-cli")
    try:
        if await mongo.db.list_collection_names():
            if not replace:
                raise SystemExit(f"database {target!r} is not empty; pass --replace to empty it first")
            await mongo.client.drop_database(target)
        service = build_service(settings, mongo.db, CollectorRegistry())
        await service.start()
        report = await rebuild.replay(service.model, settings.kafka_bootstrap_servers, concurrency=concurrency)
        summary: dict[str, Any] = {"database": target, **report.as_dict()}
        if compare:
            found = await rebuild.differences(mongo.client[live_name], mongo.db)
            summary |= {"matches_live": not found, "differences": found[:50], "difference_count": len(found)}
        return summary
    finally:
        await mongo.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m heard_analytics.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild_command = commands.add_parser("rebuild", help="replay every topic into a fresh database")
    rebuild_command.add_argument("--database", help="database to rebuild into (default: <live>_rebuild)")
    rebuild_command.add_argument("--replace", action="store_true", help="empty that database first")
    rebuild_command.add_argument("--compare", action="store_true", help="list differences from the live database")
    rebuild_command.add_argument(
        "--concurrency", type=int, default=500, help="items applied at once (written together in rounds)"
    )
    args = parser.parse_args(argv)
    settings = load_settings(AnalyticsSettings)
    summary = asyncio.run(
        rebuild_into(
            settings,
            database=args.database,
            replace=args.replace,
            compare=args.compare,
            concurrency=args.concurrency,
        )
    )
    print(json.dumps(summary, indent=2))
    return 1 if summary.get("matches_live") is False else 0


if __name__ == "__main__":
    sys.exit(main())
