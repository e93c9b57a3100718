"""The floor intake is measured against: one FastAPI endpoint that stores a submission and publishes it, nothing else.

Same web stack (FastAPI on uvicorn, one process), same MongoDB-wire server, same Kafka producer settings
(`acks=all`, idempotence, via heard_shared's `create_broker`), same pydantic validation of the body. No
severity assessment, redaction, encryption, outbox, audit ledger, tracking code or middleware.

    python bench/intake/baseline_app.py --port P --mongodb-uri URI --database DB --kafka HOST:PORT
"""

from __future__ import annotations

import argparse
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from heard_shared import topics
from heard_shared.events import FeedbackInboundV1
from heard_shared.kafka import create_broker


def build_app(*, mongodb_uri: str, database: str, kafka: str) -> FastAPI:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, directConnection=True, tz_aware=True)
    collection = client[database]["feedback"]
    broker = create_broker(kafka, client_id="bench-baseline")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            await client.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/feedback", status_code=202)
    async def submit(body: FeedbackInboundV1) -> dict[str, str]:
        feedback_id = str(uuid.uuid4())
        document = {"_id": feedback_id, **body.model_dump(exclude_none=True), "submitted_at": datetime.now(UTC)}
        await collection.insert_one(document)
        value = json.dumps({"feedback_id": feedback_id, "kind": body.kind}).encode()
        await broker.publish(value, topic=topics.SUBMITTED, key=feedback_id.encode())
        return {"feedback_id": feedback_id}

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mongodb-uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--kafka", required=True)
    args = parser.parse_args()
    app = build_app(mongodb_uri=args.mongodb_uri, database=args.database, kafka=args.kafka)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
