"""`python -m heard_web`: validates HEARD_WEB_* settings and serves the pages, /metrics and the health checks."""

from __future__ import annotations

from heard_shared.runtime import serve
from heard_web.bootstrap import create_app
from heard_web.config import WebSettings


def main() -> None:
    serve(create_app, WebSettings)


if __name__ == "__main__":
    main()
