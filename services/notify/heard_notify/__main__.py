"""`python -m heard_notify`: validates HEARD_NOTIFY_* settings and serves the API, consumers and /metrics."""

from __future__ import annotations

from heard_notify.bootstrap import create_app
from heard_notify.config import NotifySettings
from heard_shared.runtime import serve


def main() -> None:
    serve(create_app, NotifySettings)


if __name__ == "__main__":
    main()
