"""PTZ aiming over ONVIF: supervision.ptz and its requests (supervision.onvif_ptz) against the simulated ONVIF PTZ
camera of the demo, over real HTTP and SOAP with WS-Security digests.

Our requests are written by hand (zeep's model of the ONVIF schemas costs the server 42 MiB): each is checked here
against the one the ONVIF library (onvif-zeep-async, a test dependency) builds from the ONVIF WSDLs, and the library
itself still aims the simulated camera, so that the simulator answers what a real client sends."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Iterator

import pytest

from temoin.demo.cctv.onvif_sim import OnvifPtzSimulator
from temoin.demo.cctv.state import PtzPose
from temoin.geo.geometry import angle_diff_deg, bearing_deg
from temoin.supervision import onvif_ptz, ptz
from temoin.supervision.models import CctvCamera

USER, PASSWORD = "csu-ptz", "Onvif-Pa55word!"
CAM = (43.5572, 4.0796)  # a mast at a crossroads of Port-Témoin


def point(bearing: float, metres: float) -> tuple[float, float]:
    lat, lon = CAM
    return (
        lat + metres * math.cos(math.radians(bearing)) / 111_195,
        lon + metres * math.sin(math.radians(bearing)) / (111_195 * math.cos(math.radians(lat))),
    )


def camera(url: str, *, heading: float = 0.0, ptz_: bool = True) -> CctvCamera:
    return CctvCamera(
        tenant_id=1,
        id="cctv-02",
        name="Avenue de la Mer × Rue du Port",
        lat=CAM[0],
        lon=CAM[1],
        height_m=8.0,
        heading_deg=heading,
        fov_deg=60.0,
        range_m=250.0,
        ptz=ptz_,
        max_zoom=30.0,
        stream_url="rtsp://127.0.0.1:8554/cctv-02",
        onvif_url=url,
        onvif_username=USER,
    )


@pytest.fixture
def sim() -> Iterator[OnvifPtzSimulator]:
    with OnvifPtzSimulator(PtzPose(), heading_deg=0.0, max_zoom=30.0, username=USER, password=PASSWORD) as s:
        yield s


def test_aiming_a_simulated_ptz_camera_over_onvif(sim: OnvifPtzSimulator):
    cam = camera(sim.url)
    target = point(350.0, 80.0)
    result = asyncio.run(ptz.aim_camera(cam, PASSWORD, *target))
    expected = bearing_deg(*CAM, *target)
    pan, tilt, zoom = sim.pose.snapshot()
    # The pose the camera holds, and the one it reports back through GetStatus.
    assert abs(angle_diff_deg(pan, expected)) < 0.5 and tilt < 0 and zoom > 1
    assert abs(angle_diff_deg(result.requested.angles.pan_deg, expected)) < 0.5
    assert result.reported is not None
    assert abs(angle_diff_deg(result.reported.angles.pan_deg, expected)) < 0.5
    assert result.reported.angles.tilt_deg < 0
    assert result.reported.angles.tilt_deg == pytest.approx(math.degrees(math.atan2(1.6 - 8.0, 80)), abs=0.5)
    assert result.requested.onvif.x == pytest.approx(-10 / 180, abs=0.003)  # 10° anticlockwise of the heading
    assert sim.requests[-2:] == ["AbsoluteMove", "GetStatus"]

    # Across north: from 350° to 10° is a 20° turn clockwise, not 340° the other way.
    target = point(10.0, 40.0)
    result = asyncio.run(ptz.aim_camera(cam, PASSWORD, *target))
    pan, tilt, _ = sim.pose.snapshot()
    assert abs(angle_diff_deg(pan, bearing_deg(*CAM, *target))) < 0.5 and pan < 20
    assert abs(angle_diff_deg(result.reported.angles.pan_deg, bearing_deg(*CAM, *target))) < 0.5
    assert result.requested.onvif.x == pytest.approx(10 / 180, abs=0.003)
    assert tilt < 0 and sim.pose.moves == 2


def test_pan_is_sent_relative_to_the_mounting_heading():
    with OnvifPtzSimulator(PtzPose(), heading_deg=170.2, max_zoom=30.0, username=USER, password=PASSWORD) as s:
        target = point(45.0, 60.0)
        result = asyncio.run(ptz.aim_camera(camera(s.url, heading=170.2), PASSWORD, *target))
        assert abs(angle_diff_deg(s.pose.snapshot()[0], 45.0)) < 0.5
        assert result.requested.onvif.x == pytest.approx((45.0 - 170.2) / 180, abs=0.003)


def test_a_wrong_password_is_a_clear_error_and_nothing_moves(sim: OnvifPtzSimulator):
    with pytest.raises(ptz.AuthRefused) as caught:
        asyncio.run(ptz.aim_camera(camera(sim.url), "not the password", *point(90, 50)))
    message = str(caught.value)
    assert "refused the ONVIF credentials" in message and USER in message and "not the password" not in message
    assert sim.pose.moves == 0 and sim.refused >= 1


def test_a_fixed_camera_or_a_dead_one_is_a_clear_error():
    with OnvifPtzSimulator(PtzPose(), 0.0, 1.0, USER, PASSWORD, ptz=False) as fixed:
        with pytest.raises(ptz.NotPtz, match="no ONVIF PTZ service"):
            asyncio.run(ptz.aim_camera(camera(fixed.url), PASSWORD, *point(0, 30)))
    with pytest.raises(ptz.NotPtz, match="fixed camera"):
        asyncio.run(ptz.aim_camera(camera("http://127.0.0.1:1", ptz_=False), PASSWORD, *point(0, 30)))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with pytest.raises(ptz.Unreachable, match="cannot be reached"):
        asyncio.run(ptz.aim_camera(camera(f"http://127.0.0.1:{dead}/onvif/device_service"), PASSWORD, *point(0, 30)))


def test_a_silent_camera_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/onvif/device_service"
        with pytest.raises(ptz.Unreachable, match=r"did not answer within 0.5 s"):
            asyncio.run(ptz.aim_camera(camera(url), PASSWORD, *point(0, 30), timeout_s=0.5))
    finally:
        listener.close()


def test_a_camera_whose_clock_is_an_hour_off_is_still_aimed():
    """Many CCTV cameras have no NTP: the first token is refused for its time, the camera's clock is asked
    (GetSystemDateAndTime, pre-authentication) and the aim goes on with tokens dated by it."""
    with OnvifPtzSimulator(PtzPose(), 0.0, 30.0, USER, PASSWORD, clock_offset_s=-3600.0) as late:
        target = point(120.0, 60.0)
        result = asyncio.run(ptz.aim_camera(camera(late.url), PASSWORD, *target))
        assert abs(angle_diff_deg(late.pose.snapshot()[0], bearing_deg(*CAM, *target))) < 0.5
        assert result.reported is not None and late.refused == 1
        assert "GetSystemDateAndTime" in late.requests
    # A wrong password stays a wrong password, clock or not: refused, said so, nothing moved.
    with OnvifPtzSimulator(PtzPose(), 0.0, 30.0, USER, PASSWORD, clock_offset_s=-3600.0) as late:
        with pytest.raises(ptz.AuthRefused, match="refused the ONVIF credentials"):
            asyncio.run(ptz.aim_camera(camera(late.url), "wrong", *point(0, 30)))
        assert late.pose.moves == 0


def test_an_older_camera_without_get_services_is_found_through_get_capabilities():
    with OnvifPtzSimulator(PtzPose(), 0.0, 30.0, USER, PASSWORD, get_services=False) as old:
        target = point(200.0, 50.0)
        asyncio.run(ptz.aim_camera(camera(old.url), PASSWORD, *target))
        assert abs(angle_diff_deg(old.pose.snapshot()[0], bearing_deg(*CAM, *target))) < 0.5
        assert "GetCapabilities" in old.requests and "GetServices" not in old.requests


def test_a_hostile_or_broken_answer_is_a_clear_error():
    """The camera is a device on the network: an XML bomb, a huge answer or a page that is not SOAP each give a
    CameraFault naming the camera; nothing is expanded nor read past the bound."""
    import httpx

    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope">'
        b"<e:Body><x>&c;</x></e:Body></e:Envelope>"
    )
    answers = {
        "bomb": (200, bomb),
        "huge": (200, b"<a>" + b"x" * (onvif_ptz.MAX_ANSWER_BYTES + 10) + b"</a>"),
        "html": (404, b"<html><body>Not Found</body></html>"),
    }
    for name, (status, content) in answers.items():
        transport = httpx.MockTransport(
            lambda request, status=status, content=content: httpx.Response(status, content=content)
        )

        async def aim(transport: httpx.MockTransport = transport) -> None:
            async with httpx.AsyncClient(transport=transport) as http:

                async def anywhere(_url: str) -> None:
                    return None

                client = onvif_ptz.OnvifClient(
                    http, "http://cam.example/onvif/device_service", USER, PASSWORD, anywhere
                )
                await client.discover()

        with pytest.raises(onvif_ptz.OnvifFailure) as caught:
            asyncio.run(aim())
        assert caught.value.kind == "http", (name, caught.value.kind, caught.value.message)


def _library_message(wsdl: str, binding: str, operation: str, **args: object):
    """The request the ONVIF library builds for `operation`, from the ONVIF WSDL it ships."""
    import os

    import onvif
    import zeep

    client = zeep.Client(os.path.join(os.path.dirname(onvif.__file__), "wsdl", wsdl))
    service = client.create_service(binding, "http://camera.invalid/onvif/service")
    return client.create_message(service, operation, **args)


def _shape(element) -> tuple:
    """An element as namespaced tag, attributes (numbers as numbers) and children: prefixes do not matter."""

    def value(v: str) -> object:
        try:
            return float(v)
        except ValueError:
            return v

    body = element.find(f"{{{onvif_ptz.ENV}}}Body")
    element = body[0] if body is not None else element
    return (
        element.tag,
        sorted((k, value(v)) for k, v in element.attrib.items()),
        (element.text or "").strip(),
        [_shape(child) for child in element],
    )


def test_our_requests_are_the_ones_the_onvif_library_builds():
    from lxml import etree

    device = ("devicemgmt.wsdl", "{http://www.onvif.org/ver10/device/wsdl}DeviceBinding")
    media = ("media.wsdl", "{http://www.onvif.org/ver10/media/wsdl}MediaBinding")
    ptz_ = ("ptz.wsdl", "{http://www.onvif.org/ver20/ptz/wsdl}PTZBinding")
    position = {
        "PanTilt": {"x": -0.0556, "y": 0.875, "space": onvif_ptz.PAN_TILT_SPACE},
        "Zoom": {"x": 0.125, "space": onvif_ptz.ZOOM_SPACE},
    }
    cases = [
        (device, "GetServices", {"IncludeCapability": False}, onvif_ptz.get_services_body()),
        (device, "GetCapabilities", {"Category": "All"}, onvif_ptz.get_capabilities_body()),
        (device, "GetSystemDateAndTime", {}, onvif_ptz.get_system_date_and_time_body()),
        (media, "GetProfiles", {}, onvif_ptz.get_profiles_body()),
        (
            ptz_,
            "AbsoluteMove",
            {"ProfileToken": "profile <1>", "Position": position},
            onvif_ptz.absolute_move_body("profile <1>", -0.0556, 0.875, 0.125),
        ),
        (ptz_, "GetStatus", {"ProfileToken": "profile_1"}, onvif_ptz.get_status_body("profile_1")),
    ]
    for (wsdl, binding), operation, args, ours in cases:
        theirs = _library_message(wsdl, binding, operation, **args)
        mine = etree.fromstring(onvif_ptz.envelope(ours))
        assert _shape(mine) == _shape(theirs), operation


def test_our_password_digest_is_the_one_the_library_computes():
    from lxml import etree
    from zeep.wsse.username import UsernameToken

    nonce = "0123456789abcdef"
    envelope = etree.fromstring(onvif_ptz.envelope(onvif_ptz.get_profiles_body()))
    token = UsernameToken(USER, PASSWORD, use_digest=True, nonce=nonce, zulu_timestamp=True)
    envelope, _ = token.apply(envelope, {})
    ns = {"wsse": onvif_ptz.WSSE, "wsu": onvif_ptz.WSU}
    created = envelope.findtext(".//wsu:Created", namespaces=ns)
    theirs = envelope.findtext(".//wsse:Password", namespaces=ns)
    ours = etree.fromstring(onvif_ptz.username_token(USER, PASSWORD, created, nonce.encode()))
    assert ours.findtext(".//wsse:Password", namespaces=ns) == theirs
    assert ours.findtext(".//wsse:Nonce", namespaces=ns) == envelope.findtext(".//wsse:Nonce", namespaces=ns)


def test_the_onvif_library_itself_aims_the_simulated_camera(sim: OnvifPtzSimulator):
    """The simulator answers what the reference client sends (else our requests and it could agree on a mistake)."""
    from onvif import ONVIFCamera

    async def aim() -> object:
        cam = ONVIFCamera("127.0.0.1", sim.port, USER, PASSWORD)
        try:
            await cam.update_xaddrs()
            media = await cam.create_media_service()
            token = next(p.token for p in await media.GetProfiles() if p.PTZConfiguration is not None)
            control = await cam.create_ptz_service()
            await control.AbsoluteMove({"ProfileToken": token, "Position": {"PanTilt": {"x": 0.5, "y": 0.0}}})
            return await control.GetStatus({"ProfileToken": token})
        finally:
            await cam.close()

    status = asyncio.run(aim())
    assert float(status.Position.PanTilt.x) == pytest.approx(0.5, abs=1e-3) and sim.pose.moves == 1


def test_aiming_leaves_the_onvif_library_and_zeep_out_of_the_server():
    """The server's memory (issue #20): an aim must not load zeep and its schemas (42 MiB)."""
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from temoin.demo.cctv.onvif_sim import OnvifPtzSimulator\n"
        "from temoin.demo.cctv.state import PtzPose\n"
        "from temoin.supervision import ptz\n"
        "from temoin.geo.geometry import OnvifPosition\n"
        f"with OnvifPtzSimulator(PtzPose(), 0.0, 30.0, {USER!r}, {PASSWORD!r}) as sim:\n"
        f"    endpoint = ptz.OnvifEndpoint.from_url(sim.url, {USER!r}, {PASSWORD!r})\n"
        "    print(asyncio.run(ptz.move(endpoint, OnvifPosition(0.25, 0.0, 0.5))) is not None)\n"
        "print(sorted(m for m in ('onvif', 'zeep', 'lxml', 'aiohttp') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "[]"], out.stdout
