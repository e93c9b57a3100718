from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from heard_shared.settings import ServiceSettings

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"


class AnalyticsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HEARD_ANALYTICS_", extra="ignore", frozen=True)

    http_port: int = 8084
    population_file: Path = CONFIG_DIR / "population.yaml"
    areas_file: Path = CONFIG_DIR / "precincts.geojson"
    # Counts below this are published as "<threshold>"; statistics need `min_items_for_statistics` items.
    suppression_threshold: Annotated[int, Field(ge=1)] = 10
    min_items_for_statistics: Annotated[int, Field(ge=1)] = 20
    # Keys the public item ids of the bulk download (a keyed hash of Heard's ids). Set it in production.
    public_id_key: str = Field(default="heard-development-public-id-key", min_length=16)

    @model_validator(mode="after")
    def _minimum_covers_threshold(self) -> AnalyticsSettings:
        if self.min_items_for_statistics < self.suppression_threshold:
            raise ValueError("MIN_ITEMS_FOR_STATISTICS must be at least SUPPRESSION_THRESHOLD")
        return self
