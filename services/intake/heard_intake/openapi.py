"""Exports intake's OpenAPI document to `schemas/openapi/intake.json`, the published HTTP contract.

`python -m heard_intake.openapi write` refreshes the file; `check` exits 1 when it differs from the
code. A contract test runs the same comparison, so the published document cannot drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from heard_intake.bootstrap import create_app
from heard_intake.config import IntakeSettings

OPENAPI_FILE = Path(__file__).resolve().parents[3] / "schemas" / "openapi" / "intake.json"


def openapi_document() -> dict[str, Any]:
    # Building the app connects to nothing: clients connect lazily and the lifespan never runs here.
    # Development mode only so no contact key is needed to describe the API.
    app = create_app(IntakeSettings(environment="development", log_json=False, log_level="WARNING"))
    return app.openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "write"
    expected = render(openapi_document())
    if command == "write":
        OPENAPI_FILE.parent.mkdir(parents=True, exist_ok=True)
        OPENAPI_FILE.write_text(expected, encoding="utf-8")
        print(f"wrote {OPENAPI_FILE}")
        return 0
    if command == "check":
        current = OPENAPI_FILE.read_text(encoding="utf-8") if OPENAPI_FILE.exists() else ""
        if current != expected:
            print(f"{OPENAPI_FILE} is out of date: run `python -m heard_intake.openapi write`", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m heard_intake.openapi [write|check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
