"""Fixtures every end-to-end module shares: the platform started the way `make up` starts it, an HTTP client,
staff credentials and the intake operator CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from heard_devstack import ROOT, SERVICES, Stack

ADMIN_TOKEN = "heard_e2e_admin_token"
# City systems allowed to publish on feedback.inbound in these tests.
CITY_SYSTEMS = {"urn:city:311": "City 311", "urn:city:records": "City records"}


def running_platform(stack: Stack, sla_policy: Path) -> Iterator[Stack]:
    """Every service and Prometheus, started as `make up` starts them, with routing on `sla_policy`."""
    stack.extra_env = {
        "HEARD_ROUTING_SLA_POLICY_FILE": str(sla_policy),
        "HEARD_INTAKE_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "HEARD_INTAKE_CITY_SYSTEMS": json.dumps(CITY_SYSTEMS),
        # Every request comes from 127.0.0.1: keep the limiter in the path, with room for a whole test run.
        "HEARD_INTAKE_RATE_LIMIT_WRITE_BURST": "2000",
        "HEARD_INTAKE_RATE_LIMIT_READ_BURST": "20000",
        # One item must show in the public figures, so tests can follow it there.
        "HEARD_ANALYTICS_SUPPRESSION_THRESHOLD": "1",
        # Notify: webhook receivers in the tests listen on 127.0.0.1; retries and follow-ups in seconds.
        "HEARD_NOTIFY_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "HEARD_NOTIFY_RETRY_BASE_SECONDS": "0.5",
        "HEARD_NOTIFY_RETRY_CAP_SECONDS": "2",
        "HEARD_NOTIFY_FOLLOW_UP_AFTER_SECONDS": "4",
        "HEARD_NOTIFY_DISPATCH_LEASE_SECONDS": "20",
        "HEARD_NOTIFY_INTAKE_TIMEOUT_SECONDS": "5",
        "HEARD_NOTIFY_SMTP_TIMEOUT_SECONDS": "5",
        "HEARD_NOTIFY_WEBHOOK_TIMEOUT_SECONDS": "5",
        "HEARD_NOTIFY_SMS_TIMEOUT_SECONDS": "5",
    }
    try:
        for service in SERVICES:
            stack.start_service(service)
        stack.start_prometheus()
        yield stack
    finally:
        for name in (*SERVICES, "prometheus"):
            stack.stop_process(name)


@pytest.fixture(scope="module")
def platform(stack: Stack) -> Iterator[Stack]:
    yield from running_platform(stack, ROOT / "config" / "sla-policy.seconds.yaml")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def public_count(
    http: httpx.AsyncClient, platform: Stack, table: str, key: str, value: str, column: str, **filters: str
) -> int:
    """One count of analytics' public figures: `column` of the row of `table` whose `key` is `value`."""
    response = await http.get(f"{platform.service_url('analytics')}/v1/transparency", params=filters)
    assert response.status_code == 200, response.text
    row = next(r for r in response.json()["tables"][table]["rows"] if r[key] == value)
    figure = row[column]
    return figure if isinstance(figure, int) else 0  # "<1" (zero) is published as an object


def staff(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def submit(http: httpx.AsyncClient, platform: Stack, **body: Any) -> dict[str, Any]:
    response = await http.post(f"{platform.service_url('intake')}/v1/feedback", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def intake_cli(platform: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator CLI against the platform's intake database, as an operator would run it."""
    env = {**os.environ, **platform.service_env("intake")}
    return subprocess.run(
        [sys.executable, "-m", "heard_intake.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def notify_cli(platform: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """Notify's operator CLI against the platform's notify database."""
    env = {**os.environ, **platform.service_env("notify")}
    return subprocess.run(
        [sys.executable, "-m", "heard_notify.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def issue_token(platform: Stack, name: str, role: str, unit: str | None = None) -> str:
    result = intake_cli(platform, "issue-token", "--name", name, "--role", role, *(["--unit", unit] if unit else []))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("heard_") and "cannot be shown again" in result.stderr
    return token


@pytest.fixture(scope="module")
def web_platform(stack: Stack, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The platform as `make up` starts it, for the web pages' tests: databases of the module's own (so inboxes hold
    only its items) and `config/sla-policy.walkthrough.yaml` (ten minutes for the unit and its supervisor,
    seconds above them), so a person's steps are not overtaken by escalations."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    stack.extra_env = {
        "HEARD_ROUTING_SLA_POLICY_FILE": str(ROOT / "config" / "sla-policy.walkthrough.yaml"),
        "HEARD_INTAKE_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "HEARD_INTAKE_CITY_SYSTEMS": json.dumps(CITY_SYSTEMS),
        "HEARD_INTAKE_RATE_LIMIT_WRITE_BURST": "2000",
        "HEARD_INTAKE_RATE_LIMIT_READ_BURST": "20000",
        **{f"HEARD_{service.upper()}_MONGODB_DATABASE": f"heard_{service}_{module}" for service in SERVICES},
    }
    try:
        for service in SERVICES:
            stack.start_service(service)
        yield stack
    finally:
        for service in SERVICES:
            stack.stop_process(service)
