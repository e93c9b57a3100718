from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from heard_shared.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HEARD_NOTIFY_", extra="ignore", frozen=True)

    http_port: int = 8083
