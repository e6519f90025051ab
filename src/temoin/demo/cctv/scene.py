"""Synthetic pictures for simulated CCTV cameras: a fixed street view, and a PTZ view into a panorama.

Both are cheap (the demo runs about twelve of them on two cores, and renders only while someone
watches): the expensive parts (the street background, the panorama) are drawn once, each frame is a
copy plus a few rectangles and a cached text box. A renderer returns an RGB uint8 array of
(height, width, 3) for a capture time; the RTSP server (`demo.cctv.rtsp_server`) encodes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from temoin.camera.media import PARIS, SyntheticScene, burn_in
from temoin.demo.cctv.state import PtzPose

DEFAULT_SIZE = (640, 360)
DEFAULT_FPS = 12
HFOV_WIDEST_DEG = 60.0  # horizontal field of view at zoom 1
SKY_DEG = 45.0  # the panorama spans elevations from +SKY_DEG ...
GROUND_DEG = 60.0  # ... down to -GROUND_DEG
CARDINALS = {0: "N", 45: "NE", 90: "E", 135: "SE", 180: "S", 225: "SW", 270: "W", 315: "NW"}


class Renderer(Protocol):
    """What the RTSP server asks of a picture source."""

    name: str
    width: int
    height: int
    fps: int

    def render(self, at: datetime) -> np.ndarray:
        """The picture captured at `at` (timezone-aware), as a fresh (height, width, 3) uint8 RGB array."""
        ...


def _clock_line(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("the capture time must be timezone-aware")
    return f"{at.astimezone(PARIS):%Y-%m-%d %H:%M:%S} {PARIS.key}"


def _text_scale(height: int) -> int:
    return max(1, height // 240)


class FixedScene:
    """A fixed camera: a street with cars and pedestrians crossing, the camera's name and the local time
    burned in. Movement depends only on the capture time, so any two renderers of one seed agree."""

    def __init__(
        self,
        name: str,
        *,
        width: int = DEFAULT_SIZE[0],
        height: int = DEFAULT_SIZE[1],
        fps: int = DEFAULT_FPS,
        seed: int = 0,
    ) -> None:
        self.name, self.width, self.height, self.fps = name, width, height, fps
        self._scene = SyntheticScene(width, height, fps, seed)

    def render(self, at: datetime) -> np.ndarray:
        index = int(at.timestamp() * self.fps) % (self.fps * 86_400)  # movers wrap: a day keeps floats exact
        rgb = self._scene.rgb(index)
        return burn_in(rgb, [self.name, _clock_line(at)], scale=_text_scale(self.height))


@dataclass(frozen=True)
class _Car:
    """A car driving round the panorama's road: bearing (deg) = start + speed * t."""

    start_deg: float
    speed_deg_s: float
    elevation_deg: float  # of its lower edge
    length_deg: float
    height_deg: float
    colour: tuple[int, int, int]


def _colour(values: np.ndarray) -> tuple[int, int, int]:
    red, green, blue = (int(c) for c in values)
    return red, green, blue


class PtzScene:
    """A PTZ camera: the window of a 360-degree panorama that its `PtzPose` points at.

    The panorama carries a compass tape on the horizon (a tick every 10 degrees, the bearing written
    under it, N/NE/E/... above the cardinal ones); the window is centred on the pan bearing, moved up
    or down by the tilt, and narrowed by the zoom (60 degrees wide at zoom 1). The burned-in text gives
    the pose too ("PAN 123.4° TILT -12.0° ZOOM 2.0x"), so where the camera looks can be read off the
    picture by a person and checked by a test."""

    def __init__(
        self,
        name: str,
        pose: PtzPose,
        *,
        width: int = DEFAULT_SIZE[0],
        height: int = DEFAULT_SIZE[1],
        fps: int = DEFAULT_FPS,
        seed: int = 0,
    ) -> None:
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError("width and height must be even and at least 16")
        self.name, self.pose, self.width, self.height, self.fps = name, pose, width, height, fps
        self.px_per_deg = width / HFOV_WIDEST_DEG
        rng = np.random.default_rng(seed)
        self.panorama = _panorama(
            round(360 * self.px_per_deg), round((SKY_DEG + GROUND_DEG) * self.px_per_deg), self.px_per_deg, rng
        )
        self._cars = [
            _Car(
                float(rng.uniform(0, 360)),
                float(rng.uniform(2, 6)) * float(rng.choice([-1, 1])),
                -float(rng.uniform(9, 16)),
                float(rng.uniform(3, 5)),
                1.6,
                _colour(rng.integers(30, 255, size=3)),
            )
            for _ in range(8)
        ]
        # (pose, its view, its geometry): one attribute, so that a reader in another thread sees a whole one
        self._cached: tuple[tuple[float, float, float], np.ndarray, tuple[float, float, float, float]] | None = None

    def view(self, pan_deg: float, tilt_deg: float, zoom: float) -> np.ndarray:
        """The still panorama seen at this pose (no cars, no text): read-only, cached for the last pose."""
        return self._view_of(pan_deg, tilt_deg, zoom)[0]

    def _view_of(
        self, pan_deg: float, tilt_deg: float, zoom: float
    ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        key = (pan_deg, tilt_deg, zoom)
        cached = self._cached
        if cached is None or cached[0] != key:
            hfov = HFOV_WIDEST_DEG / max(1.0, zoom)
            vfov = hfov * self.height / self.width
            top_deg = SKY_DEG - vfov / 2  # the window stays inside the panorama
            centre_elev = max(-GROUND_DEG + vfov / 2, min(top_deg, tilt_deg))
            deg_per_px = hfov / self.width
            xs = pan_deg + (np.arange(self.width) - self.width / 2 + 0.5) * deg_per_px
            ys = centre_elev - (np.arange(self.height) - self.height / 2 + 0.5) * deg_per_px
            cols = np.floor(xs * self.px_per_deg).astype(np.int64) % self.panorama.shape[1]
            rows = np.clip(np.floor((SKY_DEG - ys) * self.px_per_deg).astype(np.int64), 0, self.panorama.shape[0] - 1)
            view = self.panorama[rows[:, None], cols[None, :]]
            view.flags.writeable = False
            cached = self._cached = (key, view, (pan_deg, centre_elev, hfov, deg_per_px))
        return cached[1], cached[2]

    def render(self, at: datetime) -> np.ndarray:
        pan, tilt, zoom = self.pose.snapshot()
        view, geometry = self._view_of(pan, tilt, zoom)
        rgb = view.copy()
        self._draw_cars(rgb, at.timestamp(), geometry)
        _crosshair(rgb)
        lines = [self.name, _clock_line(at), f"PAN {pan:.1f}° TILT {tilt:.1f}° ZOOM {zoom:.1f}x"]
        return burn_in(rgb, lines, scale=_text_scale(self.height))

    def _draw_cars(self, rgb: np.ndarray, t: float, geometry: tuple[float, float, float, float]) -> None:
        pan, centre_elev, hfov, deg_per_px = geometry
        t %= 86_400.0
        for car in self._cars:
            bearing = (car.start_deg + car.speed_deg_s * t) % 360.0
            offset = (bearing - pan + 180.0) % 360.0 - 180.0  # degrees right of the axis
            x0 = int((offset + hfov / 2) / deg_per_px)
            x1 = x0 + max(1, int(car.length_deg / deg_per_px))
            y1 = int((centre_elev - car.elevation_deg) / deg_per_px + self.height / 2)
            y0 = y1 - max(1, int(car.height_deg / deg_per_px))
            x0, x1, y0, y1 = max(0, x0), min(self.width, x1), max(0, y0), min(self.height, y1)
            if x0 < x1 and y0 < y1:
                rgb[y0:y1, x0:x1] = car.colour


def _crosshair(rgb: np.ndarray) -> None:
    h, w = rgb.shape[:2]
    arm = max(4, h // 30)
    cy, cx = h // 2, w // 2
    rgb[cy - 1 : cy + 1, cx - arm : cx + arm] = (255, 220, 0)
    rgb[cy - arm : cy + arm, cx - 1 : cx + 1] = (255, 220, 0)


@lru_cache(maxsize=4)
def _label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _panorama(width: int, height: int, px_per_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Sky, a skyline all round, the compass tape on the horizon, a sidewalk and a road below."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    horizon = round(SKY_DEG * px_per_deg)
    ramp = np.linspace(0.0, 1.0, horizon)[:, None]
    sky_top, sky_low = np.array([60, 100, 180]), np.array([185, 205, 235])
    image[:horizon] = (sky_top + (sky_low - sky_top) * ramp)[:, None, :].astype(np.uint8)
    # Buildings: random widths and heights, lit windows on a grid.
    x = 0
    while x < width:
        w = int(rng.integers(round(4 * px_per_deg), round(14 * px_per_deg)))
        top = horizon - int(rng.integers(round(4 * px_per_deg), round(30 * px_per_deg)))
        colour = rng.integers(60, 160, size=3)
        block = image[top:horizon, x : x + w]
        block[:] = colour
        rows, cols = np.indices(block.shape[:2])
        lit = rng.random((block.shape[0] // 10 + 1, block.shape[1] // 8 + 1)) < 0.55
        window = (rows % 10 >= 4) & (rows % 10 < 9) & (cols % 8 >= 3) & (cols % 8 < 7) & lit[rows // 10, cols // 8]
        block[window] = np.minimum(colour + 80, 255)
        x += w
    # Ground: the compass tape, a sidewalk, the road with its lane marks, a darker foreground.
    tape = horizon + round(3 * px_per_deg)
    sidewalk = tape + round(5 * px_per_deg)
    road = sidewalk + round(12 * px_per_deg)
    image[horizon:tape] = (35, 35, 40)
    image[tape:sidewalk] = (150, 150, 140)
    image[sidewalk:road] = (70, 70, 75)
    image[road:] = (95, 85, 70)
    lane = (sidewalk + road) // 2
    dash = max(2, round(px_per_deg))
    for start in range(0, width, 4 * dash):
        image[lane : lane + 2, start : start + 2 * dash] = (230, 230, 200)
    # Bearings painted on the ground further down too, so that a camera looking down still shows its aim.
    ground_tapes = [road + round(d * px_per_deg) for d in (6, 26)]
    for row in ground_tapes:
        image[row : row + round(2.5 * px_per_deg)] = (55, 50, 45)
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    small = _label_font(max(10, round(1.3 * px_per_deg)))
    big = _label_font(max(14, round(3 * px_per_deg)))
    for bearing in range(0, 360, 10):
        cx = round(bearing * px_per_deg)
        long = bearing % 30 == 0
        tick = round((1.6 if long else 0.9) * px_per_deg)
        for x0 in (cx, cx + width) if cx == 0 else (cx,):  # north drawn on both edges: the window wraps
            draw.rectangle([x0 - 1, horizon, x0 + 1, horizon + tick], fill=(255, 255, 255))
            draw.text((x0, horizon + tick + 1), f"{bearing}°", fill=(255, 255, 255), font=small, anchor="mt")
            if bearing in CARDINALS:
                draw.text(
                    (x0, horizon - round(2 * px_per_deg)),
                    CARDINALS[bearing],
                    fill=(255, 240, 0),
                    font=big,
                    anchor="mb",
                    stroke_width=2,
                    stroke_fill=(0, 0, 0),
                )
            for row in ground_tapes:
                draw.rectangle([x0 - 1, row, x0 + 1, row + tick // 2], fill=(235, 235, 235))
                draw.text((x0 + 3, row + 1), f"{bearing}°", fill=(235, 235, 235), font=small, anchor="lt")
    return np.asarray(picture, dtype=np.uint8).copy()
