"""Which commune of an EPCI a position lies in: the tenant's territory as a GeoJSON FeatureCollection whose
features carry the commune's INSEE code (property `insee`), one feature (or more) per commune."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from temoin.geo.territory import Ring, _in_polygon, _polygons

CODE_PROPERTIES = ("insee", "code_insee")


def commune_zones(territory: dict | None) -> list[tuple[str, list[Sequence[Ring]]]]:
    """(INSEE code, polygons) of each feature that names its commune; none for a territory without codes."""
    if not territory or territory.get("type") != "FeatureCollection":
        return []
    zones = []
    for feature in territory.get("features", []):
        props = feature.get("properties") or {}
        code = next((str(props[k]) for k in CODE_PROPERTIES if props.get(k)), None)
        if code:
            zones.append((code, _polygons(feature)))
    return zones


def commune_at(territory: dict | None, lat: float, lon: float) -> str | None:
    for code, polygons in commune_zones(territory):
        if any(_in_polygon(lon, lat, rings) for rings in polygons):
            return code
    return None


def commune_of(territory: dict | None, fixes: Iterable[tuple[float, float]]) -> str | None:
    """The commune where the recording was made: that of its first (lat, lon) fix lying in one."""
    zones = commune_zones(territory)
    if not zones:
        return None
    for lat, lon in fixes:
        for code, polygons in zones:
            if any(_in_polygon(lon, lat, rings) for rings in polygons):
                return code
    return None
