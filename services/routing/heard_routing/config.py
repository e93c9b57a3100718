from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from heard_shared.settings import ServiceSettings

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"


class RoutingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HEARD_ROUTING_", extra="ignore", frozen=True)

    http_port: int = 8082
    event_source: str = "urn:heard:routing"
    sla_policy_file: Path = CONFIG_DIR / "sla-policy.yaml"
    organisation_file: Path = CONFIG_DIR / "organisation.yaml"
    rules_file: Path = CONFIG_DIR / "routing-rules.yaml"
    scheduler_enabled: bool = True
