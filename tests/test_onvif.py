"""PTZ aiming over ONVIF: the real client library (onvif-zeep-async) through supervision.ptz, against the simulated
ONVIF PTZ camera of the demo, over real HTTP and SOAP with WS-Security digests."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Iterator

import pytest

from temoin.demo.cctv.onvif_sim import OnvifPtzSimulator
from temoin.demo.cctv.state import PtzPose
from temoin.geo.geometry import angle_diff_deg, bearing_deg
from temoin.supervision import ptz
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


def test_aiming_a_simulated_ptz_camera_with_the_real_client(sim: OnvifPtzSimulator):
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
