"""Where the camera is: a `GpsSource` protocol, a simulated walk along the demo commune's streets,
and the fix schedule (every second while recording, every 15 s otherwise).

The place of collection is part of what is recorded (R241-10); the fixes end up in the signed
manifest, sealed on the device until then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from temoin.evidence.manifest import GpsFix
from temoin.geo.demo_commune import walk

RECORDING_INTERVAL_S = 1.0
STANDBY_INTERVAL_S = 15.0


class GpsSource(Protocol):
    def fix(self, at: datetime) -> GpsFix | None:
        """The position at `at`, or None when there is no fix (indoors, cold start)."""


class SimulatedWalk:
    """A wearer walking along a street of the demo commune from `started_at`, turning back at its end."""

    def __init__(
        self,
        started_at: datetime,
        street: str = "Avenue de la Mer",
        *,
        speed_m_s: float = 1.4,
        accuracy_m: float = 5.0,
        offset_s: int = 0,
    ) -> None:
        """`offset_s`: start that many seconds into the walk (two wearers on one street, apart)."""
        if started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        self.started_at = started_at.astimezone(UTC)
        self.street = street
        self.speed_m_s = speed_m_s
        self.accuracy_m = accuracy_m
        self.offset_s = max(0, int(offset_s))
        self._positions: list[tuple[float, float]] = walk(street, 600, speed_m_s)

    def fix(self, at: datetime) -> GpsFix | None:
        second = int((at - self.started_at).total_seconds())
        if second < 0:
            return None
        second += self.offset_s
        while second >= len(self._positions):
            self._positions = walk(self.street, len(self._positions) * 2, self.speed_m_s)
        lat, lon = self._positions[second]
        return GpsFix(t=at, lat=lat, lon=lon, accuracy_m=self.accuracy_m)


@dataclass
class GpsSchedule:
    """Decides when to ask the receiver for a fix: often while recording, rarely otherwise (battery)."""

    recording_interval_s: float = RECORDING_INTERVAL_S
    standby_interval_s: float = STANDBY_INTERVAL_S
    last_attempt: datetime | None = None

    def due(self, at: datetime, recording: bool) -> bool:
        interval = self.recording_interval_s if recording else self.standby_interval_s
        if self.last_attempt is None or (at - self.last_attempt).total_seconds() >= interval:
            self.last_attempt = at
            return True
        return False

    def reset(self) -> None:
        """Ask at the next opportunity (recording just started: the place of collection, now)."""
        self.last_attempt = None
