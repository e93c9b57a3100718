"""Issue 8's lost answers: items answered while their escalations fire, under load, must stop escalating for good.

On FerretDB 1.x an answer could be lost to a concurrent firing or claim (read-modify-write updates): routing had
consumed `feedback.answered`, yet the case kept `clock=open` and drew reminders for ever. Here the platform runs as
`make up` runs it, on the default store, with the seconds policy (acknowledge 3 s, reminders every 2 s), and:
many complaints are routed and start escalating; they are answered in waves while the scheduler fires their
deadlines and more complaints keep arriving; then every case must have stopped its clock with the answer's time,
intake must still show each one answered, and no escalation may fire for any of them afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest

from heard_devstack import Stack
from heard_shared import topics
from tests.e2e.conftest import staff, submit
from tests.helpers import TopicReader, eventually

pytestmark = pytest.mark.e2e

T = TypeVar("T")
# Enough items for answers and firings to meet, few enough that the events they cause (each escalation goes to
# intake, notify and analytics) do not leave the services behind for the test modules that run after this one.
ITEMS = 30
WAVES = 3
# The seconds policy fires a reminder every 2 s at the top level: three periods and a tick show a clock still running.
QUIET_SECONDS = 7.0


async def limited(calls: list[Awaitable[T]], *, at_once: int = 8) -> list[T]:
    gate = asyncio.Semaphore(at_once)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


async def complaint(http: httpx.AsyncClient, platform: Stack, n: int) -> str:
    created = await submit(http, platform, kind="complaint", text=f"Nobody came after my call, number {n}")
    return str(created["feedback_id"])


async def test_answers_stop_escalation_while_deadlines_fire_under_load(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    intake, routing = platform.service_url("intake"), platform.service_url("routing")
    ids = await limited([complaint(http, platform, n) for n in range(ITEMS)])

    async def cases() -> list[dict[str, Any]]:
        responses = await limited([http.get(f"{routing}/v1/cases/{feedback_id}") for feedback_id in ids])
        return [response.json() for response in responses if response.status_code == 200]

    async def all_routed() -> bool:
        return len(await cases()) == ITEMS

    await eventually(all_routed, timeout=120, interval=1, what=f"routing to route all {ITEMS} complaints")

    extra: list[str] = []

    async def more_load() -> None:
        """Steady submissions meanwhile: routing, the scheduler and intake all stay busy."""
        while True:
            extra.append(await complaint(http, platform, ITEMS + len(extra)))
            await asyncio.sleep(0.2)

    async with TopicReader(platform.kafka_bootstrap, topics.ESCALATED) as escalations:
        load = asyncio.create_task(more_load())
        try:
            for wave in range(WAVES):
                # The first wave is answered as the acknowledge deadlines fall due, the last ones several levels up.
                await asyncio.sleep(2)
                answers = await limited(
                    [
                        http.post(
                            f"{intake}/v1/staff/feedback/{feedback_id}/answer",
                            headers=staff(),
                            json={"answer": "An officer will call you back today."},
                        )
                        for feedback_id in ids[wave::WAVES]
                    ]
                )
                assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers]
        finally:
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load
            # The extra complaints are answered too: left open, their reminders (every 2 s each at the top level)
            # would keep the platform busy for every test module that runs after this one.
            await limited(
                [
                    http.post(
                        f"{intake}/v1/staff/feedback/{feedback_id}/answer", headers=staff(), json={"answer": "Done."}
                    )
                    for feedback_id in extra
                ]
            )

        async def all_stopped() -> list[dict[str, Any]] | None:
            found = await cases()
            return found if all(c["clock"] == "stopped" and c.get("answered_at") for c in found) else None

        stopped = await eventually(all_stopped, timeout=60, interval=1, what="every answered case to stop its clock")
        stopped_at = datetime.now(UTC)
        assert len(stopped) == ITEMS
        await asyncio.sleep(QUIET_SECONDS)
        await escalations.poll()
        await escalations.poll()
        mine = [event for event in escalations.events() if event.get("subject") in set(ids)]

    assert mine, "escalations fired while the answers came in (otherwise this test raced nothing)"
    late = [e for e in mine if datetime.fromisoformat(e["data"]["fired_at"]) > stopped_at]
    assert late == [], f"{len(late)} escalations fired after their item was answered"
    assert len({e["id"] for e in mine}) == len(mine), "no escalation is emitted twice"

    async def extra_stopped() -> bool:
        """Routing has worked through every answer, so no backlog is left to the next module."""
        found = await limited([http.get(f"{routing}/v1/cases/{feedback_id}") for feedback_id in extra])
        return all(r.status_code == 200 and r.json()["clock"] == "stopped" for r in found)

    await eventually(extra_stopped, timeout=90, interval=1, what="routing to stop the extra complaints' clocks")

    items = await limited(
        [http.get(f"{intake}/v1/staff/feedback/{feedback_id}", headers=staff()) for feedback_id in ids]
    )
    statuses = [item.json()["status"] for item in items]
    assert statuses == ["answered"] * ITEMS, "a late escalation never undoes an answer in intake"
