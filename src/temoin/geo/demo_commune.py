"""The demo commune, Port-Témoin: its territory and streets, from the packaged GeoJSON.

Here rather than in temoin.demo: the camera's simulated GPS and the web basemap read it, and both sit below the demo."""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources


@cache
def commune() -> dict:
    return json.loads(resources.files("temoin.geo").joinpath("demo_commune.geojson").read_text("utf-8"))


def territory() -> dict:
    feature = next(f for f in commune()["features"] if f["properties"]["kind"] == "territory")
    return {"type": "FeatureCollection", "features": [feature]}


def streets() -> dict[str, list[tuple[float, float]]]:
    """Street name -> its points as (lat, lon)."""
    return {
        f["properties"]["name"]: [(lat, lon) for lon, lat in f["geometry"]["coordinates"]]
        for f in commune()["features"]
        if f["properties"]["kind"] == "street"
    }


def walk(street: str, seconds: int, speed_m_s: float = 1.4) -> list[tuple[float, float]]:
    """A position per second along a street, at walking pace, turning back at its end."""
    points = streets()[street]
    out: list[tuple[float, float]] = []
    leg, t, forward = 0, 0.0, True
    for _ in range(seconds):
        a, b = points[leg], points[leg + 1]
        length = max(_metres(a, b), 1.0)
        out.append((a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t))
        t += speed_m_s / length
        while t >= 1.0:
            t -= 1.0
            leg += 1
            if leg >= len(points) - 1:
                points, leg = list(reversed(points)), 0
                forward = not forward
    return out


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (b[0] - a[0]) * 111_320
    dlon = (b[1] - a[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlon)
