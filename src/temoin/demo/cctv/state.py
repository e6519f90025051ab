"""The pose of a simulated PTZ camera: written by its ONVIF service, read by its picture renderer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class PtzPose:
    """Where the camera looks, in the world's terms (the ONVIF service converts from its normalised space).

    pan_deg: compass bearing of the optical axis (0 = north, clockwise, [0, 360)); tilt_deg: elevation of the
    axis (negative = looking down, [-90, 90]); zoom: magnification (1 = widest)."""

    pan_deg: float = 0.0
    tilt_deg: float = 0.0
    zoom: float = 1.0
    moves: int = 0  # how many moves were commanded (the renderer shows it; the tests read it)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def set(self, pan_deg: float, tilt_deg: float, zoom: float) -> None:
        with self._lock:
            self.pan_deg, self.tilt_deg, self.zoom = pan_deg % 360.0, max(-90.0, min(90.0, tilt_deg)), max(1.0, zoom)
            self.moves += 1

    def snapshot(self) -> tuple[float, float, float]:
        with self._lock:
            return self.pan_deg, self.tilt_deg, self.zoom
