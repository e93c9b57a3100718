"""The city's areas as a clickable map: an SVG drawn from the same GeoJSON routing uses, and the way back from a
click on it to a latitude and longitude. Pure: no I/O beyond reading the file once at start-up.

The map is an `<input type="image">` in the submit form, so a click works without JavaScript: the browser sends
the click's coordinates in CSS pixels of the image as shown. The image therefore has a fixed size, and a click
maps linearly onto the areas' bounding box (a schematic, not a survey map). The neighbourhood list next to it is
the accessible way to say where; the map is an extra for people who think in places.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

MAP_WIDTH = 320
MAP_HEIGHT = 400
_PADDING = 8
_FILLS = ("#dbe9f6", "#e3f1df", "#f6ead8", "#eadff3", "#f3dfe3", "#dff3f1")

Point = tuple[float, float]  # (longitude, latitude), GeoJSON order


@dataclass(frozen=True)
class Area:
    name: str
    rings: tuple[tuple[Point, ...], ...]  # outer rings of each polygon

    def contains(self, longitude: float, latitude: float) -> bool:
        return any(_in_ring(ring, longitude, latitude) for ring in self.rings)


def _in_ring(ring: tuple[Point, ...], x: float, y: float) -> bool:
    """Ray casting: a point is inside when a ray from it crosses the ring's edges an odd number of times."""
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


@dataclass(frozen=True)
class CityMap:
    areas: tuple[Area, ...]
    west: float
    south: float
    east: float
    north: float

    @classmethod
    def load(cls, path: Path) -> CityMap:
        collection = json.loads(path.read_text(encoding="utf-8"))
        areas = []
        for feature in collection["features"]:
            geometry = feature["geometry"]
            polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
            rings = tuple(tuple((float(x), float(y)) for x, y, *_ in polygon[0]) for polygon in polygons)
            properties = feature.get("properties") or {}
            areas.append(Area(name=str(properties.get("name") or properties.get("area") or "?"), rings=rings))
        points = [point for area in areas for ring in area.rings for point in ring]
        if not points:
            raise ValueError(f"{path} has no polygons")
        xs, ys = [x for x, _ in points], [y for _, y in points]
        return cls(tuple(areas), min(xs), min(ys), max(xs), max(ys))

    def _to_pixels(self, longitude: float, latitude: float) -> tuple[float, float]:
        span_x, span_y = MAP_WIDTH - 2 * _PADDING, MAP_HEIGHT - 2 * _PADDING
        x = _PADDING + (longitude - self.west) / (self.east - self.west) * span_x
        y = _PADDING + (self.north - latitude) / (self.north - self.south) * span_y
        return x, y

    def location_at(self, x: float, y: float) -> tuple[float, float] | None:
        """(latitude, longitude) of a click at pixel (x, y), or None when it is outside every area."""
        span_x, span_y = MAP_WIDTH - 2 * _PADDING, MAP_HEIGHT - 2 * _PADDING
        longitude = self.west + (x - _PADDING) / span_x * (self.east - self.west)
        latitude = self.north - (y - _PADDING) / span_y * (self.north - self.south)
        if self.area_at(latitude, longitude) is None:
            return None
        return round(latitude, 5), round(longitude, 5)

    def area_at(self, latitude: float, longitude: float) -> str | None:
        return next((area.name for area in self.areas if area.contains(longitude, latitude)), None)

    def svg(self, marker: tuple[float, float] | None = None) -> str:
        """The map as an SVG document, with a pin at `marker` (latitude, longitude) when given."""
        shapes, labels = [], []
        for index, area in enumerate(self.areas):
            fill = _FILLS[index % len(_FILLS)]
            for ring in area.rings:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (self._to_pixels(lon, lat) for lon, lat in ring))
                shapes.append(f'<polygon points="{points}" fill="{fill}" stroke="#34495e" stroke-width="1.5"/>')
            pixels = [self._to_pixels(lon, lat) for ring in area.rings for lon, lat in ring]
            cx = sum(x for x, _ in pixels) / len(pixels)
            cy = sum(y for _, y in pixels) / len(pixels)
            labels.append(
                f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="middle" font-family="sans-serif" font-size="15" '
                f'fill="#1b2631">{escape(area.name)}</text>'
            )
        pin = ""
        if marker is not None:
            x, y = self._to_pixels(marker[1], marker[0])
            pin = (
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="9" fill="#b03a2e" stroke="#ffffff" stroke-width="3"/>'
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#ffffff"/>'
            )
        title = quoteattr("map")
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{MAP_WIDTH}" height="{MAP_HEIGHT}" '
            f'viewBox="0 0 {MAP_WIDTH} {MAP_HEIGHT}" role="img" aria-label={title}>'
            f'<rect width="100%" height="100%" fill="#f8f9f9"/>{"".join(shapes)}{"".join(labels)}{pin}</svg>'
        )
