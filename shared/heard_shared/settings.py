"""Base settings: every service reads its environment under its own prefix (HEARD_<SERVICE>_)."""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Fields common to every service. Subclasses set `env_prefix` and add their own."""

    model_config = SettingsConfigDict(env_prefix="HEARD_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_replication_factor: Annotated[int, Field(ge=1)] = 1
    mongodb_uri: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = ""
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=1, le=65535)] = 8080
    log_level: str = "INFO"
    log_json: bool = True
    instance_id: str = Field(default="", description="Identifies this replica in leases and logs.")
    # Proxies whose X-Forwarded-For / -Proto are believed (addresses or networks, comma-separated; uvicorn's
    # default). The web service forwards each resident's address, so intake's per-client limits see residents.
    forwarded_allow_ips: str = "127.0.0.1,::1"


class SettingsError(SystemExit):
    pass


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Validates the environment at start-up; a bad value stops the process with a readable list."""
    try:
        return settings_class()
    except ValidationError as error:
        prefix = settings_class.model_config.get("env_prefix", "")
        lines = [
            f"  {prefix}{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']} (got {e.get('input')!r})"
            for e in error.errors()
        ]
        raise SettingsError("Invalid configuration:\n" + "\n".join(lines)) from error
