"""Routing's read API: who is responsible for an item and where its clock stands."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from heard_routing.policy import LEVEL_NAMES
from heard_routing.service import RoutingService
from heard_shared.http import ApiError
from heard_shared.outbox import WITHOUT_OUTBOX


def build_router(service: RoutingService) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["routing"])

    @router.get("/cases/{feedback_id}", summary="Assignment and SLA clock of one feedback item")
    async def get_case(feedback_id: str) -> dict[str, Any]:
        case = await service.cases.find_one({"_id": feedback_id}, WITHOUT_OUTBOX)
        if case is None or "routed_at" not in case:
            raise ApiError(404, "case_not_found", f"Feedback {feedback_id!r} has not been routed.")
        case["feedback_id"] = case.pop("_id")
        case["level_name"] = LEVEL_NAMES[case["level"]]
        return case

    @router.get("/organisation", summary="Units and escalation chain in force")
    async def organisation() -> dict[str, Any]:
        return service.org.model_dump()

    return router
