"""HEARD_WEB_* settings: where the other services are, how staff sessions behave, what the city looks like."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, Field, field_validator
from pydantic_settings import SettingsConfigDict

from heard_shared.settings import ServiceSettings

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
RIVERTON_NEIGHBOURHOODS = (
    "Downtown",
    "Millbrook",
    "Northgate",
    "Oak Flats",
    "Old Town",
    "Riverside Heights",
    "Southport",
)


class WebSettings(ServiceSettings):
    """Web owns no feedback: it reads and changes it only through intake's and notify's APIs.

    Its one collection holds staff sessions (`MONGODB_URI`/`MONGODB_DATABASE`), so a session survives a
    restart and any replica can serve it. The Kafka settings it inherits are unused.
    """

    model_config = SettingsConfigDict(env_prefix="HEARD_WEB_", extra="ignore", frozen=True)

    http_port: int = 8080
    intake_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8081")
    notify_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8083")
    routing_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8082")
    # The public transparency page is analytics'; the site only links to it.
    transparency_url: str = "http://127.0.0.1:8084/"
    backend_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    backend_max_connections: Annotated[int, Field(ge=1, le=1000)] = 100
    # Staff sessions: signed out after this long without a request, and after `session_max_age` in any case.
    session_idle_timeout: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(minutes=30)
    session_max_age: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(hours=12)
    # `auto`: Secure cookies (and the __Host- prefix) when the request arrived over TLS, as seen directly or
    # through X-Forwarded-Proto from a trusted proxy (uvicorn's FORWARDED_ALLOW_IPS).
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    city_name: str = "Riverton"
    timezone: str = "America/Chicago"
    neighbourhoods: tuple[str, ...] = RIVERTON_NEIGHBOURHOODS
    areas_file: Path = CONFIG_DIR / "precincts.geojson"
    oversight_board_unit: str = "oversight-board"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as America/Chicago)") from None
        return value

    @field_validator("areas_file")
    @classmethod
    def _areas_file_exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"{value} does not exist (a GeoJSON FeatureCollection of the city's areas)")
        return value

    def base(self, url: AnyHttpUrl) -> str:
        return str(url).rstrip("/")
