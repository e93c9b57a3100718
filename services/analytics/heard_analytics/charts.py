"""Charts drawn on the server as SVG: they need no JavaScript, no chart library and no request to anyone else.

Each chart is an image with a title and a description (`role="img"`, `aria-labelledby`); its numbers are in the
data table printed beside it, which is what a screen reader reads. A suppressed value is drawn as a hatched stub
with its label ("<10", "withheld"), so a chart never shows more than the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from heard_analytics.privacy import Published

HATCH = (
    '<defs><pattern id="{id}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="6" height="6" fill="#f2f2f2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#6b6b6b" '
    'stroke-width="2"/></pattern></defs>'
)
BAR_COLOUR = "#1f5f99"
# Sequential blues, light to dark; each passes 3:1 against white for the boundary it draws (WCAG 1.4.11).
SCALE = ("#c6dbef", "#8fbadb", "#4f93c6", "#2166ac", "#0b3d73")


@dataclass(frozen=True)
class Bar:
    label: str
    value: Published
    display: str


def _header(chart_id: str, title: str, description: str, width: int, height: int, role: str = "img") -> str:
    """`role="img"` hides the drawing's parts from assistive technology; a chart with links is a named `group`
    instead (an image's children are presentational, so links inside one would be nested interactive content)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="{role}" class="chart" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{chart_id}-title">{escape(title)}</title><desc id="{chart_id}-desc">{escape(description)}</desc>'
        + HATCH.format(id=f"{chart_id}-hatch")
    )


def bars(chart_id: str, title: str, description: str, rows: Sequence[Bar]) -> Markup:
    """Horizontal bars, one per row, labelled on the left and valued on the right."""
    label_width, bar_width, row_height = 190, 300, 30
    width, height = label_width + bar_width + 90, row_height * len(rows) + 10
    top = max([bar.value.number() or 0.0 for bar in rows] + [1.0])
    parts = [_header(chart_id, title, description, width, height)]
    for i, bar in enumerate(rows):
        y = 5 + i * row_height
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 19}" text-anchor="end" class="chart-label">{escape(bar.label)}</text>'
        )
        number = bar.value.number()
        if number is None:
            parts.append(
                f'<rect x="{label_width}" y="{y + 4}" width="36" height="20" fill="url(#{chart_id}-hatch)" '
                f'stroke="#6b6b6b"/><text x="{label_width + 44}" y="{y + 19}" class="chart-value">'
                f"{escape(bar.display)}</text>"
            )
            continue
        length = max(2.0, bar_width * number / top)
        parts.append(
            f'<rect x="{label_width}" y="{y + 4}" width="{length:.1f}" height="20" fill="{BAR_COLOUR}"/>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 19}" class="chart-value">{escape(bar.display)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(chart_id: str, title: str, description: str, rows: Sequence[Bar]) -> Markup:
    """Vertical columns (a month-by-month trend), labelled underneath."""
    column_width, chart_height, left, bottom = 44, 160, 10, 40
    width, height = left * 2 + column_width * len(rows), chart_height + bottom + 24
    top = max([bar.value.number() or 0.0 for bar in rows] + [1.0])
    parts = [_header(chart_id, title, description, width, height)]
    base = 24 + chart_height
    for i, bar in enumerate(rows):
        x = left + i * column_width
        number = bar.value.number()
        if number is None:
            parts.append(
                f'<rect x="{x + 8}" y="{base - 24}" width="{column_width - 16}" height="24" '
                f'fill="url(#{chart_id}-hatch)" stroke="#6b6b6b"/>'
            )
            value_y = base - 30
        else:
            h = max(2.0, chart_height * number / top)
            parts.append(
                f'<rect x="{x + 8}" y="{base - h:.1f}" width="{column_width - 16}" height="{h:.1f}" '
                f'fill="{BAR_COLOUR}"/>'
            )
            value_y = int(base - h - 6)
        parts.append(
            f'<text x="{x + column_width / 2}" y="{value_y}" text-anchor="middle" class="chart-value">'
            f"{escape(bar.display)}</text>"
            f'<text x="{x + column_width / 2}" y="{base + 18}" text-anchor="middle" class="chart-label">'
            f"{escape(bar.label)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Region:
    key: str
    name: str
    geometry: BaseGeometry
    value: Published
    display: str
    href: str


def choropleth(
    chart_id: str, title: str, description: str, regions: Sequence[Region], legend: Callable[[int], str]
) -> Markup:
    """Areas shaded by value (five classes between the smallest and largest shown); suppressed areas hatched.

    Each area is a link to the page filtered on it, so the map also works as a keyboard-reachable menu.
    """
    width, height, pad = 360, 300, 10
    shapes = [r.geometry for r in regions]
    min_x = min(s.bounds[0] for s in shapes)
    min_y = min(s.bounds[1] for s in shapes)
    max_x = max(s.bounds[2] for s in shapes)
    max_y = max(s.bounds[3] for s in shapes)
    scale = min((width - 2 * pad) / (max_x - min_x), (height - 2 * pad - 40) / (max_y - min_y))

    def project(x: float, y: float) -> tuple[float, float]:
        return pad + (x - min_x) * scale, pad + (max_y - y) * scale

    def path(geometry: BaseGeometry) -> str:
        polygons = geometry.geoms if isinstance(geometry, MultiPolygon) else [geometry]
        out = []
        for polygon in polygons:
            assert isinstance(polygon, Polygon)
            points = [project(x, y) for x, y in polygon.exterior.coords]
            out.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points) + " Z")
        return " ".join(out)

    values = [v for r in regions if (v := r.value.number()) is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)

    def colour(value: float) -> str:
        if high == low:
            return SCALE[2]
        return SCALE[min(len(SCALE) - 1, int((value - low) / (high - low) * len(SCALE)))]

    parts = [_header(chart_id, title, description, width, height, role="group")]
    for region in regions:
        number = region.value.number()
        fill = f"url(#{chart_id}-hatch)" if number is None else colour(number)
        centre = region.geometry.representative_point()
        cx, cy = project(centre.x, centre.y)
        text_class = "map-label-dark" if number is not None and fill in SCALE[3:] else "map-label"
        parts.append(
            f'<a href="{escape(region.href)}" aria-label="{escape(region.name)}: {escape(region.display)}">'
            f'<path d="{path(region.geometry)}" fill="{fill}" stroke="#1a1a1a" stroke-width="1.5"/>'
            f'<text x="{cx:.1f}" y="{cy - 6:.1f}" text-anchor="middle" class="{text_class}">'
            f"{escape(region.name)}</text>"
            f'<text x="{cx:.1f}" y="{cy + 12:.1f}" text-anchor="middle" class="{text_class}">'
            f"{escape(region.display)}</text></a>"
        )
    # Legend: the five classes, and the hatch for suppressed areas.
    y = height - 28
    for i, swatch in enumerate(SCALE):
        parts.append(f'<rect x="{pad + i * 30}" y="{y}" width="30" height="12" fill="{swatch}" stroke="#1a1a1a"/>')
    parts.append(
        f'<text x="{pad}" y="{y + 26}" class="chart-label">{escape(legend(0))}</text>'
        f'<text x="{pad + 150}" y="{y + 26}" text-anchor="end" class="chart-label">{escape(legend(1))}</text>'
        f'<rect x="{pad + 170}" y="{y}" width="30" height="12" fill="url(#{chart_id}-hatch)" stroke="#1a1a1a"/>'
        f'<text x="{pad + 206}" y="{y + 11}" class="chart-label">{escape(legend(2))}</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))
