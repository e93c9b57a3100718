"""The public figures: every view the page, the JSON API and the CSV downloads offer, as tables of published values.

A `Table` is the single description of a view: its columns (name, type, unit, what it means) and its rows of
`Published` values. The JSON, the CSV, the page, the charts and datapackage.json are all renderings of tables,
so they cannot disagree, and nothing reaches any of them except through privacy.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from heard_analytics import privacy
from heard_analytics.areas import UNKNOWN_PRECINCT, UNSPECIFIED, Areas
from heard_analytics.cube import ALL, PublicYear, place_key
from heard_analytics.facts import CATEGORIES, ESCALATION_LEVELS, KINDS, allegation_counter
from heard_analytics.privacy import Published
from heard_shared.allegations import ALLEGATION_CODES

DAY = 86400.0
LEVEL_NAMES = ("assigned unit", "supervisor", "commander", "professional standards", "civilian oversight board")
FUNNEL: tuple[str, ...] = (
    "submitted",
    "acknowledged",
    "answered",
    *(f"escalated_{level}" for level in ESCALATION_LEVELS),
    "board",
    "closed",
)

ColumnType = Literal["string", "integer", "number", "date", "datetime"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    description: str
    unit: str | None = None
    enum: tuple[str, ...] | None = None
    # True for figures that may be withheld; their CSV cells then hold "<10", "withheld" or "too_few".
    published: bool = True


@dataclass
class Table:
    id: str
    title: str
    description: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Filters:
    year: int
    area: str = ALL
    kind: str = ALL

    def query(self, **changes: Any) -> dict[str, str]:
        values = {"year": str(self.year), "area": self.area, "kind": self.kind} | {
            k: str(v) for k, v in changes.items()
        }
        return {k: v for k, v in values.items() if not (k in ("area", "kind") and v == ALL)}


class FilterError(ValueError):
    pass


def area_choices(areas: Areas) -> list[tuple[str, str, int]]:
    """(key, name, depth) for every area a filter may select, in page order."""
    choices: list[tuple[str, str, int]] = [(ALL, f"City of {areas.city}", 0)]
    for precinct in areas.precinct_ids():
        choices.append(
            (place_key(precinct), areas.name(precinct) if precinct != UNKNOWN_PRECINCT else "Place not given", 1)
        )
        for neighbourhood in areas.neighbourhoods_of(precinct) if precinct != UNKNOWN_PRECINCT else ():
            choices.append((place_key(precinct, neighbourhood), neighbourhood, 2))
    return choices


def validate(filters: Filters, areas: Areas) -> Filters:
    if filters.area not in {key for key, _, _ in area_choices(areas)}:
        raise FilterError(f"unknown area {filters.area!r}")
    if filters.kind not in (ALL, *KINDS):
        raise FilterError(f"unknown kind {filters.kind!r}; one of {', '.join((ALL, *KINDS))}")
    if not 2000 <= filters.year <= 2200:
        raise FilterError(f"year {filters.year} is out of range")
    return filters


def _days(value: Published) -> Published:
    number = value.number()
    return Published("shown", round(number / DAY, 2)) if number is not None else value


# --- columns used by several tables ------------------------------------------------------------------------------

ITEMS = Column("items", "integer", "Feedback items submitted in the period (by submission date).")
MEDIAN_ANSWER = Column(
    "median_days_to_answer", "number", "Median time from submission to the first public answer.", unit="days"
)


def funnel(year: PublicYear, f: Filters) -> Table:
    table = Table(
        "funnel",
        "From submission to closing",
        "How many of the period's items reached each stage, and how long it took from submission.",
        (
            Column("stage", "string", "Stage of the lifecycle.", enum=FUNNEL, published=False),
            Column("items", "integer", "Items that reached the stage."),
            Column("share_of_submitted", "number", "Items that reached the stage, as a share of those submitted."),
            Column("median_days", "number", "Median time from submission to the stage.", unit="days"),
            Column("p90_days", "number", "90th percentile of the time from submission to the stage.", unit="days"),
        ),
    )
    where = {"place": f.area, "kind": f.kind}
    for stage in FUNNEL:
        timed = stage != "submitted"
        table.rows.append(
            {
                "stage": stage,
                "items": year.count(stage, **where),
                "share_of_submitted": year.share(stage, "submitted", **where) if timed else None,
                "median_days": _days(year.quantile(stage, 0.5, **where)) if timed else None,
                "p90_days": _days(year.quantile(stage, 0.9, **where)) if timed else None,
            }
        )
    return table


def deadlines(year: PublicYear, f: Filters) -> Table:
    table = Table(
        "deadlines",
        "Deadlines met",
        "Negative feedback has deadlines to acknowledge and to answer. Share met, among items whose deadline is "
        "decided (the action happened, or the deadline passed and the item was escalated).",
        (
            Column(
                "action", "string", "The action the deadline asks for.", enum=("acknowledge", "answer"), published=False
            ),
            Column("decided", "integer", "Items whose deadline for this action is decided."),
            Column("in_time", "integer", "Of those, items where the action happened by the deadline."),
            Column("share_in_time", "number", "in_time / decided."),
        ),
    )
    where = {"place": f.area, "kind": f.kind}
    for action, done in (("acknowledge", "acknowledged_in_time"), ("answer", "answered_in_time")):
        table.rows.append(
            {
                "action": action,
                "decided": year.count(f"{action}_due", **where),
                "in_time": year.count(done, **where),
                "share_in_time": year.share(done, f"{action}_due", **where),
            }
        )
    return table


def overdue_now(levels: Sequence[Published]) -> Table:
    table = Table(
        "overdue",
        "Overdue right now",
        "Open negative feedback past the deadline for the action it still waits for, by the level of the "
        "escalation chain responsible for it now. Every such item has been escalated.",
        (
            Column("level", "integer", "0 = assigned unit … 4 = civilian oversight board.", published=False),
            Column("level_name", "string", "Who is responsible at this level.", enum=LEVEL_NAMES, published=False),
            Column("overdue", "integer", "Items overdue now at this level."),
        ),
    )
    for level, value in enumerate(levels):
        table.rows.append({"level": level, "level_name": LEVEL_NAMES[level], "overdue": value})
    return table


def trend(year: PublicYear, f: Filters) -> Table:
    table = Table(
        "trend",
        "Month by month",
        "The same figures for the items submitted in each month.",
        (
            Column("month", "string", "Month of submission (YYYY-MM).", published=False),
            ITEMS,
            Column("answered", "integer", "Items answered."),
            Column("share_answered_in_time", "number", "Share of decided answer deadlines met."),
            MEDIAN_ANSWER,
            Column("escalated", "integer", "Items escalated at least once."),
            Column("withdrawn", "integer", "Items withdrawn by the resident."),
        ),
    )
    for month in year.months.nodes[:-1]:
        where = {"month": month, "place": f.area, "kind": f.kind}
        table.rows.append(
            {
                "month": month,
                "items": year.count("submitted", **where),
                "answered": year.count("answered", **where),
                "share_answered_in_time": year.share("answered_in_time", "answer_due", **where),
                "median_days_to_answer": _days(year.quantile("answered", 0.5, **where)),
                "escalated": year.count("escalated_1", **where),
                "withdrawn": year.count("withdrawn", **where),
            }
        )
    return table


def equity(year: PublicYear, f: Filters, areas: Areas) -> Table:
    """Every area beside the city: volume per resident, deadlines met and time to answer, with their ratios."""
    table = Table(
        "areas",
        "Area by area, beside the city",
        "Each area's figures beside the citywide figure. A ratio above 1 means more than the city (for items per "
        "1,000 residents, in the style of a Relative Rate Index), below 1 less.",
        (
            Column("area", "string", "Area key: a precinct, or precinct/neighbourhood.", published=False),
            Column("area_name", "string", "Name of the area.", published=False),
            Column("population", "integer", "Residents (from the population file).", published=False),
            ITEMS,
            Column("items_per_1000_residents", "number", "Items per 1,000 residents."),
            Column("rate_ratio_to_city", "number", "Items per resident here ÷ items per resident in the city."),
            Column("share_answered_in_time", "number", "Share of decided answer deadlines met."),
            Column("in_time_ratio_to_city", "number", "Share met here ÷ share met in the city."),
            MEDIAN_ANSWER,
            Column("median_ratio_to_city", "number", "Median time to answer here ÷ in the city."),
        ),
    )
    rules = year.rules
    kind = f.kind

    def row(key: str, name: str, population: int | None) -> dict[str, Any]:
        items = year.count("submitted", place=key, kind=kind)
        return {
            "area": key,
            "area_name": name,
            "population": population,
            "items": items,
            "items_per_1000_residents": privacy.rate_per(items, population, rules),
            "share_answered_in_time": year.share("answered_in_time", "answer_due", place=key, kind=kind),
            "median_days_to_answer": year.quantile("answered", 0.5, place=key, kind=kind),
        }

    city = row(ALL, f"City of {areas.city}", areas.city_population)
    rows = [city]
    for key, name, depth in area_choices(areas)[1:]:
        if key == place_key(UNKNOWN_PRECINCT, UNSPECIFIED):
            continue  # the same items as "place not given" itself
        precinct, _, neighbourhood = key.partition("/")
        population = areas.population(precinct, neighbourhood or None) if neighbourhood != UNSPECIFIED else None
        if precinct == UNKNOWN_PRECINCT:
            population = None
        if depth == 2 and neighbourhood == UNSPECIFIED:
            name = "Unspecified neighbourhood"
        rows.append(row(key, name if precinct != UNKNOWN_PRECINCT else "Place not given", population))
    for r in rows:
        r["rate_ratio_to_city"] = privacy.ratio(r["items_per_1000_residents"], city["items_per_1000_residents"])
        r["in_time_ratio_to_city"] = privacy.ratio(r["share_answered_in_time"], city["share_answered_in_time"])
        r["median_ratio_to_city"] = privacy.ratio(r["median_days_to_answer"], city["median_days_to_answer"])
    for r in rows:  # only once every ratio is taken on the same unit
        r["median_days_to_answer"] = _days(r["median_days_to_answer"])
    table.rows = rows
    return table


def kinds(year: PublicYear, f: Filters) -> Table:
    table = Table(
        "kinds",
        "By kind and category",
        "Each kind of feedback, then its categories (categories are published for the whole year only).",
        (
            Column("kind", "string", "Kind of feedback.", enum=(ALL, *KINDS), published=False),
            Column("category", "string", "Category, or 'all'.", enum=(ALL, *CATEGORIES), published=False),
            ITEMS,
            Column("answered", "integer", "Items answered."),
            Column("escalated", "integer", "Items escalated at least once."),
            MEDIAN_ANSWER,
        ),
    )
    kinds_shown = KINDS if f.kind == ALL else (f.kind,)
    for kind in kinds_shown:
        nodes = [(kind, ALL, kind)] + [(kind, category, f"{kind}/{category}") for category in CATEGORIES]
        for kind_name, category, node in nodes:
            where = {"place": f.area, "kind": node}
            table.rows.append(
                {
                    "kind": kind_name,
                    "category": category,
                    "items": year.count("submitted", **where),
                    "answered": year.count("answered", **where),
                    "escalated": year.count("escalated_1", **where),
                    "median_days_to_answer": _days(year.quantile("answered", 0.5, **where)),
                }
            )
    return table


def other(year: PublicYear, f: Filters) -> Table:
    """Contests and their outcomes, withdrawals, triage and the severities it lowered, public feedback sessions."""
    table = Table(
        "other",
        "Contests, withdrawals, triage and sessions",
        "Answers residents contested and what became of them; items withdrawn; items a person triaged and how many "
        "of them had their severity lowered; "
        "feedback gathered at public feedback sessions.",
        (
            Column("measure", "string", "What is counted.", published=False),
            Column("items", "integer", "How many items."),
            Column("share", "number", "As a share of the base named in `share_of`."),
            Column("share_of", "string", "The base of the share.", published=False),
        ),
    )
    where = {"place": f.area, "kind": f.kind}
    for measure, base in (
        ("contested", "answered"),
        ("contest_answered_again", "contested"),
        ("contest_withdrawn", "contested"),
        ("contest_pending", "contested"),
        ("withdrawn", "submitted"),
        ("triaged", "submitted"),
        ("lowered_at_triage", "triaged"),
        ("session_items", "submitted"),
        ("session_answered", "session_items"),
    ):
        table.rows.append(
            {
                "measure": measure,
                "items": year.count(measure, **where),
                "share": year.share(measure, base, **where),
                "share_of": base,
            }
        )
    return table


ANY_ALLEGATION = "any"


def allegations(year: PublicYear, f: Filters) -> Table:
    """Items by the misconduct residents declared; an item may declare several, so the rows do not add up."""
    table = Table(
        "allegations",
        "By allegation type",
        "Items whose resident declared each kind of misconduct (heard_shared.allegations), for the whole year. An "
        "item may declare several, so the rows add up to more than the items with any allegation.",
        (
            Column(
                "allegation",
                "string",
                "The allegation category, or `any` for items with at least one.",
                enum=(ANY_ALLEGATION, *ALLEGATION_CODES),
                published=False,
            ),
            Column("items", "integer", "How many items declared it."),
            Column("share", "number", "As a share of all items (`any`) or of the items with any allegation."),
        ),
    )
    where = {"place": f.area, "kind": f.kind}
    table.rows.append(
        {
            "allegation": ANY_ALLEGATION,
            "items": year.count("with_allegation", **where),
            "share": year.share("with_allegation", "submitted", **where),
        }
    )
    for code in ALLEGATION_CODES:
        measure = allegation_counter(code)
        table.rows.append(
            {
                "allegation": code,
                "items": year.count(measure, **where),
                "share": year.share(measure, "with_allegation", **where),
            }
        )
    return table


@dataclass
class Report:
    filters: Filters
    generated_at: datetime
    open_items: Published
    tables: dict[str, Table]


def year_views(year: PublicYear, f: Filters, areas: Areas) -> list[Table]:
    """Every view drawn from a year's suppressed copy, in page order: the same for as long as that copy is served."""
    return [
        funnel(year, f),
        deadlines(year, f),
        trend(year, f),
        equity(year, f, areas),
        kinds(year, f),
        allegations(year, f),
        other(year, f),
    ]


def report(
    views: Sequence[Table],
    f: Filters,
    *,
    overdue: Sequence[Published],
    open_items: Published,
    generated_at: datetime,
) -> Report:
    """The year's views (`year_views`) with what is overdue right now after the deadlines."""
    funnel_view, deadlines_view, *rest = views
    tables = [funnel_view, deadlines_view, overdue_now(overdue), *rest]
    return Report(f, generated_at, open_items, {t.id: t for t in tables})
