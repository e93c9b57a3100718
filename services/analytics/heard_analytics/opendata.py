"""Open data: every view as CSV (with the view's filters), the item-level bulk CSV, and the Frictionless data package.

Suppressed cells are written as "<10" (below the threshold), "withheld" (complementary suppression) or "too_few"
(a statistic on fewer items than the minimum). A share given only as a bound is written with its sign (">=0.96",
"<0.04"). In the item file a value that may not be shown is "(suppressed)" (records.py). Table Schema declares those
strings as missing values, so tools read them as "not published".
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any

from heard_analytics import facts as domain
from heard_analytics import histogram, records
from heard_analytics.figures import Column, Table
from heard_analytics.privacy import PrivacyRules, Published
from heard_analytics.records import Release

LICENSE = {"name": "ODC-PDDL-1.0", "path": "https://opendatacommons.org/licenses/pddl/", "title": "Public Domain"}


def missing_values(rules: PrivacyRules) -> list[str]:
    return ["", rules.below_label, "withheld", "too_few", records.SUPPRESSED]


def cell_text(value: Any, rules: PrivacyRules) -> str:
    if value is None:
        return ""
    if isinstance(value, Published):
        if value.status == "below_threshold":
            return rules.below_label
        if value.status in ("withheld", "too_few"):
            return value.status
        number = value.value
        assert number is not None
        text = f"{int(number)}" if float(number).is_integer() and value.bound is None else f"{round(number, 4)}"
        return {"at_least": ">=", "below": "<"}.get(value.bound or "", "") + text
    return str(value)


def json_value(value: Any, rules: PrivacyRules) -> Any:
    """A figure in the JSON API: a number, or an object saying why there is none."""
    if isinstance(value, Published):
        if value.status == "shown" and value.bound is None:
            number = value.value
            assert number is not None
            return int(number) if float(number).is_integer() else round(number, 4)
        if value.status == "shown":
            return {"bound": value.bound, "value": value.value}
        return {"suppressed": value.status, "display": cell_text(value, rules)}
    return value


def table_csv(table: Table, rules: PrivacyRules) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([column.name for column in table.columns])
    for row in table.rows:
        writer.writerow([cell_text(row.get(column.name), rules) for column in table.columns])
    return out.getvalue()


# --- item level ---------------------------------------------------------------------------------------------------


def _stage_column(stage: str) -> Column:
    reached = "closed with an answer that stands" if stage == "closed" else f"'{stage}'"
    return Column(
        f"days_to_{stage}",
        "number",
        f"Days from submission to {reached}; empty if not reached, '{records.SUPPRESSED}' where it may not be shown.",
        unit="days",
        published=False,
    )


ITEM_COLUMNS: tuple[Column, ...] = (
    Column(
        "id", "string", "An identifier of the row in this download (it changes when the figures do).", published=False
    ),
    Column(
        "submitted_month",
        "string",
        "Month of submission (YYYY-MM), or only the year (YYYY) where the month may not be shown.",
        published=False,
    ),
    Column("precinct", "string", "Precinct ('unknown' if no place was given).", published=False),
    Column("neighbourhood", "string", "Neighbourhood ('unspecified' if none of the list).", published=False),
    Column("kind", "string", "Kind of feedback.", enum=domain.KINDS, published=False),
    Column("category", "string", "Category.", enum=domain.CATEGORIES, published=False),
    Column("severity", "string", "Whether intake judged it negative.", enum=records.SEVERITIES, published=False),
    *(_stage_column(stage) for stage in records.STAGES),
    Column(
        "outcome",
        "string",
        "Where the item stands: open, answered (closed with an answer) or withdrawn.",
        enum=records.OUTCOMES,
        published=False,
    ),
)


async def items_csv(releases: AsyncIterator[Release]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([column.name for column in ITEM_COLUMNS])
    async for release in releases:
        for start in range(0, len(release.rows), 2000):
            writer.writerows(release.rows[start : start + 2000])
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


# --- Frictionless -------------------------------------------------------------------------------------------------


def table_schema(columns: Iterable[Column], rules: PrivacyRules) -> dict[str, Any]:
    fields = []
    for column in columns:
        field: dict[str, Any] = {"name": column.name, "type": column.type, "description": column.description}
        if column.unit:
            field["unit"] = column.unit
        if column.enum:
            field["constraints"] = {"enum": list(column.enum)}
        if column.published and column.type == "number":
            # Shares given as bounds (">=0.96") are text: such columns are strings with a pattern.
            field["type"] = "string"
            field["format"] = "default"
            field["constraints"] = {"pattern": r"(>=|<)?[0-9]+(\.[0-9]+)?"}
        fields.append(field)
    return {"fields": fields, "missingValues": missing_values(rules)}


def datapackage(tables: Iterable[Table], rules: PrivacyRules, *, base_url: str, query: str) -> dict[str, Any]:
    resources = [
        {
            "name": table.id,
            "title": table.title,
            "description": table.description,
            "path": f"{base_url}/v1/transparency/{table.id}.csv{query}",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": table_schema(table.columns, rules),
        }
        for table in tables
    ]
    resources.append(
        {
            "name": "items",
            "title": "Every item, one row each",
            "description": "Item-level records: month, area, kind, category, severity, times to each stage and "
            "outcome. No text, no contact details, no officer, nothing finer than a neighbourhood; each value "
            f"is generalised or shown as '{records.SUPPRESSED}' so that no count the tables withhold can be "
            f"recounted from the rows, and every combination of place, time, kind, category, severity and "
            f"outcome is shared by at least {rules.threshold} rows (see the methodology page).",
            "path": f"{base_url}/v1/transparency/items.csv",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": table_schema(ITEM_COLUMNS, rules),
        }
    )
    return {
        "profile": "tabular-data-package",
        "name": "heard-transparency",
        "title": "Heard: how the police department listens and answers",
        "description": "Public statistics of community feedback to the police department. Counts below "
        f"{rules.threshold} are shown as '{rules.below_label}'; see the methodology page.",
        "licenses": [LICENSE],
        "homepage": f"{base_url}/transparency/methodology",
        "resources": resources,
        "histogram_resolution": f"durations within ±{histogram.RELATIVE_ERROR:.0%}",
    }
