"""A tenant's streets: where a position is, in words (the nearest street), and finding a street by its name.

Streets come as GeoJSON: LineString or MultiLineString features named by a `name` property (or `nom`,
`nom_voie`, `NOM_1_G`: the names French open data uses, BD TOPO and the BAN among them). Distances are
computed on a local flat projection, exact enough within a commune.
"""

from __future__ import annotations

import math
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from temoin.errors import InvalidInput
from temoin.geo.geometry import EARTH_RADIUS_M

NAME_PROPERTIES = ("name", "nom", "nom_voie", "NOM_1_G", "NOM_VOIE_G")
NEAR_STREET_M = 150.0  # further than this from any street, a position is given by its coordinates alone
CELL_M = 200.0  # grid cell of the index: a few streets per cell in a town centre
MAX_STREETS = 50_000  # a large city; more is not a commune's street list


class StreetsInvalid(InvalidInput, ValueError):
    """The streets file holds no named line."""


@dataclass(frozen=True)
class Street:
    name: str
    lines: tuple[tuple[tuple[float, float], ...], ...]  # each line's points as (lat, lon)

    def point(self) -> tuple[float, float]:
        """A point on the street to show it by: halfway along its longest line."""

        def length(line: Sequence[tuple[float, float]]) -> list[float]:
            return [math.dist(a, b) for a, b in pairwise(line)]  # degrees: fine for "halfway"

        line = max(self.lines, key=lambda li: sum(length(li)))
        left = sum(length(line)) / 2
        for (a, b), leg in zip(pairwise(line), length(line), strict=True):
            if leg >= left and leg > 0:
                k = left / leg
                return (round(a[0] + (b[0] - a[0]) * k, 7), round(a[1] + (b[1] - a[1]) * k, 7))
            left -= leg
        return line[0]


@dataclass(frozen=True)
class Place:
    """A position as a person reads it: the nearest street (None when none is near), then the coordinates."""

    lat: float
    lon: float
    street: str | None
    distance_m: float | None

    @property
    def coordinates(self) -> str:
        return f"{self.lat:.5f}, {self.lon:.5f}"

    def as_dict(self) -> dict:
        return {
            "lat": self.lat,
            "lon": self.lon,
            "street": self.street,
            "distance_m": None if self.distance_m is None else round(self.distance_m, 1),
            "coordinates": self.coordinates,
        }


def fold(text: str) -> str:
    """Text compared without case, accents or punctuation: "Quai des Pêcheurs" -> "quai des pecheurs"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join("".join(c if c.isalnum() else " " for c in plain).split())


def _name(props: dict) -> str | None:
    for key in NAME_PROPERTIES:
        value = props.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return None


def _lines(geometry: dict) -> list[tuple[tuple[float, float], ...]]:
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    raw = [coords] if kind == "LineString" else list(coords) if kind == "MultiLineString" else []
    out = []
    for line in raw:
        points = tuple((float(p[1]), float(p[0])) for p in line if len(p) >= 2)
        if len(points) >= 2 and all(-90 <= lat <= 90 and -180 <= lon <= 180 for lat, lon in points):
            out.append(points)
    return out


def parse_streets(geojson: dict) -> list[Street]:
    """The named lines of a GeoJSON FeatureCollection, grouped by name (a street cut into several features is
    one street). Raises StreetsInvalid when there is none."""
    if not isinstance(geojson, dict) or geojson.get("type") != "FeatureCollection":
        raise StreetsInvalid(
            "the streets must be a GeoJSON FeatureCollection of LineString or MultiLineString "
            "features, each named by a 'name' (or 'nom', 'nom_voie') property"
        )
    by_name: dict[str, list] = defaultdict(list)
    for feature in geojson.get("features") or []:
        if not isinstance(feature, dict):
            continue
        name = _name(feature.get("properties") or {})
        try:
            lines = _lines(feature.get("geometry") or {})
        except (TypeError, ValueError, IndexError):
            continue
        if name and lines:
            by_name[name].extend(lines)
    if not by_name:
        raise StreetsInvalid(
            "no named street in the file: each street is a LineString or MultiLineString feature "
            "with a 'name' (or 'nom', 'nom_voie') property, coordinates in WGS 84 lon/lat"
        )
    if len(by_name) > MAX_STREETS:
        raise StreetsInvalid(
            f"{len(by_name)} streets is more than {MAX_STREETS}: give the streets of the tenant's territory only"
        )
    return [Street(name, tuple(lines)) for name, lines in sorted(by_name.items())]


class StreetIndex:
    """The streets of one tenant, indexed for the nearest street to a point and for search by name."""

    def __init__(self, streets: Iterable[Street]) -> None:
        self.streets = list(streets)
        points = [p for s in self.streets for line in s.lines for p in line]
        self._lat0 = sum(p[0] for p in points) / len(points) if points else 0.0
        self._kx = math.radians(1) * EARTH_RADIUS_M * math.cos(math.radians(self._lat0))
        self._ky = math.radians(1) * EARTH_RADIUS_M
        self._cells: dict[tuple[int, int], list[tuple[int, tuple[float, float], tuple[float, float]]]] = defaultdict(
            list
        )
        for i, street in enumerate(self.streets):
            for line in street.lines:
                for a, b in pairwise(line):
                    pa, pb = self._xy(*a), self._xy(*b)
                    for cell in self._cells_of(pa, pb):
                        self._cells[cell].append((i, pa, pb))
        self._folded = [fold(s.name) for s in self.streets]

    def _xy(self, lat: float, lon: float) -> tuple[float, float]:
        return (lon * self._kx, (lat - self._lat0) * self._ky)

    def _cells_of(self, a: tuple[float, float], b: tuple[float, float]) -> Iterable[tuple[int, int]]:
        x0, x1 = sorted((int(a[0] // CELL_M), int(b[0] // CELL_M)))
        y0, y1 = sorted((int(a[1] // CELL_M), int(b[1] // CELL_M)))
        return ((x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1))

    def nearest(self, lat: float, lon: float, within_m: float = NEAR_STREET_M) -> tuple[Street, float] | None:
        """The street closest to the point, and its distance in metres; None when none lies within within_m."""
        px, py = self._xy(lat, lon)
        reach = int(within_m // CELL_M) + 1
        cx, cy = int(px // CELL_M), int(py // CELL_M)
        best: tuple[int, float] | None = None
        for x in range(cx - reach, cx + reach + 1):
            for y in range(cy - reach, cy + reach + 1):
                for i, a, b in self._cells.get((x, y), ()):
                    d = _segment_distance(px, py, a, b)
                    if d <= within_m and (best is None or d < best[1]):
                        best = (i, d)
        return None if best is None else (self.streets[best[0]], best[1])

    def search(self, query: str, limit: int = 10) -> list[Street]:
        """Streets whose name starts with the query, then those with a word starting with it ("port" finds
        "Rue du Port"); case, accents and punctuation ignored."""
        wanted = fold(query)
        if not wanted:
            return []
        first, then = [], []
        for street, folded in zip(self.streets, self._folded, strict=True):
            if folded.startswith(wanted):
                first.append(street)
            elif (" " + folded).find(" " + wanted) >= 0:
                then.append(street)
        return (sorted(first, key=lambda s: fold(s.name)) + sorted(then, key=lambda s: fold(s.name)))[:limit]


def _segment_distance(px: float, py: float, a: Sequence[float], b: Sequence[float]) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - a[0]) * dx + (py - a[1]) * dy) / length2))
    return math.hypot(px - (a[0] + t * dx), py - (a[1] + t * dy))


def place_of(index: StreetIndex | None, lat: float, lon: float) -> Place:
    """A position as a person reads it: the nearest of the tenant's streets (if one lies within NEAR_STREET_M),
    with the coordinates beside it. The one function every page uses to show a position."""
    found = index.nearest(lat, lon) if index is not None else None
    if found is None:
        return Place(lat, lon, None, None)
    street, distance = found
    return Place(lat, lon, street.name, distance)
