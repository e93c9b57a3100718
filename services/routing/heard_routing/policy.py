"""The department's files as validated models: SLA policy, organisation, routing rules."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from heard_routing.files import ConfigFileError, load_model, parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PS_LEVEL = 3
TOP_LEVEL = 4
LEVEL_NAMES = ("assigned unit", "supervisor", "commander", "professional standards", "civilian oversight board")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Windows(Strict):
    acknowledge: Duration
    answer: Duration


class SchedulerPolicy(Strict):
    tick: Duration = timedelta(seconds=1)
    lease: Duration = timedelta(seconds=30)
    batch: Annotated[int, Field(ge=1, le=10_000)] = 500
    overdue_grace: Duration = timedelta(seconds=60)


Level = Annotated[int, Field(ge=0, le=TOP_LEVEL)]
# Where an item starts on its chain when the policy file does not say: misconduct goes straight up.
DEFAULT_START_LEVELS: dict[str, int] = {"critical": PS_LEVEL}


class SlaPolicy(Strict):
    severities: dict[Literal["negative", "critical"], Windows]
    levels: dict[Level, Windows] = Field(default_factory=dict)
    # Items not assessed negative get a clock too: a person must triage them within this window.
    triage: Duration = timedelta(days=2)
    start_levels: dict[Literal["positive", "neutral", "negative", "critical"], Level] = Field(default_factory=dict)
    top_reminder_period: Duration
    max_referrals: Annotated[int, Field(ge=0, le=10)] = 2
    scheduler: SchedulerPolicy = SchedulerPolicy()

    @model_validator(mode="after")
    def _both_severities(self) -> SlaPolicy:
        missing = {"negative", "critical"} - set(self.severities)
        if missing:
            raise ValueError(f"severities must define {', '.join(sorted(missing))}")
        return self

    def windows(self, *, severity: str, level: int) -> Windows:
        """The severity's windows, shortened by the level's where those are shorter.

        A per-level window caps the severity's, never extends it: a critical item that starts at
        professional standards keeps its critical deadlines, and moving up never buys time.
        """
        windows = self.severities["critical" if severity == "critical" else "negative"]
        cap = self.levels.get(level)
        if cap is None:
            return windows
        return Windows(acknowledge=min(windows.acknowledge, cap.acknowledge), answer=min(windows.answer, cap.answer))

    def start_level(self, severity: str) -> int:
        """The level an item of this severity starts at: 0 (its unit) unless the policy, or the default for
        critical items (professional standards), says otherwise."""
        configured = {str(name): level for name, level in self.start_levels.items()}
        return configured.get(severity, DEFAULT_START_LEVELS.get(severity, 0))


class NamedUnit(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    name: str


class Supervisor(NamedUnit):
    command: str


class Unit(NamedUnit):
    supervisor: str


class Officer(Strict):
    badge: str
    unit: str


class Organisation(Strict):
    oversight_board: NamedUnit
    professional_standards: NamedUnit
    commands: list[NamedUnit]
    supervisors: list[Supervisor]
    units: list[Unit]
    officers: list[Officer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_exist(self) -> Organisation:
        commands = {c.id for c in self.commands}
        supervisors = {s.id for s in self.supervisors}
        units = {u.id for u in self.units}
        for s in self.supervisors:
            if s.command not in commands:
                raise ValueError(f"supervisor {s.id!r} names unknown command {s.command!r}")
        for u in self.units:
            if u.supervisor not in supervisors:
                raise ValueError(f"unit {u.id!r} names unknown supervisor {u.supervisor!r}")
        for o in self.officers:
            if o.unit not in units:
                raise ValueError(f"officer {o.badge!r} belongs to unknown unit {o.unit!r}")
        ids = [
            x.id
            for x in [*self.commands, *self.supervisors, *self.units, self.oversight_board, self.professional_standards]
        ]
        duplicates = {i for i in ids if ids.count(i) > 1}
        if duplicates:
            raise ValueError(f"ids used twice: {', '.join(sorted(duplicates))}")
        return self

    def name_of(self, unit_id: str) -> str:
        for x in [*self.commands, *self.supervisors, *self.units, self.oversight_board, self.professional_standards]:
            if x.id == unit_id:
                return x.name
        return unit_id

    def chain(self, unit_id: str) -> list[str]:
        """Levels 0..4 for a unit: itself, its supervisor, the command, professional standards, the board."""
        ps, board = self.professional_standards.id, self.oversight_board.id
        unit = next((u for u in self.units if u.id == unit_id), None)
        if unit is None:  # professional standards itself, or the board
            return [ps, ps, ps, ps, board] if unit_id == ps else [board] * 5
        supervisor = next(s for s in self.supervisors if s.id == unit.supervisor)
        return [unit.id, supervisor.id, supervisor.command, ps, board]

    def officer(self, badge: str) -> Officer | None:
        return next((o for o in self.officers if o.badge == badge), None)


class RuleMatch(Strict):
    categories: list[str] = Field(default_factory=list)
    neighbourhoods: list[str] = Field(default_factory=list)
    areas: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)


class Rule(Strict):
    id: str
    match: RuleMatch
    unit: str


class RoutingRules(Strict):
    fallback_unit: str
    areas_file: str | None = None
    rules: list[Rule]


class Areas:
    """Precinct polygons from a GeoJSON file, keyed by each feature's `area` property."""

    def __init__(self, polygons: dict[str, BaseGeometry]) -> None:
        self.polygons = polygons

    @classmethod
    def load(cls, path: Path) -> Areas:
        try:
            collection: dict[str, Any] = json.loads(path.read_text())
            polygons = {f["properties"]["area"]: shape(f["geometry"]) for f in collection["features"]}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigFileError(
                f"{path}: not a GeoJSON FeatureCollection with an 'area' property: {error}"
            ) from error
        return cls(polygons)

    def containing(self, latitude: float, longitude: float) -> set[str]:
        point = Point(longitude, latitude)
        return {name for name, polygon in self.polygons.items() if polygon.covers(point)}


def load_all(*, sla: Path, organisation: Path, rules: Path) -> tuple[SlaPolicy, Organisation, RoutingRules, Areas]:
    policy = load_model(sla, SlaPolicy)
    org = load_model(organisation, Organisation)
    routing = load_model(rules, RoutingRules)
    known = {u.id for u in org.units} | {org.professional_standards.id}
    for rule in routing.rules:
        if rule.unit not in known:
            raise ConfigFileError(f"{rules}: rule {rule.id!r} routes to unknown unit {rule.unit!r}")
    if routing.fallback_unit not in known:
        raise ConfigFileError(f"{rules}: fallback_unit {routing.fallback_unit!r} is not a unit in {organisation}")
    areas = Areas.load(rules.parent / routing.areas_file) if routing.areas_file else Areas({})
    unknown_areas = {a for r in routing.rules for a in r.match.areas} - set(areas.polygons)
    if unknown_areas:
        raise ConfigFileError(f"{rules}: areas not in {routing.areas_file}: {', '.join(sorted(unknown_areas))}")
    return policy, org, routing, areas
