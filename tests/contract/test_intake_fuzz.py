"""Bad input never hurts intake: schemathesis drives every operation of intake's OpenAPI document.

The app is built by `create_app` exactly as in production and served in-process (schemathesis runs
its lifespan), against the real Kafka broker and MongoDB-wire server of the test stack, in a database
of its own. Staff and city-system credentials are filled in, so generated input reaches the code
behind authentication rather than stopping at a 401. Every response must be a non-5xx that matches
the documented schema and content type. `max_examples` keeps the run under a minute.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pymongo import AsyncMongoClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)
from starlette.types import Receive, Scope, Send

from heard_devstack import Stack
from heard_intake.auth import TokenStore
from heard_intake.bootstrap import create_app
from heard_intake.config import IntakeSettings
from heard_intake.openapi import OPENAPI_FILE

pytestmark = [
    pytest.mark.integration,
    # Raised from inside schemathesis' own strategies (its use of `random`), not from anything here.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

ADMIN_TOKEN = f"heard_fuzz_admin_{uuid.uuid4().hex}"
CITY_TOKEN = f"heard_fuzz_city_{uuid.uuid4().hex}"
EXAMPLES_PER_OPERATION = 30
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, response_headers_conformance]


async def _issue_city_token(uri: str, database: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, directConnection=True)
    try:
        await TokenStore(client[database]["tokens"]).issue(name="fuzz-311", roles=["city_system"], token=CITY_TOKEN)
    finally:
        await client.close()


class OneLifespan:
    """Runs the app's lifespan once for the whole module.

    Schemathesis' pytest plugin ends every ASGI lifespan after each test, but a service's platform (its
    MongoDB client, Kafka broker and consumers) cannot be started again once stopped, and restarting it
    per operation would also cost seconds each. The harness' later startups and shutdowns are acknowledged
    and ignored; `final` lets the fixture's teardown end the real lifespan.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.context: AbstractAsyncContextManager[Any] | None = None
        self.final = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.context is None:
                    self.context = self.app.router.lifespan_context(self.app)
                    await self.context.__aenter__()
                await send({"type": "lifespan.startup.complete"})
            else:
                if self.final and self.context is not None:
                    await self.context.__aexit__(None, None, None)
                    self.context = None
                await send({"type": "lifespan.shutdown.complete"})
                return


@pytest.fixture(scope="module")
def intake_schema(stack: Stack) -> Iterator[Any]:
    database = f"heard_intake_fuzz_{uuid.uuid4().hex[:8]}"
    asyncio.run(_issue_city_token(stack.mongodb_uri, database))
    app = OneLifespan(
        create_app(
            IntakeSettings(
                environment="development",
                kafka_bootstrap_servers=stack.kafka_bootstrap,
                mongodb_uri=stack.mongodb_uri,
                mongodb_database=database,
                bootstrap_admin_token=ADMIN_TOKEN,
                # Fuzzing sends hundreds of requests from one client; the limiter has its own tests.
                rate_limit_enabled=False,
                session_max_items=20,
                log_json=False,
                log_level="WARNING",
            )
        )
    )
    try:
        with asgi.get_client(cast(Any, app)) as client:
            # Startup failures are reported once, here, rather than as every generated case failing.
            assert client.get("/readyz").status_code == 200
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        app.final = True
        with asgi.get_client(cast(Any, app)):
            pass  # a running lifespan (ended by the harness or not) to end for real below
        asgi.shutdown_lifespans()


def _operations() -> list[tuple[str, str]]:
    """One test per documented operation, read from the published document (kept in sync by a contract test)."""
    paths = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods]


def _with_credentials(case: Any) -> None:
    """Valid credentials where an operation needs them; everything else stays as generated."""
    if case.path.startswith("/v1/staff"):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN_TOKEN}"}
    if case.method == "POST" and case.path == "/open311/v2/requests.json" and isinstance(case.body, dict):
        case.body = {**case.body, "api_key": CITY_TOKEN}


# Driven through `as_strategy` rather than schemathesis' pytest plugin: its lazy fixture loader reads a
# private pytest attribute that pytest 9 no longer has.
@pytest.mark.parametrize(("method", "path"), _operations())
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_intake_fail_or_break_its_contract(
    intake_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = intake_schema[path][method]

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,  # the same inputs every run: a failure here is reproducible, never flaky
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        _with_credentials(case)
        case.call_and_validate(checks=CHECKS)

    try:
        fuzz()
    except Unsatisfiable:
        # Negative mode on an operation whose only input is a free-form string: nothing can be made invalid.
        pytest.skip(f"no invalid input exists for {method} {path}")
