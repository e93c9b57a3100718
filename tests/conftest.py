"""Fixtures shared by the test tiers.

Integration and end-to-end tests run on the real parts: the session starts a fresh Kafka broker
and MongoDB-wire server under `.heard/test` (ports +10000, beside any `make up`) through the same
`heard_devstack` code `make up` uses, and stops them at the end. `KAFKA_BOOTSTRAP_SERVERS` /
`MONGODB_URI` point the tests at existing servers instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from heard_devstack import PROFILES, Profile, Stack


def selected_test_profile() -> Profile:
    """HEARD_TEST_PROFILE / HEARD_TEST_PORT_OFFSET let two test runs share a machine without sharing ports."""
    name = os.environ.get("HEARD_TEST_PROFILE", "test")
    offset = int(os.environ.get("HEARD_TEST_PORT_OFFSET", PROFILES["test"].port_offset))
    return Profile(name, offset)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    test_stack = Stack(selected_test_profile())
    test_stack.down()
    # A fresh broker and database each session: no test depends on what an earlier run left.
    for leftover in ("kafka", "mongodb", "prometheus", "mailpit", "logs", "run"):
        shutil.rmtree(test_stack.state / leftover, ignore_errors=True)
    test_stack.up_infra()
    try:
        yield test_stack
    finally:
        test_stack.down()
