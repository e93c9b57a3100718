"""`python -m heard_web`: validates HEARD_WEB_* settings and serves the pages, /metrics and the health checks."""

from __future__ import annotations

from heard_shared.runtime import serve
from heard_web.bootstrap import create_app
from heard_web.config import WebSettings


def main() -> None:
    # Every page is a request parsed, routed and answered in this one process, and most form posts also call
    # intake: libuv's loop and the C HTTP parser spend less of the process's CPU on each than asyncio's and h11.
    serve(create_app, WebSettings, loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
