"""Recordings' GPS tracks, read from their signed manifests, and the area a reviewer draws on the map to find the
recordings made there."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.geo.geometry import in_ring, segments_cross
from temoin.vault.models import Recording

LatLon = tuple[float, float]
_BATCH = 500  # ids per query


def parse_area(text: str | None) -> tuple[LatLon, ...] | None:
    """'lat,lon;lat,lon;lat,lon[;...]': a polygon of at least three corners (a rectangle: its four)."""
    if not text:
        return None
    try:
        points = tuple((float(a), float(b)) for a, b in (pair.split(",") for pair in text.strip().split(";")))
    except ValueError:
        raise ValueError("area: write lat,lon pairs separated by ';' (e.g. 43.55,4.07;43.56,4.07;43.56,4.08)") from None
    if not 3 <= len(points) <= 200:
        raise ValueError("area: a polygon needs 3 to 200 corners")
    if not all(-90 <= lat <= 90 and -180 <= lon <= 180 for lat, lon in points):
        raise ValueError("area: a latitude is within ±90 and a longitude within ±180")
    return points


@dataclass(frozen=True)
class Track:
    """A recording's GPS fixes, from its signed manifest: times (epoch seconds) and (lat, lon)."""

    times: tuple[float, ...] = ()
    points: tuple[LatLon, ...] = ()
    bbox: tuple[float, float, float, float] | None = field(default=None)  # south, west, north, east

    @classmethod
    def of(cls, fixes: Iterable[dict]) -> Track:
        times, points = [], []
        for fix in fixes:
            times.append(datetime.fromisoformat(fix["t"]).timestamp())
            points.append((float(fix["lat"]), float(fix["lon"])))
        if not points:
            return cls()
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        return cls(tuple(times), tuple(points), (min(lats), min(lons), max(lats), max(lons)))

    def passes_through(self, area: Sequence[LatLon]) -> bool:
        """True if a fix lies inside the polygon, or the straight line between two fixes crosses it."""
        if not self.points or len(area) < 3:
            return False
        assert self.bbox is not None  # set whenever there are points (Track.of)
        s, w, n, e = self.bbox
        lats, lons = [p[0] for p in area], [p[1] for p in area]
        if s > max(lats) or n < min(lats) or w > max(lons) or e < min(lons):
            return False  # the cheap pre-filter: boxes apart
        if any(in_ring(lat, lon, area) for lat, lon in self.points):
            return True
        edges = list(zip(area, [*area[1:], area[0]]))
        return any(segments_cross(a, b, c, d) for a, b in zip(self.points, self.points[1:]) for c, d in edges)

    def simplified(self, max_points: int) -> list[LatLon]:
        """At most max_points fixes, first and last kept: enough to draw a track on a map."""
        if len(self.points) <= max_points:
            return list(self.points)
        step = len(self.points) / (max_points - 1)
        return [self.points[int(i * step)] for i in range(max_points - 1)] + [self.points[-1]]


# A manifest never changes once stored (its SHA-256 is its identity): its parsed track is cached
# in memory, keyed by recording and manifest digest, so repeated area searches do not re-read it.
_TRACKS: OrderedDict[tuple[str, str], Track] = OrderedDict()
_TRACKS_MAX = 20_000
_TRACKS_LOCK = threading.Lock()


def track_from_manifest(manifest_text: str) -> Track:
    envelope = orjson.loads(manifest_text)
    return Track.of(envelope.get("manifest", {}).get("gps_track") or [])


def tracks_of(db: Session, recs: Sequence[Recording]) -> dict[str, Track]:
    out: dict[str, Track] = {}
    missing: dict[str, str] = {}
    with _TRACKS_LOCK:
        for rec in recs:
            found = _TRACKS.get((rec.id, rec.manifest_sha256))
            if found is None:
                missing[rec.id] = rec.manifest_sha256
            else:
                _TRACKS.move_to_end((rec.id, rec.manifest_sha256))
                out[rec.id] = found
    ids = list(missing)
    for i in range(0, len(ids), _BATCH):
        rows = db.execute(select(Recording.id, Recording.manifest).where(Recording.id.in_(ids[i : i + _BATCH])))
        for rid, text in rows:
            out[rid] = track_from_manifest(text)
            with _TRACKS_LOCK:
                _TRACKS[(rid, missing[rid])] = out[rid]
                while len(_TRACKS) > _TRACKS_MAX:
                    _TRACKS.popitem(last=False)
    return out
