"""What a tenant's maps draw under their markers: a tile layer when one is configured, else an offline basemap.

Offline first: without a tile URL (the default), the map is the tenant's territory outline and its streets with
their names, from GeoJSON the tenant loaded (`temoin admin tenant streets`; the demo commune's for the demo),
served by the platform itself: no request leaves the platform. docs/maps.md says how to configure tiles.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from temoin.context import Context
from temoin.geo.street_map import set_streets, streets_geojson
from temoin.identity.models import Tenant
from temoin.identity.tenant_settings import settings_of
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.web.i18n import gettext


def basemap(db: Session, tenant: Tenant, lang: str) -> dict[str, Any]:
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
    streets = streets_geojson(db, tenant.id, tenant.demo)
    if streets:
        features += streets["features"]
    offline = not settings.tile_url
    return {
        "tile_url": settings.tile_url,
        "attribution": settings.tile_attribution,
        "offline": offline,
        # Said on the map itself: an installer sees at once why it shows no background.
        "notice": gettext(lang, "Offline basemap: configure a tile source, see docs/deploy.md") if offline else None,
        "overlay": {"type": "FeatureCollection", "features": features},
    }


def load_streets(p: Context, db: Session, tenant: Tenant, geojson: dict, by: Actor | None = None) -> int:
    """Give the tenant its street list (replacing any before): the offline basemap draws it, positions are named
    after it, the rights form searches it. Raises StreetsInvalid for a file without named lines. Journaled."""
    count = set_streets(db, tenant.id, geojson)
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="tenant.streets_set",
            actor=by or Actor.system("admin"),
            details={"streets": count},
        ),
        tenant,
    )
    return count
