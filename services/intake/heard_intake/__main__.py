from __future__ import annotations

import uvicorn

from heard_intake.bootstrap import create_app
from heard_intake.config import IntakeSettings
from heard_shared.settings import load_settings


def main() -> None:
    settings = load_settings(IntakeSettings)
    uvicorn.run(
        create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None, access_log=False
    )


if __name__ == "__main__":
    main()
