"""Is a position inside the tenant's authorised territory (R241-8 II)? GeoJSON polygons, lon/lat."""

from __future__ import annotations

from collections.abc import Sequence

from temoin.geo.geometry import in_ring

Ring = Sequence[Sequence[float]]


def _in_polygon(lon: float, lat: float, rings: Sequence[Ring]) -> bool:
    # First ring is the outline, the others are holes.
    return bool(rings) and in_ring(lon, lat, rings[0]) and not any(in_ring(lon, lat, h) for h in rings[1:])


def _polygons(geojson: dict) -> list[Sequence[Ring]]:
    kind = geojson.get("type")
    if kind == "FeatureCollection":
        return [p for f in geojson.get("features", []) for p in _polygons(f)]
    if kind == "Feature":
        return _polygons(geojson.get("geometry") or {})
    if kind == "Polygon":
        return [geojson["coordinates"]]
    if kind == "MultiPolygon":
        return list(geojson["coordinates"])
    return []


def validate_territory(geojson: dict) -> None:
    if not _polygons(geojson):
        raise ValueError("the territory must be a GeoJSON Polygon or MultiPolygon (or features holding them)")


def contains(geojson: dict | None, lat: float, lon: float) -> bool:
    """True when no territory is set (nothing to check against) or the point lies inside it."""
    if not geojson:
        return True
    return any(_in_polygon(lon, lat, rings) for rings in _polygons(geojson))
