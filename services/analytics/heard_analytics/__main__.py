"""`python -m heard_analytics`: validates HEARD_ANALYTICS_* settings and serves the API, consumers and /metrics."""

from __future__ import annotations

from heard_analytics.bootstrap import create_app
from heard_analytics.config import AnalyticsSettings
from heard_shared.runtime import serve


def main() -> None:
    serve(create_app, AnalyticsSettings)


if __name__ == "__main__":
    main()
