"""The basemap every map of the web UI draws (the CSU's and the review's): any signed-in user of the tenant."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from temoin.web.basemap import basemap
from temoin.web.deps import Principal, current_principal

router = APIRouter(prefix="/api/v1/map", tags=["map"])


@router.get("/basemap", summary="The tenant's basemap: a tile URL, or the embedded vector overlay (territory, streets)")
def get_basemap(who: Principal = Depends(current_principal)) -> dict:
    # No content here: the outline of the commune and its streets, which every user of the tenant may see.
    return basemap(who.tenant)
