"""The registry of fixed CCTV cameras, nearby cameras, PTZ aiming and CCTV live feeds (WHEP).

What a browser gets of a camera never includes its stream URL (it may carry credentials) nor its ONVIF password.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from temoin.identity.models import Tenant
from temoin.identity.service import actor_of
from temoin.identity.tenant_settings import settings_of
from temoin.law.access import Permission
from temoin.live.models import LiveSession
from temoin.live.sessions import LiveNotFound
from temoin.platform import Platform
from temoin.supervision import nearby as nearby_index, outbound, ptz
from temoin.supervision.models import CctvCamera
from temoin.supervision.registry import (
    MAX_FILE_BYTES,
    camera_of,
    cameras_of,
    feature_collection,
    import_rows,
    parse_csv,
    parse_geojson,
    withdraw,
)
from temoin.web.deps import Principal, get_db, get_platform, require
from temoin.web.routes.live import _answer, _offer

router = APIRouter(prefix="/api/v1/cctv", tags=["cctv"])
pages = APIRouter(include_in_schema=False)
CSV_TYPES = {"text/csv", "application/csv", "text/plain"}
JSON_TYPES = {"application/geo+json", "application/json"}


def _camera(p: Platform, tenant_id: int, camera_id: str) -> CctvCamera:
    with p.session() as db:
        cam = camera_of(db, tenant_id, camera_id)
        if cam is None:
            raise HTTPException(404, f"no CCTV camera {camera_id} in your commune's registry")
        db.expunge(cam)
        return cam


# --- the registry -----------------------------------------------------------------------------------------


@router.get("/cameras", summary="The commune's CCTV cameras, as GeoJSON for the map (no URL, no credential)")
def list_cameras(who: Principal = require(Permission.LIVE_VIEW), db: Session = Depends(get_db)) -> dict:
    return feature_collection(cameras_of(db, who.tenant.id))


@router.post("/import", summary="Import cameras (CSV or GeoJSON body): all or nothing, upsert by id")
async def import_cameras(
    request: Request, who: Principal = require(Permission.CCTV_MANAGE), p: Platform = Depends(get_platform)
) -> Response:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in CSV_TYPES | JSON_TYPES:
        raise HTTPException(
            415,
            "send the registry as the body, with Content-Type: text/csv (header: "
            "id,name,lat,lon,height_m,heading_deg,fov_deg,range_m,ptz,max_zoom,stream_url,"
            "onvif_url,onvif_username,onvif_password) or application/geo+json",
        )
    body = await request.body()
    if len(body) > MAX_FILE_BYTES:
        raise HTTPException(413, f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: split it")
    if not body.strip():
        raise HTTPException(400, "the body is empty: send the registry file")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the file is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None

    def work() -> dict[str, Any]:
        rows = parse_csv(text) if ctype in CSV_TYPES else parse_geojson(text)
        with p.session() as db:
            return import_rows(
                p,
                db,
                db.get_one(Tenant, who.tenant.id),
                rows,
                actor=actor_of(who.user),
                source="csv" if ctype in CSV_TYPES else "geojson",
            ).as_dict()

    result = await run_in_threadpool(work)  # a refused file: 422, its `problems` named in the body
    _registry_changed(request, who.tenant.id)
    return JSONResponse(result)


def _registry_changed(request: Request, tenant_id: int) -> None:
    """Open CSU dashboards redraw the cameras (and drop a withdrawn one from the wall)."""
    bus = _bus(request)
    if bus is not None:
        bus.publish(tenant_id, "registry", {})


@router.delete(
    "/cameras/{camera_id}",
    status_code=204,
    response_class=Response,
    summary="Withdraw a camera from service (off the map and the wall; journaled; import it to restore)",
)
async def withdraw_camera(
    camera_id: str,
    request: Request,
    reason: str | None = Query(None, max_length=500),
    who: Principal = require(Permission.CCTV_MANAGE),
    p: Platform = Depends(get_platform),
) -> Response:
    def work() -> None:
        with p.session() as db:
            withdraw(p, db, db.get_one(Tenant, who.tenant.id), camera_id, actor=actor_of(who.user), reason=reason)

    await run_in_threadpool(work)
    hub = getattr(request.app.state, "live", None)
    if hub is not None:
        await hub.withdraw_cctv(who.tenant.id, camera_id)
    _registry_changed(request, who.tenant.id)
    return Response(status_code=204)


# --- nearby cameras ---------------------------------------------------------------------------------------


@router.get("/nearby", summary="The cameras that can see a point, nearest first (default radius: tenant setting)")
def nearby(
    lat: float = Query(..., ge=-90, le=90),
    lon: float = Query(..., ge=-180, le=180),
    radius_m: float | None = Query(None, gt=0, le=5000),
    who: Principal = require(Permission.LIVE_VIEW),
    db: Session = Depends(get_db),
) -> dict:
    radius = radius_m if radius_m is not None else settings_of(who.tenant).cctv_radius_m
    found = nearby_index.nearby(db, who.tenant.id, lat, lon, radius)
    return {"lat": lat, "lon": lon, "radius_m": radius, "cameras": [n.as_dict() for n in found]}


# --- PTZ ----------------------------------------------------------------------------------------------------


class AimIn(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    session_id: str | None = Field(default=None, max_length=32)


class AimAllIn(BaseModel):
    session_id: str = Field(min_length=1, max_length=32)


def _bus(request: Request) -> Any:
    hub = getattr(request.app.state, "live", None)
    return getattr(hub, "bus", None)


def _live_session(request: Request, p: Platform, who: Principal, session_id: str) -> LiveSession:
    """The tenant's live session (another tenant's is a 404, and the attempt is journaled by the hub)."""
    with p.session() as db:
        hub = getattr(request.app.state, "live", None)
        if hub is not None:
            s = hub.user_session(db, who.user, session_id)
            db.commit()
        else:
            s = db.get(LiveSession, session_id)
            if s is None or s.tenant_id != who.tenant.id:
                raise LiveNotFound(f"no live session {session_id} in your tenant")
        db.expunge(s)
        return s


@router.post("/cameras/{camera_id}/aim", summary="Aim a PTZ camera at a point (ONVIF); journaled")
async def aim(
    camera_id: str,
    body: AimIn,
    request: Request,
    who: Principal = require(Permission.PTZ_CONTROL),
    p: Platform = Depends(get_platform),
) -> dict:
    if body.session_id:
        await run_in_threadpool(_live_session, request, p, who, body.session_id)
    result = await ptz.aim(
        p,
        who.tenant.id,
        camera_id,
        body.lat,
        body.lon,
        actor=actor_of(who.user),
        session_id=body.session_id,
        bus=_bus(request),
    )
    return result.as_dict()


@router.post("/aim-all", summary="Aim every PTZ camera in range at a live session's last position")
async def aim_all(
    body: AimAllIn,
    request: Request,
    who: Principal = require(Permission.PTZ_CONTROL),
    p: Platform = Depends(get_platform),
) -> dict:
    s = await run_in_threadpool(_live_session, request, p, who, body.session_id)
    position = s.position or {}
    if position.get("lat") is None or position.get("lon") is None:
        raise HTTPException(409, f"live session {s.id} has no position yet: wait for the agent's first fix")
    lat, lon = float(position["lat"]), float(position["lon"])

    def in_range() -> list[str]:
        with p.session() as db:
            index = nearby_index.index_for(db, who.tenant.id)
            return [n.camera.id for n in index.query(lat, lon, index.max_range_m) if n.sees == "ptz"]

    ids = await run_in_threadpool(in_range)
    actor = actor_of(who.user)

    async def one(camera_id: str) -> dict[str, Any]:
        try:
            result = await ptz.aim(
                p, who.tenant.id, camera_id, lat, lon, actor=actor, session_id=s.id, bus=_bus(request)
            )
        except ptz.PtzError as exc:  # one camera failing does not stop the others
            return {"camera_id": camera_id, "ok": False, "reason": exc.reason, "error": exc.message}
        return {"ok": True, **result.as_dict()}

    results = list(await asyncio.gather(*(one(c) for c in ids)))
    return {
        "session_id": s.id,
        "target": {"lat": lat, "lon": lon},
        "aimed": sum(r["ok"] for r in results),
        "failed": sum(not r["ok"] for r in results),
        "results": results,
    }


# --- live view of a CCTV camera (WHEP) -----------------------------------------------------------------------


def _cctv_media(request: Request, method: str) -> Any:
    fn = getattr(getattr(request.app.state, "live", None), method, None)
    if fn is None:
        raise HTTPException(
            503,
            "live view of CCTV cameras is not available on this server yet (its media path "
            "is not installed): use the CSU's video wall meanwhile",
        )
    return fn


@router.post(
    "/cameras/{camera_id}/whep",
    status_code=201,
    response_class=Response,
    summary="WHEP: watch a CCTV camera (SDP offer in, answer out); journaled by the live hub",
)
async def whep(
    camera_id: str,
    request: Request,
    session_id: str | None = Query(None, max_length=32),
    who: Principal = require(Permission.LIVE_VIEW),
    p: Platform = Depends(get_platform),
) -> Response:
    cam = await run_in_threadpool(_camera, p, who.tenant.id, camera_id)
    offer = await _offer(request)
    await outbound.check_url(
        cam.stream_url, outbound.declared_networks(who.tenant), what=f"the stream of CCTV camera {cam.id}"
    )
    watch = _cctv_media(request, "watch_cctv")
    answer = await watch(who.user.id, who.tenant.id, cam.id, cam.stream_url, offer, session_id=session_id)
    return _answer(answer, f"/api/v1/cctv/cameras/{cam.id}/whep/{answer.resource_id}")


@router.delete("/cameras/{camera_id}/whep/{resource_id}", summary="Stop watching a CCTV camera")
async def whep_delete(
    camera_id: str,
    resource_id: str,
    request: Request,
    who: Principal = require(Permission.LIVE_VIEW),
    p: Platform = Depends(get_platform),
) -> Response:
    cam = await run_in_threadpool(_camera, p, who.tenant.id, camera_id)
    stop = _cctv_media(request, "stop_cctv")
    await stop(who.user.id, who.tenant.id, cam.id, resource_id)
    return Response(status_code=200)
