"""`python -m heard_intake`: validates HEARD_INTAKE_* settings and serves the API, consumers and /metrics."""

from __future__ import annotations

from heard_intake.bootstrap import create_app
from heard_intake.config import IntakeSettings
from heard_shared.runtime import serve


def main() -> None:
    serve(create_app, IntakeSettings)


if __name__ == "__main__":
    main()
