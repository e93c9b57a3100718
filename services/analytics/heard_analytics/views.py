"""HTTP surface of analytics: the transparency pages, the JSON API and the open-data downloads. Thin: parse the
filters, ask the service, render."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse

from heard_analytics import figures, i18n, opendata, pages
from heard_analytics.cube import ALL
from heard_analytics.records import Release
from heard_analytics.service import AnalyticsService
from heard_shared.http import ApiError

STATIC = Path(__file__).resolve().parent / "static"
Year = Annotated[int | None, Query(description="Calendar year of submission; the latest year with data if omitted.")]
Area = Annotated[str, Query(description="`all`, a precinct (`north`) or `precinct/neighbourhood`.")]
Kind = Annotated[str, Query(description="`all` or a kind of feedback (`complaint`, `praise`, …).")]
Language = Annotated[str, Query(pattern="^(en|es)$", description="Page language.")]


def build_router(service: AnalyticsService, *, public_id_key: bytes) -> APIRouter:
    router = APIRouter()
    rules = service.rules

    def filters(year: int | None, area: str, kind: str) -> figures.Filters:
        try:
            return figures.validate(figures.Filters(year or service.default_year(), area, kind), service.areas)
        except figures.FilterError as error:
            raise ApiError(400, "invalid_filter", str(error)) from None

    async def load(year: int | None, area: str, kind: str) -> figures.Report:
        return await service.report(filters(year, area, kind))

    @router.get("/v1/transparency", tags=["transparency"], summary="Every public figure for a year, area and kind")
    async def transparency_json(year: Year = None, area: Area = ALL, kind: Kind = ALL) -> JSONResponse:
        report = await load(year, area, kind)
        body: dict[str, Any] = {
            "filters": {"year": report.filters.year, "area": report.filters.area, "kind": report.filters.kind},
            "generated_at": report.generated_at.isoformat(),
            "open_items": opendata.json_value(report.open_items, rules),
            "threshold": rules.threshold,
            "min_items_for_statistics": rules.min_items,
            "tables": {
                table.id: {
                    "title": table.title,
                    "rows": [
                        {column.name: opendata.json_value(row.get(column.name), rules) for column in table.columns}
                        for row in table.rows
                    ],
                }
                for table in report.tables.values()
            },
        }
        return JSONResponse(body, headers={"Cache-Control": "no-cache"})

    @router.get("/v1/transparency/items.csv", tags=["transparency"], summary="Every item, one row each (bulk)")
    async def items_csv(year: Year = None) -> StreamingResponse:
        if year is not None:
            filters(year, ALL, ALL)  # the same range check as every view
        years = [year] if year is not None else service.index.known_years()

        async def releases() -> AsyncIterator[Release]:
            for each in years:
                yield await service.item_release(each, key=public_id_key)

        return StreamingResponse(
            opendata.items_csv(releases()),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="heard-items.csv"'},
        )

    @router.get("/v1/transparency/datapackage.json", tags=["transparency"], summary="Frictionless data package")
    async def datapackage(request: Request, year: Year = None, area: Area = ALL, kind: Kind = ALL) -> JSONResponse:
        report = await load(year, area, kind)
        query = "?" + "&".join(f"{k}={v}" for k, v in report.filters.query().items())
        base = str(request.base_url).rstrip("/")
        return JSONResponse(opendata.datapackage(report.tables.values(), rules, base_url=base, query=query))

    @router.get("/v1/transparency/{table}.csv", tags=["transparency"], summary="One view as CSV, same filters")
    async def table_csv(table: str, year: Year = None, area: Area = ALL, kind: Kind = ALL) -> PlainTextResponse:
        report = await load(year, area, kind)
        if table not in report.tables:
            raise ApiError(404, "unknown_table", f"No table {table!r}; one of {', '.join(report.tables)}.")
        name = f"heard-{table}-{report.filters.year}-{report.filters.area.replace('/', '-')}-{report.filters.kind}.csv"
        return PlainTextResponse(
            opendata.table_csv(report.tables[table], rules),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @router.get("/transparency", response_class=HTMLResponse, tags=["pages"], summary="The public transparency page")
    async def transparency_page(
        year: Year = None, area: Area = ALL, kind: Kind = ALL, lang: Language = i18n.DEFAULT_LANGUAGE
    ) -> HTMLResponse:
        report = await load(year, area, kind)
        years = sorted({*service.index.known_years(), report.filters.year}, reverse=True)
        html = pages.render_transparency(report, language=lang, areas=service.areas, rules=rules, years=years)
        return HTMLResponse(html, headers={"Content-Language": lang})

    @router.get("/transparency/methodology", response_class=HTMLResponse, tags=["pages"], summary="Methodology")
    async def methodology(lang: Language = i18n.DEFAULT_LANGUAGE) -> HTMLResponse:
        return HTMLResponse(pages.render_static_page("methodology", language=lang, rules=rules))

    @router.get("/transparency/data-dictionary", response_class=HTMLResponse, tags=["pages"], summary="Data dictionary")
    async def dictionary(request: Request, lang: Language = i18n.DEFAULT_LANGUAGE) -> HTMLResponse:
        report = await load(None, ALL, ALL)
        package = opendata.datapackage(report.tables.values(), rules, base_url="", query="")
        return HTMLResponse(pages.render_static_page("data-dictionary", language=lang, rules=rules, package=package))

    @router.get("/static/analytics/transparency.css", include_in_schema=False)
    async def stylesheet() -> Response:
        return Response(
            (STATIC / "transparency.css").read_bytes(),
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    return router
