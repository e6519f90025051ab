"""The ONVIF client of a PTZ aim: the five SOAP 1.2 requests it needs, over httpx, with WS-Security.

Why not a general ONVIF library: onvif-zeep-async builds zeep's model of every ONVIF schema, 42 MiB in the
server's process (25 at import, 17 to parse the three WSDLs, about a second of CPU) for five messages whose shape
never changes. tests/test_onvif.py checks that each request here is, element for element, the one that library
sends, and runs the library against the same simulated camera.

The requests (ONVIF Core, Media and PTZ service specifications):
- device service: GetServices (the services' addresses), or GetCapabilities on older cameras that fault on it;
  GetSystemDateAndTime (pre-authentication) when the camera refuses a token, to correct for its clock;
- media service: GetProfiles, for the profile that carries a PTZ configuration;
- PTZ service: AbsoluteMove in the normalised generic spaces, then GetStatus.

Authentication is the WS-Security UsernameToken with PasswordDigest, Base64(SHA-1(nonce + created + password)), on
every request (ONVIF Core 5.12); a camera that asks for HTTP digest instead gets it (httpx.DigestAuth answers the
challenge). Answers are parsed with defusedxml and bounded in size: a camera is a device on the network, not
trusted input.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape, quoteattr

from temoin import errors

if TYPE_CHECKING:
    import httpx

ENV = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TPTZ = "http://www.onvif.org/ver20/ptz/wsdl"
TT = "http://www.onvif.org/ver10/schema"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"  # noqa: S105 - a type URI
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
PAN_TILT_SPACE = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace"
ZOOM_SPACE = "http://www.onvif.org/ver10/tptz/ZoomSpaces/PositionGenericSpace"
MAX_ANSWER_BYTES = 1024 * 1024  # a profile list with many profiles is tens of kilobytes
SKEW_TOLERATED_S = 5.0  # a camera clock off by more than this gets tokens dated by its own clock


class OnvifFailure(errors.UpstreamFault):
    """What went wrong with the camera: `kind` is "unreachable", "auth", "fault" or "http" (supervision.ptz turns it
    into the PtzError the CSU is shown)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class PtzStatus:
    x: float | None
    y: float | None
    zoom: float | None
    moving: bool


def created_at(t: float) -> str:
    """A token's Created time: UTC, milliseconds, Z."""
    at = datetime.fromtimestamp(t, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def password_digest(nonce: bytes, stamp: str, password: str) -> str:
    """WS-Security's PasswordDigest: Base64(SHA-1(nonce + Created text + password))."""
    return base64.b64encode(hashlib.sha1(nonce + stamp.encode() + password.encode()).digest()).decode()  # noqa: S324 - WS-Security PasswordDigest is defined over SHA-1


def username_token(username: str, password: str, stamp: str, nonce: bytes) -> str:
    """The WS-Security header's UsernameToken, with its PasswordDigest over the Created text `stamp`."""
    digest = password_digest(nonce, stamp, password)
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
        f"<wsse:Username>{escape(username)}</wsse:Username>"
        f'<wsse:Password Type="{PASSWORD_DIGEST}">{digest}</wsse:Password>'
        f'<wsse:Nonce EncodingType="{BASE64}">{base64.b64encode(nonce).decode()}</wsse:Nonce>'
        f"<wsu:Created>{stamp}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


def envelope(body: str, header: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<soap-env:Envelope xmlns:soap-env="{ENV}">'
        f"<soap-env:Header>{header}</soap-env:Header><soap-env:Body>{body}</soap-env:Body></soap-env:Envelope>"
    ).encode()


# --- the requests' bodies ---------------------------------------------------------------------------------


def get_services_body() -> str:
    return f'<tds:GetServices xmlns:tds="{TDS}"><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>'


def get_capabilities_body() -> str:
    return f'<tds:GetCapabilities xmlns:tds="{TDS}"><tds:Category>All</tds:Category></tds:GetCapabilities>'


def get_system_date_and_time_body() -> str:
    return f'<tds:GetSystemDateAndTime xmlns:tds="{TDS}"/>'


def get_profiles_body() -> str:
    return f'<trt:GetProfiles xmlns:trt="{TRT}"/>'


def absolute_move_body(profile: str, x: float, y: float, zoom: float) -> str:
    return (
        f'<tptz:AbsoluteMove xmlns:tptz="{TPTZ}" xmlns:tt="{TT}">'
        f"<tptz:ProfileToken>{escape(profile)}</tptz:ProfileToken>"
        f'<tptz:Position><tt:PanTilt x="{x!r}" y="{y!r}" space="{PAN_TILT_SPACE}"/>'
        f'<tt:Zoom x="{zoom!r}" space="{ZOOM_SPACE}"/></tptz:Position></tptz:AbsoluteMove>'
    )


def get_status_body(profile: str) -> str:
    return (
        f'<tptz:GetStatus xmlns:tptz="{TPTZ}"><tptz:ProfileToken>{escape(profile)}</tptz:ProfileToken></tptz:GetStatus>'
    )


# --- reading the answers ----------------------------------------------------------------------------------


def _parse(data: bytes) -> Element | None:
    from defusedxml import ElementTree as SafeTree  # refuses entities and DTDs

    try:
        return SafeTree.fromstring(data)
    except Exception:  # noqa: BLE001 - expat's ParseError, defusedxml's refusals: all mean "not SOAP"
        return None


def _body(root: Element) -> Element | None:
    body = root.find(f"{{{ENV}}}Body")
    return body[0] if body is not None and len(body) else None


def fault_of(root: Element | None) -> tuple[str, str] | None:
    """(the codes, "Sender NotAuthorized" etc., the reason) of a SOAP fault; None for an answer."""
    first = _body(root) if root is not None else None
    if first is None or first.tag != f"{{{ENV}}}Fault":
        return None
    codes = " ".join((v.text or "").strip().rsplit(":", 1)[-1] for v in first.iter(f"{{{ENV}}}Value"))
    reason = " ".join((t.text or "").strip() for t in first.iter(f"{{{ENV}}}Text")) or codes
    return codes, reason[:300]  # the camera's words go to the journal and the CSU: bounded


def services_of(answer: Element) -> dict[str, str]:
    """namespace → address, from GetServicesResponse."""
    return {
        (s.findtext(f"{{{TDS}}}Namespace") or "").strip(): (s.findtext(f"{{{TDS}}}XAddr") or "").strip()
        for s in answer.iter(f"{{{TDS}}}Service")
    }


def capabilities_of(answer: Element) -> dict[str, str]:
    """namespace → address, from GetCapabilitiesResponse (Media and PTZ only: what an aim needs)."""
    found = {}
    for name, namespace in (("Media", TRT), ("PTZ", TPTZ)):
        xaddr = answer.findtext(f".//{{{TT}}}{name}/{{{TT}}}XAddr")
        if xaddr:
            found[namespace] = xaddr.strip()
    return found


def camera_time(answer: Element) -> datetime | None:
    utc = answer.find(f".//{{{TT}}}UTCDateTime")
    if utc is None:
        return None
    try:
        y, mo, d, h, mi, s = (
            int(utc.findtext(f".//{{{TT}}}{name}") or "")
            for name in ("Year", "Month", "Day", "Hour", "Minute", "Second")
        )
        return datetime(y, mo, d, h, mi, s, tzinfo=UTC)
    except ValueError:
        return None


def ptz_profile_of(answer: Element) -> str | None:
    """The token of the first media profile that has a PTZ configuration."""
    for profile in answer.iter(f"{{{TRT}}}Profiles"):
        if profile.find(f"{{{TT}}}PTZConfiguration") is not None and profile.get("token"):
            return profile.get("token")
    return None


def status_of(answer: Element) -> PtzStatus:
    def number(el: Element | None, name: str) -> float | None:
        try:
            return float(el.get(name, "")) if el is not None else None
        except ValueError:
            return None

    position = answer.find(f".//{{{TT}}}Position")
    pan_tilt = position.find(f"{{{TT}}}PanTilt") if position is not None else None
    zoom = position.find(f"{{{TT}}}Zoom") if position is not None else None
    move = answer.find(f".//{{{TT}}}MoveStatus")
    moving = move is not None and any(
        (move.findtext(f"{{{TT}}}{axis}") or "").strip().upper() == "MOVING" for axis in ("PanTilt", "Zoom")
    )
    return PtzStatus(number(pan_tilt, "x"), number(pan_tilt, "y"), number(zoom, "x"), moving)


# --- the exchange -----------------------------------------------------------------------------------------


class OnvifClient:
    """One camera's ONVIF services, for one aim. `check_address` sees every address before it is contacted (the
    credentials go only where the tenant allows)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        device_url: str,
        username: str | None,
        password: str | None,
        check_address: Callable[[str], Awaitable[None]],
    ) -> None:
        self.http, self.device_url = http, device_url
        self.username, self.password = username, password
        self.check_address = check_address
        self.skew_s = 0.0  # the camera's clock minus ours, once a refusal made us ask
        self.services: dict[str, str] = {}

    async def call(self, url: str, action: str, body: str, *, signed: bool = True) -> Element:
        """The answer's first body element; raises OnvifFailure for a fault, an HTTP error, or no answer."""
        import httpx

        header = ""
        if signed and self.username is not None:
            stamp = created_at(time.time() + self.skew_s)
            header = username_token(self.username, self.password or "", stamp, secrets.token_bytes(16))
        try:
            async with self.http.stream(
                "POST",
                url,
                content=envelope(body, header),
                headers={"Content-Type": f"application/soap+xml; charset=utf-8; action={quoteattr(action)}"},
            ) as reply:
                data = bytearray()
                async for chunk in reply.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        raise OnvifFailure("http", f"answered more than {MAX_ANSWER_BYTES} bytes to {action}")
                status = reply.status_code
        except httpx.TransportError as exc:
            raise OnvifFailure("unreachable", f"{type(exc).__name__}") from None
        root = _parse(bytes(data))
        fault = fault_of(root)
        if fault is not None:
            codes, reason = fault
            refused = "notauthorized" in codes.lower() or "not authorized" in reason.lower()
            raise OnvifFailure("auth" if refused else "fault", reason)
        if status in (401, 403):
            raise OnvifFailure("auth", f"HTTP {status}")
        answer = _body(root) if root is not None else None
        if status != 200 or answer is None:
            raise OnvifFailure("http", f"HTTP {status}")
        return answer

    async def signed_call(self, url: str, action: str, body: str) -> Element:
        """A call whose refusal may come from the camera's clock: asked once more with tokens dated by it."""
        try:
            return await self.call(url, action, body)
        except OnvifFailure as exc:
            if exc.kind != "auth" or self.username is None or not await self._learn_skew():
                raise
        return await self.call(url, action, body)

    async def _learn_skew(self) -> bool:
        """Ask the camera its time (pre-authentication); True if it is far enough from ours to explain a refusal."""
        try:
            answer = await self.call(
                self.device_url, f"{TDS}/GetSystemDateAndTime", get_system_date_and_time_body(), signed=False
            )
        except OnvifFailure:
            return False
        theirs = camera_time(answer)
        if theirs is None:
            return False
        skew = theirs.timestamp() - time.time()
        if abs(skew - self.skew_s) <= SKEW_TOLERATED_S:
            return False
        self.skew_s = skew
        return True

    async def discover(self) -> dict[str, str]:
        """The services' addresses: GetServices, or GetCapabilities where the camera faults on it."""
        await self.check_address(self.device_url)
        try:
            services = services_of(await self.signed_call(self.device_url, f"{TDS}/GetServices", get_services_body()))
        except OnvifFailure as exc:
            if exc.kind not in ("fault", "http"):
                raise
            services = {}
        if not services:
            answer = await self.signed_call(self.device_url, f"{TDS}/GetCapabilities", get_capabilities_body())
            services = capabilities_of(answer)
        for address in services.values():
            await self.check_address(address)
        self.services = services
        return services

    async def ptz_profile(self) -> str | None:
        answer = await self.signed_call(self.services[TRT], f"{TRT}/GetProfiles", get_profiles_body())
        return ptz_profile_of(answer)

    async def absolute_move(self, profile: str, x: float, y: float, zoom: float) -> None:
        await self.signed_call(self.services[TPTZ], f"{TPTZ}/AbsoluteMove", absolute_move_body(profile, x, y, zoom))

    async def status(self, profile: str) -> PtzStatus:
        return status_of(await self.signed_call(self.services[TPTZ], f"{TPTZ}/GetStatus", get_status_body(profile)))
