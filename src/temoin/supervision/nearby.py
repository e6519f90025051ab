"""Which CCTV cameras can see a point (the agent who pressed the live button): a per-tenant grid index.

A camera is returned when it is within the query's radius AND
- a fixed camera: the point is inside its field-of-view wedge and within its range ("fov");
- a PTZ camera: the point is within its range, in any direction, since it can turn there ("ptz").
Nearest first, each with its distance and the bearing from the camera to the point.

The index lives in memory, one per tenant (and per database), and is rebuilt when the tenant's registry version
(supervision.models.CctvRegistryVersion, bumped in the transaction of every registry change) has moved: one
primary-key read per query tells whether it is current, even when another process changed the registry.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from temoin.geo.geometry import EARTH_RADIUS_M, SAME_PLACE_M, angle_diff_deg, bearing_deg, distance_m
from temoin.supervision.models import CctvCamera
from temoin.supervision.registry import registry_version

CELL_M = 100.0  # grid cell side; a 300 m query reads about 50 cells
_M_PER_DEG = math.pi * EARTH_RADIUS_M / 180.0
_SLACK = 1.01  # the cell range is widened by 1 %: the exact filter is the haversine distance, never the grid


@dataclass(frozen=True, slots=True)
class IndexedCamera:
    """What the index keeps of a camera: geometry and public fields, no URL, no credential."""

    id: str
    name: str
    lat: float
    lon: float
    heading_deg: float
    fov_deg: float
    range_m: float
    ptz: bool
    height_m: float = 6.0
    max_zoom: float = 20.0
    onvif: bool = False

    @classmethod
    def of(cls, cam: CctvCamera) -> IndexedCamera:
        return cls(
            cam.id,
            cam.name,
            cam.lat,
            cam.lon,
            cam.heading_deg,
            cam.fov_deg,
            cam.range_m,
            cam.ptz,
            cam.height_m,
            cam.max_zoom,
            bool(cam.onvif_url),
        )


@dataclass(frozen=True, slots=True)
class NearbyCamera:
    camera: IndexedCamera
    distance_m: float
    bearing_from_camera: float
    sees: Literal["fov", "ptz"]

    def as_dict(self) -> dict[str, Any]:
        c = self.camera
        return {
            "id": c.id,
            "name": c.name,
            "lat": c.lat,
            "lon": c.lon,
            "ptz": c.ptz,
            "heading_deg": c.heading_deg,
            "fov_deg": c.fov_deg,
            "range_m": c.range_m,
            "distance_m": round(self.distance_m, 1),
            "bearing_from_camera": round(self.bearing_from_camera, 1),
            "sees": self.sees,
            "whep_url": f"/api/v1/cctv/cameras/{c.id}/whep",
        }


class NearbyIndex:
    """A uniform grid over the tenant's cameras (cells of about cell_m by cell_m around their mean latitude)."""

    def __init__(self, cameras: Iterable[IndexedCamera], *, cell_m: float = CELL_M, version: int = 0) -> None:
        self.cameras: tuple[IndexedCamera, ...] = tuple(cameras)
        self.version = version
        lat0 = sum(c.lat for c in self.cameras) / len(self.cameras) if self.cameras else 0.0
        self._cell_lat = cell_m / _M_PER_DEG
        self._cell_lon = cell_m / (_M_PER_DEG * max(math.cos(math.radians(lat0)), 0.01))
        self.max_range_m = max((c.range_m for c in self.cameras), default=0.0)
        cells: dict[tuple[int, int], list[IndexedCamera]] = defaultdict(list)
        for c in self.cameras:
            cells[self._cell(c.lat, c.lon)].append(c)
        self._cells = {k: tuple(v) for k, v in cells.items()}

    def __len__(self) -> int:
        return len(self.cameras)

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self._cell_lat), math.floor(lon / self._cell_lon)

    def _candidates(self, lat: float, lon: float, radius_m: float) -> Iterable[IndexedCamera]:
        dlat = math.degrees(radius_m / EARTH_RADIUS_M) * _SLACK + 1e-9
        lat_far = min(abs(lat) + dlat, 89.9)
        dlon = dlat / math.cos(math.radians(lat_far))
        if lat_far >= 89.9 or abs(lon) + dlon >= 180.0:
            return self.cameras  # near a pole or the antimeridian: read everything (never for a commune)
        i0, j0 = self._cell(lat - dlat, lon - dlon)
        i1, j1 = self._cell(lat + dlat, lon + dlon)
        if (i1 - i0 + 1) * (j1 - j0 + 1) > len(self._cells):  # a huge radius: cheaper to walk the occupied cells
            return (c for (i, j), cs in self._cells.items() if i0 <= i <= i1 and j0 <= j <= j1 for c in cs)
        cells = self._cells
        return (c for i in range(i0, i1 + 1) for j in range(j0, j1 + 1) for c in cells.get((i, j), ()))

    def query(self, lat: float, lon: float, radius_m: float) -> list[NearbyCamera]:
        """The cameras that can see (lat, lon) within radius_m, nearest first."""
        reach = min(radius_m, self.max_range_m)
        out: list[NearbyCamera] = []
        if reach <= 0:
            return out
        for c in self._candidates(lat, lon, reach):
            d = distance_m(c.lat, c.lon, lat, lon)
            if d > reach or d > c.range_m:
                continue
            bearing = bearing_deg(c.lat, c.lon, lat, lon)
            if c.ptz:
                out.append(NearbyCamera(c, d, bearing, "ptz"))
            elif d < SAME_PLACE_M or c.fov_deg >= 360 or abs(angle_diff_deg(bearing, c.heading_deg)) <= c.fov_deg / 2:
                out.append(NearbyCamera(c, d, bearing, "fov"))
        out.sort(key=lambda n: (n.distance_m, n.camera.id))
        return out


# --- one index per tenant and database, rebuilt when the registry moved -------------------------------------

_indexes: weakref.WeakKeyDictionary[Engine | Connection, dict[int, NearbyIndex]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def index_for(db: Session, tenant_id: int) -> NearbyIndex:
    engine = db.get_bind()
    version = registry_version(db, tenant_id)
    with _lock:
        current = _indexes.get(engine, {}).get(tenant_id)
    if current is not None and current.version == version:
        return current
    # Read the rows and the version they belong to in one snapshot-consistent pass; a change committed meanwhile
    # bumps the version again and the next query rebuilds.
    index = NearbyIndex(_indexed(db, tenant_id), version=version)
    with _lock:
        _indexes.setdefault(engine, {})[tenant_id] = index
    return index


def _indexed(db: Session, tenant_id: int) -> list[IndexedCamera]:
    # Only the columns the index needs, as plain rows: ten times faster than ORM objects for a big registry, and
    # the index never holds a URL or a credential.
    c = CctvCamera
    rows = db.execute(
        select(
            c.id,
            c.name,
            c.lat,
            c.lon,
            c.heading_deg,
            c.fov_deg,
            c.range_m,
            c.ptz,
            c.height_m,
            c.max_zoom,
            c.onvif_url.is_not(None),
        )
        .where(c.tenant_id == tenant_id, c.active.is_(True))
        .order_by(c.id)
    )
    return [IndexedCamera(*r[:10], onvif=bool(r[10])) for r in rows]


def nearby(db: Session, tenant_id: int, lat: float, lon: float, radius_m: float) -> list[NearbyCamera]:
    return index_for(db, tenant_id).query(lat, lon, radius_m)
