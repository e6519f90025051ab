"""What a tenant's maps draw under their markers: a tile layer in production, or an embedded vector basemap.

Offline first: without a tile URL (the default), the map is the tenant's territory outline and, for the demo
commune, its streets, from GeoJSON served by the platform itself. No request leaves the platform.
"""

from __future__ import annotations

from typing import Any

from temoin.geo.demo_commune import commune
from temoin.identity.models import Tenant
from temoin.identity.tenant_settings import settings_of


def basemap(tenant: Tenant) -> dict[str, Any]:
    settings = settings_of(tenant)
    features: list[dict] = []
    if tenant.territory:
        territory = tenant.territory
        found = territory.get("features", [territory]) if territory.get("type") == "FeatureCollection" else [territory]
        for feature in found:
            if feature.get("type") == "Feature":
                features.append({**feature, "properties": {**(feature.get("properties") or {}), "kind": "territory"}})
            else:  # a bare geometry
                features.append({"type": "Feature", "geometry": feature, "properties": {"kind": "territory"}})
    if tenant.demo:
        features += [f for f in commune()["features"] if f["properties"].get("kind") == "street"]
    return {"tile_url": settings.tile_url, "attribution": settings.tile_attribution,
            "overlay": {"type": "FeatureCollection", "features": features}}
