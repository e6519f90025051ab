"""The maps of the web UI (the CSU's, the review's, the rights form's): the basemap, where a position is in
words, and the tenant's streets by name. Any signed-in user of the tenant: the commune's outline and streets are
no content."""

from __future__ import annotations

import hashlib

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from temoin.geo.street_map import street_index
from temoin.geo.streets import place_of
from temoin.web.basemap import basemap
from temoin.web.deps import Principal, current_principal, get_db
from temoin.web.i18n import lang_of

router = APIRouter(prefix="/api/v1/map", tags=["map"])


class PlaceOut(BaseModel):
    lat: float
    lon: float
    street: str | None  # the nearest of the tenant's streets; None when none lies within 150 m
    distance_m: float | None
    coordinates: str  # "43.55800, 4.08000"


class StreetOut(BaseModel):
    name: str
    lat: float  # a point on the street, to centre the map on it
    lon: float


@router.get(
    "/basemap",
    summary="The tenant's basemap: a tile URL, or the offline overlay (territory, named streets)",
    description="Sent with an ETag (the body's SHA-256); `If-None-Match` with it answers 304 without the body: "
    "the street list is sent again only when it (or the language, or the tile settings) changed.",
    responses={200: {"content": {"application/json": {}}}, 304: {"description": "unchanged since the ETag given"}},
)
def get_basemap(
    request: Request, who: Principal = Depends(current_principal), db: Session = Depends(get_db)
) -> Response:
    body = orjson.dumps(basemap(db, who.tenant, lang_of(request)))
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    # Private: the tenant's own, behind its session; no-cache: the browser keeps it and asks whether it changed.
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Accept-Language, Cookie"}
    given = {tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")}
    if etag in given or "*" in given:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/place", response_model=PlaceOut, summary="A position in words: the nearest of the tenant's streets")
def get_place(
    lat: float = Query(ge=-90, le=90),
    lon: float = Query(ge=-180, le=180),
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
) -> dict:
    return place_of(street_index(db, who.tenant.id, who.tenant.demo), lat, lon).as_dict()


@router.get(
    "/streets",
    response_model=list[StreetOut],
    summary="The tenant's streets whose name (or a word of it) starts with q: case and accents ignored",
)
def search_streets(
    q: str = Query(min_length=1, max_length=100),
    limit: int = Query(10, ge=1, le=50),
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
) -> list[dict]:
    index = street_index(db, who.tenant.id, who.tenant.demo)
    if index is None:
        return []
    out = []
    for street in index.search(q, limit):
        lat, lon = street.point()
        out.append({"name": street.name, "lat": lat, "lon": lon})
    return out
