"""Intake with the Kafka broker process really stopped: it keeps taking feedback and says Kafka is down.

Submissions are stored with their event in the outbox, so intake answers 202 at once and its relay publishes
once the broker is back; nobody waits for the producer's timeouts. The durations printed are figures for the
reader; the bound asserted is only "fails fast, does not hang" (the issue saw 10-23 s per request).
"""

from __future__ import annotations

import time

import httpx
import pytest

from heard_devstack import Stack, port_open
from heard_shared import topics
from tests.e2e.conftest import staff
from tests.helpers import TopicReader, eventually

pytestmark = pytest.mark.e2e

SUBMISSIONS = 10
# Far below the 10-23 s the issue measured, far above a loaded machine's ordinary request.
HANG = 5.0


async def test_with_kafka_stopped_intake_answers_at_once_and_publishes_once_it_is_back(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    intake = platform.service_url("intake")
    warm = await http.post(f"{intake}/v1/feedback", json={"kind": "praise", "text": "Kind officer at the fair"})
    assert warm.status_code == 202
    platform.stop_process("kafka")
    try:
        assert not port_open(platform.profile.kafka_port)

        async def kafka_reported_down() -> dict[str, str] | None:
            response = await http.get(f"{intake}/readyz")
            checks: dict[str, str] = response.json()["checks"]
            return checks if response.status_code == 503 and checks["kafka"] == "failing" else None

        checks = await eventually(kafka_reported_down, what="/readyz to report Kafka down")
        assert checks["mongodb"] == "ok"

        accepted: list[str] = []
        durations: list[float] = []
        for n in range(SUBMISSIONS):
            started = time.monotonic()
            response = await http.post(
                f"{intake}/v1/feedback", json={"kind": "complaint", "text": f"Nobody answered my call, number {n}"}
            )
            durations.append(time.monotonic() - started)
            assert response.status_code in (202, 503), response.text
            if response.status_code == 202:
                accepted.append(response.json()["feedback_id"])
        answer = await http.post(
            f"{intake}/v1/staff/feedback/{warm.json()['feedback_id']}/answer",
            headers=staff(),
            json={"answer": "Thank you, we passed it on."},
        )
        assert answer.status_code == 200, answer.text
        print(f"with Kafka stopped: {[round(d, 3) for d in durations]} s per submission, {len(accepted)} accepted")
        assert max(durations) < HANG, f"a submission waited {max(durations):.1f} s for a broker that is down"
        assert accepted, "the outbox keeps intake taking feedback"
    finally:
        platform.start_kafka()

    async with TopicReader(platform.kafka_bootstrap, topics.SUBMITTED, topics.ANSWERED) as reader:

        async def all_published() -> bool:
            await reader.poll()
            subjects = {event.get("subject") for event in reader.events()}
            return set(accepted) | {warm.json()["feedback_id"]} <= subjects

        await eventually(all_published, timeout=90, interval=1, what="the relay to publish what Kafka missed")

    async def ready() -> bool:
        return (await http.get(f"{intake}/readyz")).status_code == 200

    await eventually(ready, timeout=60, what="/readyz to report ready again")
    for feedback_id in accepted:  # answered, so their reminders do not load the modules that run after this one
        done = await http.post(
            f"{intake}/v1/staff/feedback/{feedback_id}/answer", headers=staff(), json={"answer": "Done."}
        )
        assert done.status_code == 200, done.text
