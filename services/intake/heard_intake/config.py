from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from heard_shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HEARD_INTAKE_", extra="ignore", frozen=True)

    http_port: int = 8081
    event_source: str = "urn:heard:intake"
    public_base_url: str = "http://127.0.0.1:8081"
    bootstrap_admin_token: str = ""
    max_request_bytes: int = 64 * 1024
    # Requests served at once by one process; more get 503 with Retry-After (operations endpoints excepted).
    max_in_flight_requests: Annotated[int, Field(ge=1)] = 256
    # Privacy. `production` refuses to start without HEARD_INTAKE_CONTACT_KEYS; `development` (make up, the
    # tests) falls back to a well-known key so a laptop needs no secret.
    environment: Literal["production", "development"] = "production"
    contact_keys: SecretStr = Field(
        default=SecretStr(""), description="Comma-separated Fernet keys: the first encrypts, all decrypt."
    )
    contact_retention_days: Annotated[float, Field(ge=0)] = 365
    retention_check_seconds: Annotated[float, Field(gt=0)] = 3600
    # Session uploads (many items as CSV or a JSON array) may be larger than a single submission.
    max_upload_bytes: Annotated[int, Field(ge=1024)] = 2 * 1024 * 1024
    session_max_items: Annotated[int, Field(ge=1, le=5000)] = 500
    # City systems allowed to publish on feedback.inbound: CloudEvents `source` URI -> display name, as JSON.
    # More can be registered at run time in the `city_systems` collection.
    city_systems: dict[str, str] = Field(default_factory=dict)
    # Open311 GeoReport v2.
    open311_services_file: str = Field(default="", description="YAML/JSON list of services; built-in list if empty.")
    open311_jurisdiction_id: str = ""
    open311_agency_name: str = "Riverton Police Department"
    open311_max_requests: Annotated[int, Field(ge=1, le=10_000)] = 1000
    open311_default_days: Annotated[int, Field(ge=1, le=365)] = 90
    # Per-client-IP token buckets for the public endpoints; `burst` requests at once, then `per_second`.
    rate_limit_enabled: bool = True
    rate_limit_write_burst: Annotated[int, Field(ge=1)] = 20
    rate_limit_write_per_second: Annotated[float, Field(gt=0)] = 0.5
    rate_limit_read_burst: Annotated[int, Field(ge=1)] = 120
    rate_limit_read_per_second: Annotated[float, Field(gt=0)] = 10.0
    rate_limit_max_clients: Annotated[int, Field(ge=100)] = 100_000
