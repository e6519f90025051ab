"""Where a tenant's streets are kept and read: the table, or the demo commune's for the demo tenant."""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.geo import demo_commune
from temoin.geo.models import TenantStreets
from temoin.geo.streets import StreetIndex, parse_streets

_lock = threading.Lock()
_indexes: dict[int, tuple[datetime | None, StreetIndex]] = {}  # tenant id -> (loaded at, index)
_demo: StreetIndex | None = None


def as_geojson(geojson: dict) -> dict:
    """The streets of a GeoJSON file, kept as the basemap draws them: named lines, nothing else (a BD TOPO
    export carries dozens of properties per road)."""
    streets = parse_streets(geojson)
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"kind": "street", "name": s.name},
                "geometry": {
                    "type": "MultiLineString",
                    "coordinates": [[[lon, lat] for lat, lon in line] for line in s.lines],
                },
            }
            for s in streets
        ],
    }


def set_streets(db: Session, tenant_id: int, geojson: dict) -> int:
    """Replace the tenant's streets with those of the file (StreetsInvalid when it names none); their count."""
    compact = as_geojson(geojson)
    row = db.get(TenantStreets, tenant_id)
    if row is None:
        row = TenantStreets(tenant_id=tenant_id)
        db.add(row)
    row.geojson, row.street_count, row.loaded_at = compact, len(compact["features"]), utcnow()
    db.flush()
    return row.street_count


def streets_geojson(db: Session, tenant_id: int, demo: bool) -> dict | None:
    """The tenant's streets to draw; the demo commune's for a demo tenant that loaded none."""
    geojson = db.scalar(select(TenantStreets.geojson).where(TenantStreets.tenant_id == tenant_id))
    if geojson is None and demo:
        return {
            "type": "FeatureCollection",
            "features": [f for f in demo_commune.commune()["features"] if f["properties"].get("kind") == "street"],
        }
    return geojson


def street_index(db: Session, tenant_id: int, demo: bool) -> StreetIndex | None:
    """The tenant's streets, indexed (built once per load, then kept in memory); None when it has none."""
    global _demo
    loaded_at = db.scalar(select(TenantStreets.loaded_at).where(TenantStreets.tenant_id == tenant_id))
    if loaded_at is None:
        if not demo:
            return None
        if _demo is None:
            _demo = StreetIndex(parse_streets(demo_commune.commune()))
        return _demo
    with _lock:
        cached = _indexes.get(tenant_id)
    if cached and cached[0] == loaded_at:
        return cached[1]
    geojson = db.scalar(select(TenantStreets.geojson).where(TenantStreets.tenant_id == tenant_id))
    index = StreetIndex(parse_streets(geojson or {}))
    with _lock:
        _indexes[tenant_id] = (loaded_at, index)
    return index
