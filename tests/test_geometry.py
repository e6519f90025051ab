"""Ground geometry: distances, bearings, what a fixed camera sees, PTZ angles and ONVIF's normalised spaces."""

from __future__ import annotations

import math

import pytest

from temoin.geo.geometry import (
    OnvifPosition,
    PtzAngles,
    angle_diff_deg,
    bearing_deg,
    distance_m,
    from_onvif,
    in_field_of_view,
    normalize_deg,
    ptz_angles,
    to_onvif,
)

M_PER_DEG = 111_195.0  # one degree of latitude on the mean sphere


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """A point so many metres north and east (flat approximation, plenty at street scale)."""
    return lat + north_m / M_PER_DEG, lon + east_m / (M_PER_DEG * math.cos(math.radians(lat)))


HERE = (43.5580, 4.0800)  # Port-Témoin


def test_bearings_to_the_four_cardinal_points():
    lat, lon = HERE
    assert bearing_deg(lat, lon, lat + 0.001, lon) == pytest.approx(0.0, abs=1e-9)
    assert bearing_deg(lat, lon, lat, lon + 0.001) == pytest.approx(90.0, abs=0.01)
    assert bearing_deg(lat, lon, lat - 0.001, lon) == pytest.approx(180.0, abs=1e-9)
    assert bearing_deg(lat, lon, lat, lon - 0.001) == pytest.approx(270.0, abs=0.01)
    # Just west of north is 359.x, never negative.
    expected = 360 - math.degrees(math.atan2(0.00001 * math.cos(math.radians(lat)), 0.001))  # 359.58°
    assert bearing_deg(lat, lon, lat + 0.001, lon - 0.00001) == pytest.approx(expected, abs=0.01)


def test_known_distances_and_bearings():
    # Land's End -> John o' Groats, the textbook pair (movable-type.co.uk, R = 6371 km): 968.9 km, 009°07'11".
    d = distance_m(
        50 + 3 / 60 + 59 / 3600, -(5 + 42 / 60 + 53 / 3600), 58 + 38 / 60 + 38 / 3600, -(3 + 4 / 60 + 12 / 3600)
    )
    assert d / 1000 == pytest.approx(968.9, abs=0.2)
    b = bearing_deg(
        50 + 3 / 60 + 59 / 3600, -(5 + 42 / 60 + 53 / 3600), 58 + 38 / 60 + 38 / 3600, -(3 + 4 / 60 + 12 / 3600)
    )
    assert b == pytest.approx(9 + 7 / 60 + 11 / 3600, abs=0.01)
    # Paris: Notre-Dame's parvis -> the Eiffel Tower, 600.7 m north and 4,056 m west of it: 4.10 km, about 278.4°.
    notre_dame, eiffel = (48.852968, 2.349902), (48.858370, 2.294481)
    assert distance_m(*notre_dame, *eiffel) == pytest.approx(4100, abs=10)
    assert bearing_deg(*notre_dame, *eiffel) == pytest.approx(278.4, abs=0.3)
    assert bearing_deg(*eiffel, *notre_dame) == pytest.approx(98.4, abs=0.3)
    assert distance_m(*notre_dame, *notre_dame) == 0.0


def test_angles_wrap_at_north():
    assert normalize_deg(-10) == 350 and normalize_deg(370) == 10 and normalize_deg(-1e-15) < 360
    assert angle_diff_deg(5, 350) == pytest.approx(15)
    assert angle_diff_deg(350, 5) == pytest.approx(-15)
    assert angle_diff_deg(180, 0) == pytest.approx(-180)  # the half-turn: [-180, 180)
    assert angle_diff_deg(90, 90) == 0


def test_field_of_view_wraps_at_north():
    cam = HERE
    toward = offset(*cam, north_m=50 * math.cos(math.radians(5)), east_m=50 * math.sin(math.radians(5)))
    aside = offset(*cam, north_m=50 * math.cos(math.radians(40)), east_m=50 * math.sin(math.radians(40)))
    assert bearing_deg(*cam, *toward) == pytest.approx(5, abs=0.1)
    # Heading 350°, 40° wide: it sees from 330° to 10° through north.
    assert in_field_of_view(*cam, 350, 40, 150, *toward)
    assert not in_field_of_view(*cam, 350, 40, 150, *aside)
    assert in_field_of_view(*cam, 10, 60, 150, *aside)  # 40° is on the edge of 10 ± 30


def test_a_camera_across_the_street_facing_away_does_not_see_the_agent():
    # A north-south street; the agent in the middle of it, a camera on each façade, 6 m to either side.
    agent = HERE
    east_facade = offset(*agent, north_m=0, east_m=6)
    west_facade = offset(*agent, north_m=0, east_m=-6)
    assert not in_field_of_view(*east_facade, 90, 60, 150, *agent)  # looks east, away from the street
    assert in_field_of_view(*east_facade, 270, 60, 150, *agent)  # looks onto the street
    assert in_field_of_view(*west_facade, 90, 60, 150, *agent)
    assert not in_field_of_view(*west_facade, 270, 60, 150, *agent)


def test_out_of_range_is_not_seen():
    far = offset(*HERE, north_m=200, east_m=0)
    assert not in_field_of_view(*HERE, 0, 60, 150, *far)
    assert in_field_of_view(*HERE, 0, 60, 250, *far)


def test_ptz_angles_look_down_at_the_agent_and_frame_the_scene():
    cam = HERE
    target = offset(*cam, north_m=0, east_m=50)
    a = ptz_angles(*cam, 8.0, *target, fov_deg=60, max_zoom=20)
    assert a.pan_deg == pytest.approx(90, abs=0.05)
    assert a.tilt_deg == pytest.approx(math.degrees(math.atan2(1.6 - 8.0, 50)), abs=0.05)
    assert a.tilt_deg < 0  # a camera on a mast looks down at a standing person
    # 12 m of scene over a 60° view, 50.4 m away: magnification tan(30°) / (6 / 50.4).
    assert a.zoom == pytest.approx(math.tan(math.radians(30)) * math.hypot(50, 6.4) / 6, rel=0.01)
    # A target above the camera (a balcony) gives a positive tilt.
    assert ptz_angles(*cam, 3.0, *target, target_height_m=10.0).tilt_deg > 0
    # Zoom clamped: at the foot of the mast, 1; across the town, max_zoom.
    assert ptz_angles(*cam, 8.0, *offset(*cam, north_m=3, east_m=0)).zoom == 1.0
    assert ptz_angles(*cam, 8.0, *offset(*cam, north_m=3000, east_m=0), max_zoom=20).zoom == 20.0
    # Just west of north.
    west_of_north = offset(*cam, north_m=100, east_m=-17.6)
    assert ptz_angles(*cam, 8.0, *west_of_north).pan_deg == pytest.approx(350, abs=0.1)


def test_pan_is_relative_to_the_mounting_heading_and_wraps():
    # Mounted looking 10°, a target at 350° is 20° anticlockwise: x = -20/180, not +340/180.
    assert to_onvif(PtzAngles(350, 0, 1), heading_deg=10, max_zoom=20).x == pytest.approx(-20 / 180)
    assert to_onvif(PtzAngles(10, 0, 1), heading_deg=350, max_zoom=20).x == pytest.approx(20 / 180)
    assert to_onvif(PtzAngles(90, 0, 1), heading_deg=90, max_zoom=20).x == 0
    back = from_onvif(OnvifPosition(-20 / 180, 0, 0), heading_deg=10, max_zoom=20)
    assert back.pan_deg == pytest.approx(350)
    assert from_onvif(OnvifPosition(1.0, 0, 0), 0, 20).pan_deg == pytest.approx(180)
    assert from_onvif(OnvifPosition(-1.0, 0, 0), 0, 20).pan_deg == pytest.approx(180)


@pytest.mark.parametrize("heading", [0.0, 10.0, 90.0, 181.5, 350.0])
def test_round_trip_degrees_and_onvif_normalised(heading: float):
    for pan in (0.0, 0.5, 45.0, 179.0, 181.0, 300.0, 359.9):
        for tilt in (-90.0, -12.5, 0.0, 30.0, 90.0):
            for zoom in (1.0, 2.5, 20.0):
                pos = to_onvif(PtzAngles(pan, tilt, zoom), heading, 20.0)
                assert -1 <= pos.x <= 1 and -1 <= pos.y <= 1 and 0 <= pos.z <= 1
                back = from_onvif(pos, heading, 20.0)
                assert abs(angle_diff_deg(back.pan_deg, pan)) < 1e-9
                assert back.tilt_deg == pytest.approx(tilt) and back.zoom == pytest.approx(zoom)
    assert to_onvif(PtzAngles(0, -45, 1), 0, 20) == OnvifPosition(0, -0.5, 0)
    assert to_onvif(PtzAngles(0, 0, 20), 0, 20).z == 1.0
    assert to_onvif(PtzAngles(0, 0, 5), 0, 1).z == 0.0  # a camera without zoom
