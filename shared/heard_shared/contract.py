"""Generates the published contract from the code: one JSON Schema per event type and an AsyncAPI document.

`python -m heard_shared.contract write` refreshes `schemas/`; `check` exits 1 when the files differ from
the code (the contract test runs the same comparison).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from heard_shared import topics
from heard_shared.events import CLOUDEVENTS_CONTENT_TYPE, EVENT_SPECS, CloudEvent, EventSpec

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
SCHEMA_BASE_URI = "https://schemas.heard.example/events"


def event_schema(spec: EventSpec[Any]) -> dict[str, Any]:
    schema = CloudEvent[spec.data_model].model_json_schema()  # type: ignore[name-defined]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{SCHEMA_BASE_URI}/{spec.event_type}.json"
    schema["title"] = spec.event_type
    schema["description"] = spec.summary
    schema["properties"]["type"] = {"const": spec.event_type, "type": "string"}
    return schema


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in EVENT_SPECS.values():
        name = spec.event_type.removeprefix("org.heard.").replace(".", "_")
        messages[name] = {
            "name": spec.event_type,
            "title": spec.event_type,
            "summary": spec.summary,
            "contentType": CLOUDEVENTS_CONTENT_TYPE,
            "headers": {"type": "object", "properties": {"content-type": {"const": CLOUDEVENTS_CONTENT_TYPE}}},
            "bindings": {"kafka": {"key": {"type": "string", "description": "The feedback id (CloudEvents subject)."}}},
            "payload": {"$ref": f"./events/{spec.event_type}.json"},
        }
        channels[spec.topic] = {
            "address": spec.topic,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {"kafka": {"partitions": topics.PARTITIONS}},
        }
        operations[f"publish_{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{spec.topic}"},
            "summary": spec.summary,
        }
    channels[topics.DEAD_LETTER] = {
        "address": topics.DEAD_LETTER,
        "description": "Messages no consumer could process: original value, key and headers byte for byte, plus "
        "dlq.reason.code, dlq.reason, dlq.source.topic, dlq.source.partition, dlq.source.offset, "
        "dlq.consumer.group, dlq.service and dlq.failed_at headers.",
    }
    channels[topics.INBOUND_DEAD_LETTER] = {
        "address": topics.INBOUND_DEAD_LETTER,
        "description": "Dead letters from feedback.inbound, same headers; kept apart because the original bytes may "
        "hold contact details, which travel nowhere but intake's own topics.",
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Heard events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 in structured JSON mode, one topic per event type, keyed by feedback id. "
            "feedback.inbound also accepts the Kafka binding's binary mode (ce_ headers). source + id is the "
            "idempotency key. A breaking change is a new type version (.v2), never an edit.",
        },
        "defaultContentType": CLOUDEVENTS_CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def rendered() -> dict[Path, str]:
    files = {
        SCHEMAS_DIR / "events" / f"{spec.event_type}.json": json.dumps(event_schema(spec), indent=2, sort_keys=True)
        + "\n"
        for spec in EVENT_SPECS.values()
    }
    files[SCHEMAS_DIR / "asyncapi.yaml"] = yaml.safe_dump(asyncapi_document(), sort_keys=False, width=120)
    return files


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    stale = [path for path, text in rendered().items() if not path.exists() or path.read_text() != text]
    if command == "write":
        for path, text in rendered().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return 0
    for path in stale:
        print(f"out of date: {path} (run `make schemas`)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
