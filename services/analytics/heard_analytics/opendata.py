"""Open data: every view as CSV (with the view's filters), the item-level bulk CSV, and the Frictionless data package.

Suppressed cells are written as "<10" (below the threshold), "withheld" (complementary suppression) or "too_few"
(a statistic on fewer items than the minimum). A share given only as a bound is written with its sign (">=0.96",
"<0.04"). Table Schema declares those strings as missing values, so tools read them as "not published".
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any

from heard_analytics import facts as domain
from heard_analytics import histogram
from heard_analytics.figures import DAY, Column, Table
from heard_analytics.privacy import PrivacyRules, Published

LICENSE = {"name": "ODC-PDDL-1.0", "path": "https://opendatacommons.org/licenses/pddl/", "title": "Public Domain"}


def missing_values(rules: PrivacyRules) -> list[str]:
    return ["", rules.below_label, "withheld", "too_few"]


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

ITEM_COLUMNS: tuple[Column, ...] = (
    Column("id", "string", "A stable public identifier of the item (not the id used inside Heard).", published=False),
    Column("submitted_on", "date", "Day of submission (UTC).", published=False),
    Column("precinct", "string", "Precinct, or 'unknown'.", published=False),
    Column("neighbourhood", "string", "Neighbourhood, or 'unspecified'.", published=False),
    Column("kind", "string", "Kind of feedback.", enum=domain.KINDS, published=False),
    Column("category", "string", "Category.", enum=domain.CATEGORIES, published=False),
    Column("severity", "string", "Severity decided at intake.", enum=tuple(domain.SEVERITY_RANK), published=False),
    Column("channel", "string", "How it arrived.", enum=("web", "api", "open311", "kafka", "session"), published=False),
    *(
        Column(
            f"days_to_{stage}",
            "number",
            f"Days from submission to '{stage}', if reached.",
            unit="days",
            published=False,
        )
        for stage in domain.TIMED_STAGES
    ),
    Column("highest_level", "integer", "Highest level of the escalation chain reached (0 … 4).", published=False),
    Column("contested", "integer", "1 if the resident contested an answer.", published=False),
    Column(
        "outcome",
        "string",
        "Where the item stands: open, answered (closed with an answer) or withdrawn.",
        enum=("open", "answered", "withdrawn"),
        published=False,
    ),
)


def public_id(feedback_id: str, key: bytes) -> str:
    """A keyed hash: stable across downloads, not joinable to Heard's own ids without the key."""
    return hmac.new(key, feedback_id.encode(), hashlib.sha256).hexdigest()[:20]


def item_row(item: dict[str, Any], key: bytes) -> list[str]:
    submitted: int = item["submitted_at"]
    reached = item.get("reached") or {}
    moments = {
        "acknowledged": item.get("acknowledged_at"),
        "answered": item.get("answered_at"),
        **{f"escalated_{level}": reached.get(str(level)) for level in domain.ESCALATION_LEVELS},
        "board": reached.get(str(domain.OVERSIGHT_BOARD_LEVEL)),
        "closed": item.get("closed_at") if item.get("resolution") == "answered" else None,
    }
    days = [
        "" if moment is None else f"{max(0.0, (moment - submitted) / 1000) / DAY:.1f}" for moment in moments.values()
    ]
    outcome = "open" if domain.is_open(item) else str(item.get("resolution", "open"))
    return [
        public_id(str(item["_id"]), key),
        domain.from_ms(submitted).date().isoformat(),
        str(item.get("precinct", "")),
        str(item.get("neighbourhood", "")),
        str(item.get("kind", "")),
        str(item.get("category", "")),
        str(item.get("severity", "")),
        str(item.get("channel", "")),
        *days,
        str(item.get("level", 0)),
        "1" if item.get("last_reopened_at") else "0",
        outcome,
    ]


async def items_csv(rows: AsyncIterator[dict[str, Any]], key: bytes) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([column.name for column in ITEM_COLUMNS])
    count = 0
    async for item in rows:
        writer.writerow(item_row(item, key))
        count += 1
        if count % 2000 == 0:
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
            "description": "Item-level records: dates, area, kind, category, severity, times to each stage and "
            "outcome. No text, no contact details, no officer, nothing finer than a neighbourhood.",
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
