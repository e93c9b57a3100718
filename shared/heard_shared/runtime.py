"""One place that wires a service's infrastructure: settings → MongoDB, Kafka, metrics, outbox, consumer.

Each service's bootstrap builds a `Platform`, adds its own collections and handlers, and hands
`platform.lifespan` to FastAPI. Tests build the same object with other settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from heard_shared import topics
from heard_shared.http import ReadinessCheck
from heard_shared.kafka import EventConsumer, EventPublisher, Inbox, KafkaDeadLetterSink, create_broker
from heard_shared.logs import get_logger
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import MongoResource
from heard_shared.outbox import OutboxRelay
from heard_shared.settings import ServiceSettings, SettingsT, load_settings

log = get_logger(__name__)

BackgroundTask = Callable[[], Coroutine[Any, Any, None]]
StartupHook = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Platform:
    service: str
    settings: ServiceSettings
    metrics: ServiceMetrics
    mongo: MongoResource
    broker: KafkaBroker
    publisher: EventPublisher
    outbox: OutboxRelay
    consumer: EventConsumer
    dead_letters: KafkaDeadLetterSink
    startup_hooks: list[StartupHook] = field(default_factory=list)
    background: list[BackgroundTask] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def instance_id(self) -> str:
        return self.settings.instance_id or f"{self.service}@{socket.gethostname()}:{self.settings.http_port}"

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        async def kafka() -> bool:
            try:
                return bool(await self.broker.ping(timeout=2.0))
            except Exception:  # noqa: BLE001 - readiness only reports
                return False

        return {"mongodb": self.mongo.ping, "kafka": kafka}

    async def start(self) -> None:
        await _retry(
            "create Kafka topics",
            lambda: topics.ensure_topics(
                self.settings.kafka_bootstrap_servers, replication_factor=self.settings.kafka_topic_replication_factor
            ),
        )
        for hook in self.startup_hooks:
            await _retry("prepare MongoDB", hook)
        await self.dead_letters.start()
        self.consumer.register()
        await self.broker.start()
        background = [*self.background, self.consumer.run_lag_gauge] if self.consumer.routes else self.background
        self._tasks = [asyncio.create_task(task(), name=task.__name__) for task in background]
        log.info("service started", instance=self.instance_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.outbox.close()
        await self.broker.stop()
        await self.dead_letters.stop()
        await self.mongo.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


async def _retry(what: str, action: Callable[[], Coroutine[Any, Any, None]], attempts: int = 30) -> None:
    """Start-up waits for its dependencies for a while, then fails loudly (the orchestrator restarts)."""
    for attempt in range(1, attempts + 1):
        try:
            await action()
            return
        except Exception as error:
            if attempt == attempts:
                raise
            log.warning("waiting for dependency", what=what, attempt=attempt, error=repr(error))
            await asyncio.sleep(min(0.5 * attempt, 5.0))


def build_platform(service: str, settings: ServiceSettings) -> Platform:
    metrics = ServiceMetrics(service)
    database = settings.mongodb_database or f"heard_{service}"
    mongo = MongoResource(settings.mongodb_uri, database, app_name=f"heard-{service}")
    broker = create_broker(settings.kafka_bootstrap_servers, client_id=f"heard-{service}")
    publisher = EventPublisher(broker, metrics)
    dead_letters = KafkaDeadLetterSink(settings.kafka_bootstrap_servers, client_id=f"heard-{service}")
    consumer = EventConsumer(
        broker,
        group_id=f"heard-{service}",
        inbox=Inbox(mongo.db["inbox"]),
        metrics=metrics,
        dead_letters=dead_letters,
    )
    return Platform(
        service=service,
        settings=settings,
        metrics=metrics,
        mongo=mongo,
        broker=broker,
        publisher=publisher,
        outbox=OutboxRelay(publisher, metrics),
        consumer=consumer,
        dead_letters=dead_letters,
    )


# How long an idle client connection stays open. Longer than any Heard client keeps one pooled (httpx: 5 s, web's
# aiohttp pool: 4 s), so a client never reuses a connection just as the server closes it: with uvicorn's default
# of 5 s, equal to httpx's, notify's token checks with intake failed at once now and then ("Server disconnected"),
# and a staff member got a 503.
KEEP_ALIVE_SECONDS = 30


def serve(create_app: Callable[[SettingsT], FastAPI], settings_class: type[SettingsT]) -> None:
    """The body of every service's `__main__`: validate the environment, then run the HTTP server.

    The event loop and the HTTP parser are named rather than left to uvicorn's "auto" (which falls back to asyncio and
    h11 without a word when uvloop or httptools is missing): libuv's loop and the C parser spend less CPU on each
    request, socket write and Kafka or MongoDB round trip (web: about 10% less CPU per form post; in the scale bench
    the difference was within its run-to-run noise, see bench/platform in the README).
    """
    import uvicorn

    settings = load_settings(settings_class)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        loop="uvloop",
        http="httptools",
    )
