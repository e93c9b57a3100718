"""`python -m heard_routing`: validates HEARD_ROUTING_* settings and serves the API, consumers and /metrics."""

from __future__ import annotations

from heard_routing.bootstrap import create_app
from heard_routing.config import RoutingSettings
from heard_shared.runtime import serve


def main() -> None:
    serve(create_app, RoutingSettings)


if __name__ == "__main__":
    main()
