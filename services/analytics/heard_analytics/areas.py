"""The areas of the public record: precincts (shapes from precincts.geojson) and their neighbourhoods (population.yaml).

An item's place is decided once, when analytics first sees it: its coordinates pick the precinct when they fall
inside one, else its neighbourhood's precinct does. Only neighbourhood names listed in the population file are kept
(matched without regard to case); anything else a resident typed becomes "unspecified". Coordinates are used for
this decision only and never stored, so nothing finer than a neighbourhood reaches the read model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import shapely
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from heard_shared.events import PublicLocation

UNKNOWN_PRECINCT = "unknown"
UNSPECIFIED = "unspecified"
CITY = "all"


class AreaFileError(SystemExit):
    """Stops start-up with the file and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrecinctPopulation(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=120)]
    # No ".", "$" or "|": names become parts of cell ids and document keys.
    neighbourhoods: dict[Annotated[str, Field(pattern=r"^[^.$|/]{1,120}$")], Annotated[int, Field(ge=0)]]


class PopulationFile(_Strict):
    city: Annotated[str, Field(min_length=1, max_length=120)]
    source: Annotated[str, Field(min_length=1)]
    year: int
    precincts: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")], PrecinctPopulation]


@dataclass(frozen=True)
class Place:
    precinct: str
    neighbourhood: str


@dataclass(frozen=True)
class Precinct:
    id: str
    name: str
    neighbourhoods: tuple[str, ...]
    population: int
    geometry: BaseGeometry | None


class Areas:
    """Every public area, in the order the page lists them, with populations and shapes."""

    def __init__(self, population: PopulationFile, shapes: dict[str, BaseGeometry]) -> None:
        self.city = population.city
        self.source = population.source
        self.population_year = population.year
        self.precincts: dict[str, Precinct] = {
            pid: Precinct(
                id=pid,
                name=p.name,
                neighbourhoods=tuple(p.neighbourhoods),
                population=sum(p.neighbourhoods.values()),
                geometry=shapes.get(pid),
            )
            for pid, p in population.precincts.items()
        }
        self._neighbourhood_population = {
            name: count for p in population.precincts.values() for name, count in p.neighbourhoods.items()
        }
        self._precinct_of = {
            name.casefold(): (pid, name) for pid, p in self.precincts.items() for name in p.neighbourhoods
        }
        for geometry in shapes.values():
            shapely.prepare(geometry)

    @classmethod
    def load(cls, population_file: Path, areas_file: Path) -> Areas:
        try:
            raw = yaml.safe_load(population_file.read_text())
            population = PopulationFile.model_validate(raw)
        except (OSError, yaml.YAMLError, ValidationError) as error:
            raise AreaFileError(f"{population_file}: {error}") from error
        try:
            features = json.loads(areas_file.read_text())["features"]
            shapes = {str(f["properties"]["area"]): shape(f["geometry"]) for f in features}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise AreaFileError(f"{areas_file}: not a FeatureCollection with an `area` property: {error}") from error
        if unknown := set(shapes) - set(population.precincts):
            raise AreaFileError(f"{population_file}: no population for precinct(s) {sorted(unknown)} of {areas_file}")
        return cls(population, shapes)

    @property
    def city_population(self) -> int:
        return sum(p.population for p in self.precincts.values())

    def locate(self, location: PublicLocation | None) -> Place:
        neighbourhood = None
        if location is not None and location.neighbourhood:
            neighbourhood = self._precinct_of.get(location.neighbourhood.strip().casefold())
        precinct = None
        if location is not None and location.latitude is not None and location.longitude is not None:
            point = Point(location.longitude, location.latitude)
            precinct = next((p.id for p in self.precincts.values() if p.geometry and p.geometry.covers(point)), None)
        if precinct is None and neighbourhood is not None:
            precinct = neighbourhood[0]
        if precinct is None:
            return Place(UNKNOWN_PRECINCT, UNSPECIFIED)
        # A neighbourhood outside the precinct its coordinates fall in would break the area hierarchy.
        name = neighbourhood[1] if neighbourhood is not None and neighbourhood[0] == precinct else UNSPECIFIED
        return Place(precinct, name)

    def population(self, precinct: str, neighbourhood: str | None = None) -> int | None:
        """Residents of an area, or None where the file has no figure (unknown precinct, unspecified place)."""
        if precinct == CITY:
            return self.city_population
        if neighbourhood is None:
            found = self.precincts.get(precinct)
            return found.population if found else None
        return self._neighbourhood_population.get(neighbourhood)

    def precinct_ids(self) -> list[str]:
        """Configured precincts, then the bucket for items whose place is unknown."""
        return [*self.precincts, UNKNOWN_PRECINCT]

    def neighbourhoods_of(self, precinct: str) -> list[str]:
        found = self.precincts.get(precinct)
        return [*(found.neighbourhoods if found else ()), UNSPECIFIED]

    def name(self, precinct: str) -> str:
        found = self.precincts.get(precinct)
        return found.name if found else precinct
