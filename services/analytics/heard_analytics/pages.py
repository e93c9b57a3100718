"""The public transparency pages, rendered on the server (Jinja2) in English or Spanish; no JavaScript needed."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_datetime
from babel.numbers import format_decimal, format_percent
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from heard_analytics import charts, histogram, i18n
from heard_analytics.areas import Areas
from heard_analytics.cube import ALL
from heard_analytics.figures import ANY_ALLEGATION, FUNNEL, Filters, Report, area_choices
from heard_analytics.i18n import N_
from heard_analytics.privacy import PrivacyRules, Published
from heard_shared.allegations import ALLEGATIONS

LOCALES = {"en": "en_US", "es": "es_US"}

STAGE_LABELS = {
    "submitted": N_("Submitted"),
    "acknowledged": N_("Acknowledged"),
    "answered": N_("Answered"),
    "escalated_1": N_("Escalated to a supervisor"),
    "escalated_2": N_("Escalated to a commander"),
    "escalated_3": N_("Escalated to professional standards"),
    "board": N_("Reached the civilian oversight board"),
    "closed": N_("Closed with an answer"),
}
KIND_LABELS = {
    ALL: N_("All kinds"),
    "complaint": N_("Complaints"),
    "concern": N_("Concerns"),
    "question": N_("Questions"),
    "suggestion": N_("Suggestions"),
    "praise": N_("Praise"),
}
CATEGORY_LABELS = {
    ALL: N_("All categories"),
    "conduct": N_("Officer conduct"),
    "response_time": N_("Response time"),
    "traffic": N_("Traffic"),
    "parking": N_("Parking"),
    "speeding": N_("Speeding"),
    "other": N_("Other category"),
    "none": N_("No category"),
}
LEVEL_LABELS = (
    N_("Assigned unit"),
    N_("Supervisor"),
    N_("Commander"),
    N_("Professional standards"),
    N_("Civilian oversight board"),
)
ACTION_LABELS = {"acknowledge": N_("Acknowledge"), "answer": N_("Answer")}
OTHER_LABELS = {
    "contested": N_("Answers contested by the resident"),
    "contest_answered_again": N_("Contested, then answered again"),
    "contest_withdrawn": N_("Contested, then withdrawn"),
    "contest_pending": N_("Contested, still waiting"),
    "withdrawn": N_("Withdrawn by the resident"),
    "triaged": N_("Kind and severity confirmed or changed by a person (triage)"),
    "lowered_at_triage": N_("Severity lowered at triage"),
    "session_items": N_("Gathered at public feedback sessions"),
    "session_answered": N_("Session items answered"),
}
BASE_LABELS = {
    "answered": N_("of answered items"),
    "contested": N_("of contested answers"),
    "submitted": N_("of all items"),
    "session_items": N_("of session items"),
    "triaged": N_("of triaged items"),
}
AREA_SPECIAL = {"Unspecified neighbourhood": N_("Unspecified neighbourhood"), "Place not given": N_("Place not given")}


class Formatter:
    """Turns published figures into text for one language; suppressed figures say why, never a number."""

    def __init__(self, language: str, rules: PrivacyRules) -> None:
        self.language = language
        self.locale = LOCALES[language]
        self.rules = rules
        self.gettext: Callable[[str], str] = i18n.translations(language).gettext

    def suppressed(self, value: Published) -> str | None:
        if value.status == "below_threshold":
            return self.rules.below_label
        if value.status == "withheld":
            return self.gettext("withheld")
        if value.status == "too_few":
            return self.gettext("too few")
        return None

    def count(self, value: Published | None) -> str:
        if value is None:
            return ""
        hidden = self.suppressed(value)
        return hidden if hidden is not None else format_decimal(value.value or 0, format="#,##0", locale=self.locale)

    def percent(self, value: Published | None) -> str:
        if value is None:
            return ""
        hidden = self.suppressed(value)
        if hidden is not None:
            return hidden
        text = format_percent(value.value or 0, format="#,##0%", locale=self.locale)
        return {"at_least": "≥ ", "below": "< "}.get(value.bound or "", "") + text

    def days(self, value: Published | None) -> str:
        if value is None:
            return ""
        hidden = self.suppressed(value)
        if hidden is not None:
            return hidden
        number = value.value or 0.0
        return self.gettext("%(days)s days") % {"days": format_decimal(number, format="#,##0.0", locale=self.locale)}

    def number(self, value: Published | None, pattern: str = "#,##0.0") -> str:
        if value is None:
            return ""
        hidden = self.suppressed(value)
        return hidden if hidden is not None else format_decimal(value.value or 0, format=pattern, locale=self.locale)

    def ratio(self, value: Published | None) -> str:
        text = self.number(value, "#,##0.00")
        return text + "×" if value is not None and value.number() is not None else text

    def moment(self, value: Any) -> str:
        return format_datetime(value, format="medium", locale=self.locale)


@cache
def environment(language: str) -> Environment:
    env = Environment(
        loader=PackageLoader("heard_analytics", "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def url(path: str, filters: Filters | None, language: str, **changes: Any) -> str:
    query = filters.query(**changes) if filters is not None else {}
    if language != i18n.DEFAULT_LANGUAGE:
        query["lang"] = language
    return f"{path}?{urlencode(query)}" if query else path


def render_transparency(report: Report, *, language: str, areas: Areas, rules: PrivacyRules, years: list[int]) -> str:
    fmt = Formatter(language, rules)
    _ = fmt.gettext
    f = report.filters
    tables = report.tables

    funnel_rows = tables["funnel"].rows
    funnel_chart = charts.bars(
        "funnel-chart",
        _("Items reaching each stage"),
        _("Bar chart of the number of items that reached each stage; the table beside it has the figures."),
        [charts.Bar(_(STAGE_LABELS[r["stage"]]), r["items"], fmt.count(r["items"])) for r in funnel_rows],
    )
    trend_rows = tables["trend"].rows
    trend_chart = charts.columns(
        "trend-chart",
        _("Items submitted each month"),
        _("Column chart of the items submitted each month; the table beside it has the figures."),
        [charts.Bar(r["month"][5:], r["items"], fmt.count(r["items"])) for r in trend_rows],
    )
    area_rows = {r["area"]: r for r in tables["areas"].rows}
    regions = [
        charts.Region(
            key=p.id,
            name=p.name,
            geometry=p.geometry,
            value=area_rows[p.id]["items_per_1000_residents"],
            display=fmt.number(area_rows[p.id]["items_per_1000_residents"]),
            href=url("/transparency", f, language, area=p.id),
        )
        for p in areas.precincts.values()
        if p.geometry is not None
    ]
    map_chart = charts.choropleth(
        "area-map",
        _("Items per 1,000 residents, by precinct"),
        _(
            "Map of the precincts shaded by items per 1,000 residents; hatched precincts have too few items to "
            "show. The table beside it has the figures."
        ),
        regions,
        lambda i: (_("fewer"), _("more"), _("not shown"))[i],
    )
    context = {
        "lang": language,
        "other_lang": "es" if language == "en" else "en",
        "fmt": fmt,
        "f": f,
        "r": report,
        "tables": tables,
        "years": years,
        "area_choices": [(key, AREA_SPECIAL.get(name, name), depth) for key, name, depth in area_choices(areas)],
        "kind_labels": KIND_LABELS,
        "category_labels": CATEGORY_LABELS,
        "stage_labels": STAGE_LABELS,
        "level_labels": LEVEL_LABELS,
        "action_labels": ACTION_LABELS,
        "other_labels": OTHER_LABELS,
        "base_labels": BASE_LABELS,
        # The contract's list carries both languages; "any" is the page's own row.
        "allegation_labels": {
            ANY_ALLEGATION: _("Any allegation"),
            **{a.code: a.label_es if language == "es" else a.label_en for a in ALLEGATIONS},
        },
        "area_special": AREA_SPECIAL,
        "funnel_chart": funnel_chart,
        "trend_chart": trend_chart,
        "map_chart": map_chart,
        "funnel_stages": FUNNEL,
        "url": lambda path, **changes: url(path, f, language, **changes),
        "csv": lambda table: url(f"/v1/transparency/{table}.csv", f, i18n.DEFAULT_LANGUAGE),
        "language_url": url("/transparency", f, "es" if language == "en" else "en"),
        "rules": rules,
    }
    return environment(language).get_template("transparency.html").render(context)


def render_static_page(name: str, *, language: str, rules: PrivacyRules, **extra: Any) -> str:
    fmt = Formatter(language, rules)
    context = {
        "lang": language,
        "other_lang": "es" if language == "en" else "en",
        "rules": rules,
        "fmt": fmt,
        "histogram_error": f"{histogram.RELATIVE_ERROR:.0%}",
        "language_url": url(f"/transparency/{name}", None, "es" if language == "en" else "en"),
        "url": lambda path, **changes: url(path, None, language),
        **extra,
    }
    return environment(language).get_template(f"{name}.html").render(context)


def markup(text: str) -> Markup:
    return Markup(text)
