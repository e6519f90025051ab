"""Ground geometry for the CSU: distances, bearings, what a fixed camera sees, and how to aim a PTZ camera.

Conventions, everywhere in Témoin:

- Positions are WGS 84 latitude/longitude in degrees; distances are metres on a sphere of radius 6,371,008.8 m
  (the mean Earth radius: under 0.5 % error, far below GPS error at city scale).
- A bearing is a compass bearing in degrees: 0 = north, 90 = east, clockwise, in [0, 360).
- A tilt is an elevation in degrees: 0 = horizontal, negative looks down, in [-90, 90].
- A zoom is a magnification: 1 = the widest view.

ONVIF's normalised "generic" spaces (PositionGenericSpace of the PTZ service), as Témoin uses them:

- pan x in [-1, 1] <-> -180..+180 degrees *relative to the camera's mounting heading*: x = 0 looks along the
  heading, x = 0.5 looks 90 degrees clockwise of it, x = -1 and x = 1 both look straight behind.
- tilt y in [-1, 1] <-> -90..+90 degrees of elevation (y < 0 looks down).
- zoom z in [0, 1] <-> magnification 1..max_zoom, linearly.

A real camera's generic space maps onto its own mechanical range; a camera whose range differs (a 350-degree pan,
a tilt limited to -90..+10) is described by these formulas only approximately, and the pose it reports back is the
truth the CSU shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8
SCENE_WIDTH_M = 12.0  # what a PTZ camera frames around an incident: a few people and their surroundings
TARGET_HEIGHT_M = 1.6  # eye level of a standing person
SAME_PLACE_M = 0.5  # below this a bearing means nothing: a camera is taken to see a point it stands on


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Ground (great-circle) distance in metres, by the haversine formula."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def in_ring(x: float, y: float, ring: Sequence[Sequence[float]]) -> bool:
    """Whether (x, y) lies inside the polygon whose corners are `ring` (closed or not), by ray casting on plane
    coordinates: city-sized areas, so longitude and latitude serve as they are (in either order, the same for the
    point and the corners)."""
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, [*ring[1:], ring[0]]):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def segments_cross(a: Sequence[float], b: Sequence[float], c: Sequence[float], d: Sequence[float]) -> bool:
    """Whether the segments a-b and c-d cross at a point inside both (plane coordinates, as for `in_ring`)."""
    d1, d2, d3, d4 = _orient(c, d, a), _orient(c, d, b), _orient(a, b, c), _orient(a, b, d)
    return ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4)


def _orient(a: Sequence[float], b: Sequence[float], c: Sequence[float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial compass bearing from point 1 towards point 2 (0 = north, clockwise, [0, 360))."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return normalize_deg(math.degrees(math.atan2(y, x)))


def normalize_deg(angle: float) -> float:
    """An angle brought into [0, 360)."""
    out = angle % 360.0
    return 0.0 if out == 360.0 else out  # -1e-15 % 360 rounds to 360.0


def angle_diff_deg(a: float, b: float) -> float:
    """Signed smallest rotation from bearing b to bearing a, in [-180, 180): positive is clockwise.

    angle_diff_deg(5, 350) == 15: the wrap at north is handled."""
    return (a - b + 180.0) % 360.0 - 180.0


def in_field_of_view(
    cam_lat: float, cam_lon: float, heading_deg: float, fov_deg: float, range_m: float, lat: float, lon: float
) -> bool:
    """Does a fixed camera (looking along heading_deg, horizontal field of view fov_deg, useful range range_m)
    see the point? The wedge's edges count as inside."""
    d = distance_m(cam_lat, cam_lon, lat, lon)
    if d > range_m:
        return False
    if d < SAME_PLACE_M or fov_deg >= 360.0:
        return True
    return abs(angle_diff_deg(bearing_deg(cam_lat, cam_lon, lat, lon), heading_deg)) <= fov_deg / 2


@dataclass(frozen=True)
class PtzAngles:
    """A PTZ pose in the world's terms: pan is a compass bearing, tilt an elevation, zoom a magnification."""

    pan_deg: float
    tilt_deg: float
    zoom: float

    def as_dict(self) -> dict[str, float]:
        return {"pan_deg": round(self.pan_deg, 3), "tilt_deg": round(self.tilt_deg, 3), "zoom": round(self.zoom, 3)}


@dataclass(frozen=True)
class OnvifPosition:
    """A PTZ pose in ONVIF's normalised generic spaces (see the module's docstring)."""

    x: float  # pan, [-1, 1]
    y: float  # tilt, [-1, 1]
    z: float  # zoom, [0, 1]

    def as_dict(self) -> dict[str, float]:
        return {"x": round(self.x, 6), "y": round(self.y, 6), "z": round(self.z, 6)}


def zoom_for_scene(slant_m: float, fov_deg: float, max_zoom: float, scene_width_m: float = SCENE_WIDTH_M) -> float:
    """The magnification at which a scene scene_width_m wide, slant_m away, fills a view that is fov_deg wide
    at zoom 1; clamped to [1, max_zoom]."""
    half = math.radians(min(max(fov_deg, 1.0), 179.0)) / 2
    needed = math.atan2(scene_width_m / 2, max(slant_m, 0.01))
    return max(1.0, min(max_zoom, math.tan(half) / math.tan(needed)))


def ptz_angles(
    cam_lat: float,
    cam_lon: float,
    cam_height_m: float,
    lat: float,
    lon: float,
    target_height_m: float = TARGET_HEIGHT_M,
    *,
    fov_deg: float = 60.0,
    max_zoom: float = 20.0,
    scene_width_m: float = SCENE_WIDTH_M,
) -> PtzAngles:
    """The pose that puts the target at the centre of a PTZ camera's view.

    pan: bearing from the camera to the target; tilt: atan2(target height - camera height, ground distance)
    (negative looks down); zoom: a scene_width_m wide scene at the target fills the view (fov_deg wide at
    zoom 1), clamped to [1, max_zoom]."""
    ground = distance_m(cam_lat, cam_lon, lat, lon)
    pan = bearing_deg(cam_lat, cam_lon, lat, lon) if ground >= SAME_PLACE_M else 0.0
    dh = target_height_m - cam_height_m
    tilt = math.degrees(math.atan2(dh, ground))
    return PtzAngles(pan, tilt, zoom_for_scene(math.hypot(ground, dh), fov_deg, max_zoom, scene_width_m))


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def to_onvif(angles: PtzAngles, heading_deg: float, max_zoom: float) -> OnvifPosition:
    """World pose -> ONVIF normalised position, for a camera mounted looking along heading_deg."""
    x = angle_diff_deg(angles.pan_deg, heading_deg) / 180.0
    y = _clamp(angles.tilt_deg, -90.0, 90.0) / 90.0
    z = 0.0 if max_zoom <= 1 else (_clamp(angles.zoom, 1.0, max_zoom) - 1.0) / (max_zoom - 1.0)
    return OnvifPosition(x, y, z)


def from_onvif(position: OnvifPosition, heading_deg: float, max_zoom: float) -> PtzAngles:
    """ONVIF normalised position -> world pose, for a camera mounted looking along heading_deg."""
    pan = normalize_deg(heading_deg + _clamp(position.x, -1.0, 1.0) * 180.0)
    tilt = _clamp(position.y, -1.0, 1.0) * 90.0
    zoom = 1.0 + _clamp(position.z, 0.0, 1.0) * (max(max_zoom, 1.0) - 1.0)
    return PtzAngles(pan, tilt, zoom)
