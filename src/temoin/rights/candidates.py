"""Which recordings may show the person: those the searching user may know of (their tenant; their communes
for a commune-limited user of an EPCI) overlapping the time of the facts, optionally near a place (from the GPS
track of the camera's signed manifest) and/or made by one agent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.geo.geometry import distance_m as ground_distance_m
from temoin.identity.models import User
from temoin.rights.models import RightsRequest
from temoin.vault.catalogue import visible
from temoin.vault.models import Hold, Recording

# GPS fixes a little outside the window still say where the agent was at its edges.
FIX_SLACK = timedelta(minutes=2)
FACTS_WINDOW = timedelta(hours=1)  # around the facts' time when the person gives only one


class SearchWindowInvalid(errors.InvalidInput, ValueError):
    """The time window of a candidate search cannot be built: no time of the facts, no offset, end before start."""


@dataclass
class Candidate:
    recording_id: str
    camera_id: str
    agent: str
    started_at: datetime
    ended_at: datetime
    overlap_s: float
    distance_m: float | None  # closest GPS fix to the place; None without a place or without a track
    hold: dict | None  # the active hold, if any: {procedure, reference}
    closest_at: tuple[float, float] | None = None  # (lat, lon) of that closest fix, shown as a street


def _track(manifest: str) -> list[dict]:
    try:
        return list(orjson.loads(manifest)["manifest"].get("gps_track") or [])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return []


def closest_fix_m(track: list[dict], lat: float, lon: float, start: datetime, end: datetime) -> float | None:
    """Distance from the place to the closest fix taken during the window (any fix if none was)."""
    found = closest_fix(track, lat, lon, start, end)
    return None if found is None else found[0]


def closest_fix(
    track: list[dict], lat: float, lon: float, start: datetime, end: datetime
) -> tuple[float, float, float] | None:
    """(distance in metres, lat, lon) of the fix closest to the place taken during the window (any fix if none
    was); None without a fix."""
    lo, hi = start - FIX_SLACK, end + FIX_SLACK

    def in_window(fix: dict) -> bool:
        try:
            at = datetime.fromisoformat(str(fix.get("t", "")).replace("Z", "+00:00"))
        except ValueError:
            return False
        return at.tzinfo is not None and lo <= at <= hi

    fixes = [f for f in track if in_window(f)] or track
    distances = [
        (ground_distance_m(lat, lon, float(f["lat"]), float(f["lon"])), float(f["lat"]), float(f["lon"]))
        for f in fixes
        if "lat" in f and "lon" in f
    ]
    return min(distances) if distances else None


def find_candidates(
    db: Session,
    viewer: User,
    start: datetime,
    end: datetime,
    *,
    lat: float | None = None,
    lon: float | None = None,
    radius_m: float | None = None,
    agent: str | None = None,
    limit: int = 200,
) -> list[Candidate]:
    """Stored recordings `viewer` may know of (vault.catalogue.visible) overlapping [start, end], nearest first
    when a place is given.

    A recording without a GPS track is kept (nothing proves it was elsewhere), with distance None."""
    if end <= start:
        raise SearchWindowInvalid("the end of the time window is before its start")
    stmt = (
        visible(viewer)
        .with_only_columns(
            Recording.id,
            Recording.device_id,
            Recording.agent_ref,
            Recording.started_at,
            Recording.ended_at,
            Recording.manifest,
        )
        .where(Recording.started_at < end, Recording.ended_at > start)
    )
    if agent:
        stmt = stmt.where(Recording.agent_ref == agent)
    rows = db.execute(stmt.order_by(Recording.started_at).limit(5000)).all()
    found: list[Candidate] = []
    for row in rows:
        overlap = (min(end, row.ended_at) - max(start, row.started_at)).total_seconds()
        distance, closest_at = None, None
        if lat is not None and lon is not None:
            closest = closest_fix(_track(row.manifest), lat, lon, start, end)
            if closest is not None:
                distance, closest_at = closest[0], (closest[1], closest[2])
            if radius_m is not None and distance is not None and distance > radius_m:
                continue
        found.append(
            Candidate(
                row.id,
                row.device_id,
                row.agent_ref,
                row.started_at,
                row.ended_at,
                round(max(0.0, overlap), 1),
                None if distance is None else round(distance, 1),
                None,
                closest_at,
            )
        )
    if lat is not None and lon is not None:
        found.sort(key=lambda c: (c.distance_m is None, c.distance_m or 0.0, c.started_at))
    found = found[:limit]
    if found:
        holds = db.execute(
            select(Hold.recording_id, Hold.procedure_type, Hold.reference).where(
                Hold.recording_id.in_([c.recording_id for c in found]), Hold.lifted_at.is_(None)
            )
        ).all()
        by_rec = {h.recording_id: {"procedure": h.procedure_type, "reference": h.reference} for h in holds}
        for c in found:
            c.hold = by_rec.get(c.recording_id)
    return found


@dataclass
class RequestCandidates:
    """A request's candidate recordings; those kept for a judicial procedure suggest a restriction (CNIL)."""

    candidates: list[Candidate]
    judicial_holds: list[str]

    @property
    def propose_restriction(self) -> bool:
        return bool(self.judicial_holds)


def facts_window(
    req: RightsRequest, start: datetime | None = None, end: datetime | None = None
) -> tuple[datetime, datetime]:
    """The time to search: the one given, else the request's facts; one end alone is widened by FACTS_WINDOW."""
    given_start, given_end = start or req.facts_start, end or req.facts_end
    if given_start is not None:
        start, end = given_start, given_end or given_start + FACTS_WINDOW
    elif given_end is not None:
        start, end = given_end - FACTS_WINDOW, given_end
    else:
        raise SearchWindowInvalid("no time for the facts: give start and end (or record them on the request)")
    if start.tzinfo is None or end.tzinfo is None:
        raise SearchWindowInvalid("give times with their offset (e.g. 2026-03-14T18:30:00+01:00)")
    return start, end


def candidates_for_request(
    db: Session,
    viewer: User,
    req: RightsRequest,
    start: datetime | None = None,
    end: datetime | None = None,
    lat: float | None = None,
    lon: float | None = None,
    radius_m: float | None = None,
    agent: str | None = None,
) -> RequestCandidates:
    """The recordings that may show the request's person: what is given here, else what the request records."""
    start, end = facts_window(req, start, end)
    found = find_candidates(
        db,
        viewer,
        start,
        end,
        lat=lat if lat is not None else req.place_lat,
        lon=lon if lon is not None else req.place_lon,
        radius_m=radius_m if radius_m is not None else req.radius_m,
        agent=agent or req.agent_ref,
    )
    return RequestCandidates(found, [c.recording_id for c in found if c.hold and c.hold["procedure"] == "judicial"])
