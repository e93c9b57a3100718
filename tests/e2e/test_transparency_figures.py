"""Allegations and triage reach the public figures on the real platform (analytics publishes with a threshold of 1
in the e2e platform): a complaint declaring allegations, lowered at triage by professional standards, is counted
under each allegation it declared and among the items triaged and lowered."""

from __future__ import annotations

import httpx
import pytest

from heard_devstack import Stack
from tests.e2e.conftest import issue_token, public_count, staff, submit
from tests.helpers import eventually, unique

pytestmark = pytest.mark.e2e


async def test_a_declared_allegation_and_a_lowering_at_triage_show_in_the_public_figures(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    async def figures() -> dict[str, int]:
        return {
            "any": await public_count(http, platform, "allegations", "allegation", "any", "items"),
            "force": await public_count(http, platform, "allegations", "allegation", "force", "items"),
            "harassment": await public_count(http, platform, "allegations", "allegation", "harassment", "items"),
            "triaged": await public_count(http, platform, "other", "measure", "triaged", "items"),
            "lowered": await public_count(http, platform, "other", "measure", "lowered_at_triage", "items"),
        }

    before = await figures()
    standards = issue_token(platform, unique("ps-investigator"), "professional_standards")
    created = await submit(
        http,
        platform,
        kind="complaint",
        text=f"The officer pushed me against the car {unique('f')}",
        allegations=["force"],
        location={"neighbourhood": "Northgate"},
    )
    triage_url = f"{platform.service_url('intake')}/v1/staff/feedback/{created['feedback_id']}/triage"
    lowered = await http.post(
        triage_url,
        headers=staff(standards),
        json={"severity": "negative", "reason": "The video shows a hand on the shoulder, no push."},
    )
    assert lowered.status_code == 200, lowered.text

    async def counted() -> dict[str, int] | None:
        now = await figures()
        return now if now["triaged"] > before["triaged"] and now["any"] > before["any"] else None

    after = await eventually(counted, what="analytics to count the allegation and the triage", timeout=60)
    assert after["force"] == before["force"] + 1
    assert after["harassment"] == before["harassment"], "only the declared allegation is counted"
    assert after["lowered"] == before["lowered"] + 1
