"""A routing replica that claims due deadlines and then hangs, to be killed with SIGKILL by a test.

Usage: python doomed_replica.py MONGODB_URI DATABASE COUNT LEASE_SECONDS
Prints "claimed N" once it holds N leases.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from heard_shared.events import utc_now
from heard_shared.mongo import MongoResource
from tests.integration.scheduler_support import build_scheduler


async def main(uri: str, database: str, count: int, lease_seconds: float) -> None:
    mongo = MongoResource(uri, database, app_name="doomed-replica")
    service, _ = build_scheduler(mongo, instance_id="doomed", lease=timedelta(seconds=lease_seconds))
    claimed = await service.claim_due(utc_now(), limit=count)
    print(f"claimed {len(claimed)}", flush=True)
    await asyncio.sleep(3600)  # holds its leases until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
