"""The relays work on many documents at once, and stop starting new ones after a failure."""

from __future__ import annotations

import asyncio

from heard_shared.outbox import relay_each


async def test_documents_are_relayed_concurrently_up_to_the_limit() -> None:
    in_flight = peak = 0

    async def relay(document_id: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return document_id % 3  # events published for this document

    relayed, failure = await relay_each(range(40), relay, concurrency=8)

    assert failure is None
    assert relayed == sum(i % 3 for i in range(40))
    assert peak == 8


async def test_after_a_failure_no_further_document_is_started() -> None:
    started: list[int] = []

    async def relay(document_id: int) -> int:
        started.append(document_id)
        await asyncio.sleep(0.01)
        if document_id == 0:
            raise ConnectionError("broker down")
        return 1

    relayed, failure = await relay_each(range(100), relay, concurrency=4)

    assert isinstance(failure, ConnectionError)
    assert started == [0, 1, 2, 3], "only the first wave, which was already running"
    assert relayed == 3, "what the rest of that wave published still counts"
