from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from heard_shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HEARD_INTAKE_", extra="ignore", frozen=True)

    http_port: int = 8081
    event_source: str = "urn:heard:intake"
    public_base_url: str = "http://127.0.0.1:8081"
    bootstrap_admin_token: str = ""
    max_request_bytes: int = 64 * 1024
