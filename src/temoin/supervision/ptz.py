"""Aim a PTZ CCTV camera at an incident over ONVIF (the requests: temoin.supervision.onvif_ptz).

The steps are those of any ONVIF client: the device service's addresses (GetServices, or GetCapabilities on older
cameras), the media profile that carries a PTZ configuration (GetProfiles), AbsoluteMove in the normalised generic
spaces (temoin.geo.geometry documents the convention), then GetStatus for the pose the camera reports. The whole
exchange has a deadline (3 s by default): an operator must not wait on a dead camera.

Each move is journaled as event "ptz.aimed" (a failed one as "ptz.failed") with Action.ADMINISTRATION: the operator
acts on a device of the vidéoprotection network, which records nothing of the body cameras' evidence and reveals
no content (so not COMMUNICATION nor CONSULTATION), changes no recording (not MODIFICATION), and is an ordinary,
authorised operation (SECURITY is kept for refusals and breaches, so that an auditor filtering on it sees only
those). The entry names the actor, the camera, the target and the live session. A "ptz" event goes to the CSU's
dashboards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.orm import Session

from temoin import errors
from temoin.context import Context
from temoin.geo.geometry import OnvifPosition, PtzAngles, distance_m, from_onvif, ptz_angles, to_onvif
from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.live.events import EventBus
from temoin.supervision import outbound
from temoin.supervision.models import CctvCamera
from temoin.supervision.onvif_ptz import TPTZ, TRT, OnvifClient, OnvifFailure
from temoin.supervision.registry import RegistryError, camera_of, camera_password

log = logging.getLogger("temoin.supervision.ptz")
TIMEOUT_S = 3.0
STATUS_POLL_S = 0.2


class PtzError(errors.UpstreamFault):
    """An aim that failed; its kind (temoin.errors) says whose fault, `reason` names the case for the CSU's
    dashboard, the message says what to do."""

    reason = "failed"

    @property
    def extra(self) -> dict[str, object]:
        return {"reason": self.reason}


class NoSuchCamera(errors.NotFound, PtzError):
    reason = "unknown_camera"


class NotPtz(errors.Conflict, PtzError):
    reason = "not_ptz"


class Unreachable(errors.UpstreamTimeout, PtzError):
    reason = "unreachable"


class AuthRefused(PtzError):
    reason = "auth_refused"


class CameraFault(PtzError):
    reason = "camera_fault"


class OutsideNetwork(errors.Forbidden, PtzError):
    reason = "outside_network"


@dataclass(frozen=True)
class OnvifEndpoint:
    """Where and how to reach a camera's ONVIF device service: onvif_url as given, or the standard path
    /onvif/device_service when it names only the host. The other services' addresses come from the camera itself
    (GetServices)."""

    url: str
    username: str | None
    password: str | None = None

    def __repr__(self) -> str:  # never print the password
        return f"OnvifEndpoint({self.url}, user={self.username!r})"

    @classmethod
    def from_url(cls, url: str, username: str | None, password: str | None) -> OnvifEndpoint:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise NotPtz(f"the ONVIF address {url!r} is not an http(s) URL: correct the camera's onvif_url")
        path = parts.path if parts.path not in ("", "/") else "/onvif/device_service"
        return cls(urlunsplit((scheme, parts.netloc, path, parts.query, "")), username, password)

    @property
    def where(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"  # never the user part of a URL


@dataclass(frozen=True)
class Pose:
    angles: PtzAngles
    onvif: OnvifPosition

    def as_dict(self) -> dict[str, Any]:
        return {**self.angles.as_dict(), "onvif": self.onvif.as_dict()}


@dataclass(frozen=True)
class AimResult:
    camera_id: str
    target: tuple[float, float]
    distance_m: float
    requested: Pose
    reported: Pose | None  # None when the camera's GetStatus gave no position

    def as_dict(self) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id,
            "target": {"lat": self.target[0], "lon": self.target[1]},
            "distance_m": round(self.distance_m, 1),
            "requested": self.requested.as_dict(),
            "reported": self.reported.as_dict() if self.reported else None,
        }


def plan(cam: CctvCamera, lat: float, lon: float) -> Pose:
    """The pose that frames the target, in degrees and in ONVIF's normalised spaces."""
    angles = ptz_angles(cam.lat, cam.lon, cam.height_m, lat, lon, fov_deg=cam.fov_deg, max_zoom=cam.max_zoom)
    return Pose(angles, to_onvif(angles, cam.heading_deg, cam.max_zoom))


# --- the protocol -----------------------------------------------------------------------------------------


def _translate(failure: OnvifFailure, endpoint: OnvifEndpoint) -> PtzError:
    if failure.kind == "auth":
        return AuthRefused(
            f"the camera at {endpoint.where} refused the ONVIF credentials of user "
            f"{endpoint.username!r} ({failure.message}): import the camera again with the right onvif_username and "
            "onvif_password"
        )
    if failure.kind == "unreachable":
        return Unreachable(
            f"the camera at {endpoint.where} cannot be reached ({failure.message}): check its network link and its "
            "onvif_url"
        )
    if failure.kind == "fault":
        return CameraFault(f"the camera at {endpoint.where} answered with a fault: {failure.message}")
    return CameraFault(
        f"the camera at {endpoint.where} answered {failure.message}: is onvif_url the address of its ONVIF service?"
    )


async def _allowed(url: str, networks: tuple[outbound.Network, ...] | None, what: str) -> None:
    if networks is None:  # the caller (a test of the protocol) connects where it was told
        return
    try:
        await outbound.check_url(url, networks, what=what)
    except outbound.OutsideNetwork as exc:
        raise OutsideNetwork(exc.message) from None


async def move(
    endpoint: OnvifEndpoint,
    position: OnvifPosition,
    *,
    timeout_s: float = TIMEOUT_S,
    networks: tuple[outbound.Network, ...] | None = None,
) -> OnvifPosition | None:
    """AbsoluteMove to a normalised position, then the position the camera reports (polled while it says it
    is still moving, within the deadline). Raises a PtzError saying what went wrong. With `networks`, every
    address contacted (the device service, and the service addresses the camera gives back) must lie in them:
    the credentials go nowhere else."""
    import httpx

    deadline = time.monotonic() + timeout_s

    async def check(address: str) -> None:
        own = address == endpoint.url
        what = (
            f"the ONVIF address {endpoint.where}"
            if own
            else f"a service address given by the camera at {endpoint.where}"
        )
        await _allowed(address, networks, what)

    async def exchange(http: httpx.AsyncClient) -> OnvifPosition | None:
        client = OnvifClient(http, endpoint.url, endpoint.username, endpoint.password, check)
        services = await client.discover()
        if TPTZ not in services:
            raise NotPtz(f"the camera at {endpoint.where} has no ONVIF PTZ service: it cannot be aimed")
        if TRT not in services:
            raise CameraFault(f"the camera at {endpoint.where} gives no media service address: it cannot be aimed")
        token = await client.ptz_profile()
        if token is None:
            raise NotPtz(
                f"no media profile of the camera at {endpoint.where} has a PTZ configuration: it cannot be aimed"
            )
        await client.absolute_move(token, position.x, position.y, position.z)
        status = await client.status(token)
        # A real camera takes a moment to get there; report where it ends up if the deadline allows.
        while status.moving and time.monotonic() + STATUS_POLL_S < deadline - 0.3:
            await asyncio.sleep(STATUS_POLL_S)
            status = await client.status(token)
        if status.x is None or status.y is None:
            return None
        return OnvifPosition(status.x, status.y, status.zoom if status.zoom is not None else 0.0)

    auth = httpx.DigestAuth(endpoint.username, endpoint.password or "") if endpoint.username else None
    # No proxy from the environment: the camera is on the CCTV network, and the credentials go to it alone.
    async with httpx.AsyncClient(auth=auth, trust_env=False, follow_redirects=False, timeout=timeout_s) as http:
        try:
            return await asyncio.wait_for(exchange(http), timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            raise Unreachable(
                f"the camera at {endpoint.where} did not answer within {timeout_s:g} s: check its network "
                "link and its onvif_url"
            ) from None
        except OnvifFailure as exc:
            raise _translate(exc, endpoint) from None


async def aim_camera(
    cam: CctvCamera,
    password: str | None,
    lat: float,
    lon: float,
    *,
    timeout_s: float = TIMEOUT_S,
    networks: tuple[outbound.Network, ...] | None = None,
) -> AimResult:
    """Compute the pose for the target and move the camera there (no database, no journal)."""
    if not cam.ptz:
        raise NotPtz(f"{cam.id} is a fixed camera: it cannot be aimed")
    if not cam.onvif_url:
        raise NotPtz(f"{cam.id} has no ONVIF address: set its onvif_url in the registry to aim it")
    requested = plan(cam, lat, lon)
    endpoint = OnvifEndpoint.from_url(cam.onvif_url, cam.onvif_username, password)
    got = await move(endpoint, requested.onvif, timeout_s=timeout_s, networks=networks)
    reported = Pose(from_onvif(got, cam.heading_deg, cam.max_zoom), got) if got is not None else None
    return AimResult(cam.id, (lat, lon), distance_m(cam.lat, cam.lon, lat, lon), requested, reported)


# --- the operation: load, aim, journal, announce --------------------------------------------------------


async def aim(
    p: Context,
    tenant_id: int,
    camera_id: str,
    lat: float,
    lon: float,
    *,
    actor: Actor,
    session_id: str | None = None,
    bus: EventBus | None = None,
    timeout_s: float = TIMEOUT_S,
) -> AimResult:
    """Aim the tenant's camera at (lat, lon): journaled (ptz.aimed / ptz.failed) and announced on the bus."""

    def load() -> tuple[CctvCamera, str | None, tuple[outbound.Network, ...]]:
        with p.session() as db:
            cam = camera_of(db, tenant_id, camera_id)
            if cam is None:
                raise NoSuchCamera(f"no CCTV camera {camera_id} in your commune's registry")
            db.expunge(cam)
            networks = outbound.declared_networks(db.get_one(Tenant, tenant_id))
            try:
                return cam, camera_password(p, cam), networks
            except RegistryError as exc:
                raise AuthRefused(exc.message) from None

    cam, password, networks = await asyncio.to_thread(load)
    target = {"lat": lat, "lon": lon}
    try:
        result = await aim_camera(cam, password, lat, lon, timeout_s=timeout_s, networks=networks)
    except PtzError as exc:
        await asyncio.to_thread(
            _journal,
            p,
            tenant_id,
            "ptz.failed",
            actor,
            {
                "camera_id": camera_id,
                "target": target,
                "session_id": session_id,
                "reason": exc.reason,
                "error": exc.message,
            },
        )
        raise
    await asyncio.to_thread(
        _journal,
        p,
        tenant_id,
        "ptz.aimed",
        actor,
        {
            "camera_id": camera_id,
            "target": target,
            "session_id": session_id,
            "requested": result.requested.angles.as_dict(),
            "reported": result.reported.angles.as_dict() if result.reported else None,
        },
    )
    if bus is not None:
        bus.publish(
            tenant_id,
            "ptz",
            {
                "camera_id": camera_id,
                "session_id": session_id,
                "requested": result.requested.angles.as_dict(),
                "reported": result.reported.angles.as_dict() if result.reported else None,
            },
        )
    return result


def _journal(p: Context, tenant_id: int, event: str, actor: Actor, details: dict[str, Any]) -> None:
    with p.session() as db:
        _record(p, db, db.get_one(Tenant, tenant_id), event, actor, details)
        db.commit()


def _record(p: Context, db: Session, tenant: Tenant, event: str, actor: Actor, details: dict[str, Any]) -> None:
    p.record(db, EntryDraft(action=Action.ADMINISTRATION, event=event, actor=actor, details=details), tenant)
