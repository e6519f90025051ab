"""A simulated ONVIF PTZ camera: the SOAP services a real ONVIF client needs to aim a camera, nothing more.

One HTTP server per camera, in a background thread (stdlib http.server), answering at the standard paths:

- /onvif/device_service: GetSystemDateAndTime, GetCapabilities, GetServices, GetDeviceInformation;
- /onvif/media_service: GetProfiles (one profile, with a PTZConfiguration when the camera is PTZ);
- /onvif/ptz_service: AbsoluteMove, GetStatus, GetConfigurations, Stop.

Every request but the pre-authentication ones (ONVIF Core: GetSystemDateAndTime, GetCapabilities, GetServices)
must carry a WS-Security UsernameToken whose PasswordDigest (Base64(SHA-1(nonce + created + password))) matches the
configured user and password, with a fresh Created time and an unseen nonce; otherwise the answer is the SOAP fault
env:Sender / ter:NotAuthorized (HTTP 400), as ONVIF specifies. A token given on a pre-authentication call is
checked too.

AbsoluteMove takes ONVIF's normalised generic spaces and writes the pose in the world's terms into the shared
`PtzPose` (which the picture renderer reads), with temoin.geo.geometry's convention: pan x relative to the mounting
heading, tilt y over -90..90 degrees, zoom z over 1..max_zoom. GetStatus converts the pose back.

    sim = OnvifPtzSimulator(pose, heading_deg, max_zoom, username, password, host="127.0.0.1", port=0)
    sim.start(); sim.url  # http://127.0.0.1:PORT/onvif/device_service
    sim.stop()
"""

from __future__ import annotations

import base64
import hmac
import threading
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from temoin.demo.cctv.state import PtzPose
from temoin.geo.geometry import OnvifPosition, PtzAngles, from_onvif, to_onvif
from temoin.supervision.onvif_ptz import (
    ENV,
    PAN_TILT_SPACE,
    TDS,
    TPTZ,
    TRT,
    TT,
    WSSE,
    WSU,
    ZOOM_SPACE,
    password_digest,
)

TER = "http://www.onvif.org/ver10/error"
PRE_AUTH = {"GetSystemDateAndTime", "GetCapabilities", "GetServices"}
PROFILE = "profile_1"
PTZ_CONFIG = "ptz_config_1"
PTZ_NODE = "ptz_node_1"
MAX_CLOCK_SKEW_S = 300
MAX_BODY = 64 * 1024
PATHS = {"/onvif/device_service": "device", "/onvif/media_service": "media", "/onvif/ptz_service": "ptz"}


class _Fault(Exception):
    def __init__(self, http: int, code: str, subcode: str, reason: str) -> None:
        super().__init__(reason)
        self.http, self.code, self.subcode, self.reason = http, code, subcode, reason


def _not_authorized(why: str) -> _Fault:
    return _Fault(400, "env:Sender", "ter:NotAuthorized", f"Sender not Authorized ({why})")


def _envelope(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope xmlns:env="{ENV}" xmlns:tds="{TDS}" '
        f'xmlns:trt="{TRT}" xmlns:tptz="{TPTZ}" xmlns:tt="{TT}" xmlns:ter="{TER}">'
        f"<env:Body>{body}</env:Body></env:Envelope>"
    ).encode()


def _fault_body(fault: _Fault) -> str:
    return (
        f"<env:Fault><env:Code><env:Value>{fault.code}</env:Value><env:Subcode><env:Value>{fault.subcode}"
        f'</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">{escape(fault.reason)}'
        "</env:Text></env:Reason></env:Fault>"
    )


def _utc_iso(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_created(text: str) -> float:
    value = text.strip().replace("Z", "+00:00")
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def _float_attr(el: ET.Element | None, name: str) -> float | None:
    if el is None or el.get(name) is None:
        return None
    try:
        return float(el.get(name, ""))
    except ValueError:
        raise _Fault(400, "env:Sender", "ter:InvalidArgVal", f"{name} is not a number") from None


class OnvifPtzSimulator:
    """A simulated ONVIF camera on its own port. With ptz=False it is a fixed camera: no PTZ service, no
    PTZConfiguration in its profile (what a real fixed camera answers)."""

    def __init__(
        self,
        pose: PtzPose,
        heading_deg: float,
        max_zoom: float,
        username: str,
        password: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ptz: bool = True,
        name: str = "Témoin CCTV simulator",
        serial: str = "SIM-0001",
        clock_offset_s: float = 0.0,
        get_services: bool = True,
    ) -> None:
        self.pose = pose
        self.heading_deg = heading_deg
        self.max_zoom = max_zoom
        self.username = username
        self.password = password
        self.host = host
        self.port = port
        self.ptz = ptz
        self.name = name
        self.serial = serial
        self.clock_offset_s = clock_offset_s  # a camera whose clock is wrong (many are: no NTP on the CCTV network)
        self.get_services = get_services  # False: an older camera that knows only GetCapabilities
        self.requests: list[str] = []  # operations served, in order (the tests read it)
        self.refused = 0  # requests refused for authentication
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> OnvifPtzSimulator:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "TemoinOnvifSim/1.0"

            def do_POST(self) -> None:  # http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                status, body = sim.handle(
                    self.path, self.rfile.read(min(length, MAX_BODY)) if length else b"", too_big=length > MAX_BODY
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # quiet: tests and demo
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"onvif-sim-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OnvifPtzSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/onvif/device_service"

    # --- one SOAP request --------------------------------------------------------------------------------

    def handle(self, path: str, data: bytes, *, too_big: bool = False) -> tuple[int, bytes]:
        try:
            if too_big:
                raise _Fault(400, "env:Sender", "ter:InvalidArgs", "request too large")
            service = PATHS.get(path.split("?", 1)[0])
            if service is None or (service == "ptz" and not self.ptz):
                raise _Fault(400, "env:Sender", "ter:ActionNotSupported", f"no service at {path}")
            try:
                root = ET.fromstring(data)  # noqa: S314 - the demo's simulated camera parses the local platform's requests
            except ET.ParseError as exc:
                raise _Fault(400, "env:Sender", "ter:WellFormed", f"not well-formed XML: {exc}") from None
            body = root.find(f"{{{ENV}}}Body")
            request = body[0] if body is not None and len(body) else None
            if request is None:
                raise _Fault(400, "env:Sender", "ter:InvalidArgs", "empty SOAP body")
            operation = request.tag.rsplit("}", 1)[-1]
            self._authenticate(root, operation)
            handler = self._operations().get((service, operation))
            if operation == "GetServices" and not self.get_services:
                handler = None
            if handler is None:
                raise _Fault(
                    500,
                    "env:Receiver",
                    "ter:ActionNotSupported",
                    f"{operation} is not supported by this simulator's {service} service",
                )
            out = handler(request)
            with self._lock:
                self.requests.append(operation)
            return 200, _envelope(out)
        except _Fault as fault:
            return fault.http, _envelope(_fault_body(fault))

    def _operations(self) -> dict[tuple[str, str], Callable[[ET.Element], str]]:
        return {
            ("device", "GetSystemDateAndTime"): self._date_and_time,
            ("device", "GetCapabilities"): self._capabilities,
            ("device", "GetServices"): self._services,
            ("device", "GetDeviceInformation"): self._device_information,
            ("media", "GetProfiles"): self._profiles,
            ("ptz", "AbsoluteMove"): self._absolute_move,
            ("ptz", "GetStatus"): self._status,
            ("ptz", "GetConfigurations"): self._configurations,
            ("ptz", "Stop"): lambda _req: "<tptz:StopResponse/>",
        }

    def _authenticate(self, root: ET.Element, operation: str) -> None:
        token = root.find(f"{{{ENV}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            if operation in PRE_AUTH:
                return
            self._refuse()
            raise _not_authorized("no WS-Security UsernameToken")
        username = (token.findtext(f"{{{WSSE}}}Username") or "").strip()
        password_el = token.find(f"{{{WSSE}}}Password")
        given = (password_el.text or "") if password_el is not None else ""
        kind = (password_el.get("Type", "") if password_el is not None else "").rsplit("#", 1)[-1]
        if kind == "PasswordDigest":
            nonce_b64 = (token.findtext(f"{{{WSSE}}}Nonce") or "").strip()
            created = (token.findtext(f"{{{WSU}}}Created") or "").strip()
            try:
                nonce = base64.b64decode(nonce_b64, validate=True)
                created_at = _parse_created(created)
            except ValueError:
                self._refuse()
                raise _not_authorized("malformed nonce or created time") from None
            if abs(self.now() - created_at) > MAX_CLOCK_SKEW_S:
                self._refuse()
                raise _not_authorized("created time too far from the camera's clock")
            expected = password_digest(nonce, created, self.password).encode()
            ok = hmac.compare_digest(expected, given.strip().encode())
            with self._lock:
                replayed = nonce_b64 in self._nonces
                if ok and not replayed:
                    self._nonces[nonce_b64] = time.time()
                    while len(self._nonces) > 10_000:
                        self._nonces.popitem(last=False)
            if ok and replayed:
                self._refuse()
                raise _not_authorized("nonce already used")
        else:  # PasswordText, which the ONVIF profile allows too
            ok = hmac.compare_digest(given.encode(), self.password.encode())
        if not (ok and hmac.compare_digest(username.encode(), self.username.encode())):
            self._refuse()
            raise _not_authorized("wrong username or password")

    def _refuse(self) -> None:
        with self._lock:
            self.refused += 1

    # --- device service ---------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.clock_offset_s

    def _date_and_time(self, _req: ET.Element) -> str:
        now = datetime.fromtimestamp(self.now(), UTC)
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>"
            "<tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
            f"<tt:UTCDateTime><tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
            f"<tt:Second>{now.second}</tt:Second></tt:Time><tt:Date><tt:Year>{now.year}</tt:Year>"
            f"<tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day></tt:Date></tt:UTCDateTime>"
            "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def _capabilities(self, _req: ET.Element) -> str:
        ptz = f"<tt:PTZ><tt:XAddr>{self.base}/onvif/ptz_service</tt:XAddr></tt:PTZ>" if self.ptz else ""
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{self.url}</tt:XAddr></tt:Device>"
            f"<tt:Media><tt:XAddr>{self.base}/onvif/media_service</tt:XAddr><tt:StreamingCapabilities>"
            "<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
            "<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
            f"{ptz}</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _services(self, _req: ET.Element) -> str:
        services = [(TDS, self.url), (TRT, f"{self.base}/onvif/media_service")]
        if self.ptz:
            services.append((TPTZ, f"{self.base}/onvif/ptz_service"))
        items = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{xaddr}</tds:XAddr>"
            "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
            for ns, xaddr in services
        )
        return f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>"

    def _device_information(self, _req: ET.Element) -> str:
        return (
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>Témoin</tds:Manufacturer>"
            f"<tds:Model>{escape(self.name)}</tds:Model><tds:FirmwareVersion>1.0</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{escape(self.serial)}</tds:SerialNumber><tds:HardwareId>sim</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )

    # --- media service ----------------------------------------------------------------------------------

    def _ptz_configuration(self, element: str) -> str:
        return (
            f'<{element} token="{PTZ_CONFIG}"><tt:Name>PTZ</tt:Name><tt:UseCount>1</tt:UseCount>'
            f"<tt:NodeToken>{PTZ_NODE}</tt:NodeToken>"
            f"<tt:DefaultAbsolutePantTiltPositionSpace>{PAN_TILT_SPACE}</tt:DefaultAbsolutePantTiltPositionSpace>"
            f"<tt:DefaultAbsoluteZoomPositionSpace>{ZOOM_SPACE}</tt:DefaultAbsoluteZoomPositionSpace>"
            "<tt:DefaultPTZTimeout>PT5S</tt:DefaultPTZTimeout>"
            f"<tt:PanTiltLimits><tt:Range><tt:URI>{PAN_TILT_SPACE}</tt:URI>"
            "<tt:XRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:XRange>"
            "<tt:YRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:YRange></tt:Range></tt:PanTiltLimits>"
            f"<tt:ZoomLimits><tt:Range><tt:URI>{ZOOM_SPACE}</tt:URI>"
            "<tt:XRange><tt:Min>0</tt:Min><tt:Max>1</tt:Max></tt:XRange></tt:Range></tt:ZoomLimits>"
            f"</{element}>"
        )

    def _profiles(self, _req: ET.Element) -> str:
        ptz = self._ptz_configuration("tt:PTZConfiguration") if self.ptz else ""
        return (
            f'<trt:GetProfilesResponse><trt:Profiles token="{PROFILE}" fixed="true"><tt:Name>main</tt:Name>'
            '<tt:VideoSourceConfiguration token="video_source_config_1"><tt:Name>video</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:SourceToken>video_source_1</tt:SourceToken>"
            '<tt:Bounds x="0" y="0" width="1280" height="720"/></tt:VideoSourceConfiguration>'
            f"{ptz}</trt:Profiles></trt:GetProfilesResponse>"
        )

    # --- PTZ service ------------------------------------------------------------------------------------

    def _profile_of(self, req: ET.Element) -> None:
        token = (req.findtext(f"{{{TPTZ}}}ProfileToken") or "").strip()
        if token != PROFILE:
            raise _Fault(400, "env:Sender", "ter:NoProfile", f"no media profile {token!r}")

    def _absolute_move(self, req: ET.Element) -> str:
        self._profile_of(req)
        position = req.find(f"{{{TPTZ}}}Position")
        if position is None:
            raise _Fault(400, "env:Sender", "ter:InvalidArgVal", "AbsoluteMove needs a Position")
        pan_tilt = position.find(f"{{{TT}}}PanTilt")
        zoom_el = position.find(f"{{{TT}}}Zoom")
        for el, space in ((pan_tilt, PAN_TILT_SPACE), (zoom_el, ZOOM_SPACE)):
            if el is not None and el.get("space") not in (None, "", space):
                raise _Fault(
                    400, "env:Sender", "ter:InvalidArgVal", f"only the generic position space {space} is supported"
                )
        current = to_onvif(PtzAngles(*self.pose.snapshot()), self.heading_deg, self.max_zoom)
        x = _float_attr(pan_tilt, "x")
        y = _float_attr(pan_tilt, "y")
        z = _float_attr(zoom_el, "x")
        x, y, z = (current.x if x is None else x), (current.y if y is None else y), (current.z if z is None else z)
        if not (-1 <= x <= 1 and -1 <= y <= 1 and 0 <= z <= 1):
            raise _Fault(
                400, "env:Sender", "ter:InvalidPosition", f"position out of the generic space: x={x}, y={y}, zoom={z}"
            )
        angles = from_onvif(OnvifPosition(x, y, z), self.heading_deg, self.max_zoom)
        self.pose.set(angles.pan_deg, angles.tilt_deg, angles.zoom)
        return "<tptz:AbsoluteMoveResponse/>"

    def _status(self, req: ET.Element) -> str:
        self._profile_of(req)
        at = to_onvif(PtzAngles(*self.pose.snapshot()), self.heading_deg, self.max_zoom)
        return (
            "<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>"
            f'<tt:PanTilt x="{at.x:.6f}" y="{at.y:.6f}" space="{PAN_TILT_SPACE}"/>'
            f'<tt:Zoom x="{at.z:.6f}" space="{ZOOM_SPACE}"/></tt:Position>'
            "<tt:MoveStatus><tt:PanTilt>IDLE</tt:PanTilt><tt:Zoom>IDLE</tt:Zoom></tt:MoveStatus>"
            f"<tt:UtcTime>{_utc_iso()}</tt:UtcTime></tptz:PTZStatus></tptz:GetStatusResponse>"
        )

    def _configurations(self, _req: ET.Element) -> str:
        return (
            "<tptz:GetConfigurationsResponse>"
            + self._ptz_configuration("tptz:PTZConfiguration")
            + "</tptz:GetConfigurationsResponse>"
        )
