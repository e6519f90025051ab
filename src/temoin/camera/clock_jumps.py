"""Telling a jump of the camera's clock from time passing (`CameraAgent` acts on it).

The clock jumps when it is set by hand, by NTP or GPS after a long time off, or by a failing RTC: a jump is a
frame whose capture time moved by more than the threshold (`AgentConfig.clock_jump_s`) beyond the time that
passed on the monotonic clock. With no monotonic clock, only a step back can be told from a pause.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from temoin.camera.sources import VideoSource

CLOCK_JUMP_S = 1.0  # capture time moving this much more (or less) than the monotonic clock: a jump


@dataclass(frozen=True)
class ClockJump:
    at: datetime  # the capture time of the first frame after the jump (the new clock)
    jump_s: float  # how far the clock moved beyond the time that passed (negative: backwards)
    recording_id: str | None  # the recording it cut, if any
    continued_as: str | None = None  # the recording that carries on after it


class ClockJumpDetector:
    """Reads each frame's capture time against the monotonic clock (`monotonic`, None when the camera has none)."""

    def __init__(self, threshold_s: float, monotonic: Callable[[], float] | None, video: VideoSource) -> None:
        self.threshold_s = threshold_s
        self.monotonic = monotonic
        self.video = video
        self._last_frame: tuple[datetime, float | None] | None = None

    def check(self, at: datetime) -> float | None:
        """How far the capture clock jumped since the previous frame, if it did."""
        mono = None
        if self.monotonic is not None:
            # When the frame was captured, not when this loop got to it: a loop busy for a second (a segment
            # written to a slow disk, the process paused) is not a clock jump.
            captured = getattr(self.video, "captured_monotonic", None) if self.monotonic is time.monotonic else None
            mono = captured if captured is not None else self.monotonic()
        previous, self._last_frame = self._last_frame, (at, mono)
        if previous is None:
            return None
        wall = (at - previous[0]).total_seconds()
        if mono is not None and previous[1] is not None:
            jump = wall - (mono - previous[1])
        else:
            jump = min(wall, 0.0)  # a pause and a jump forward look alike without a monotonic clock
        return jump if abs(jump) >= self.threshold_s else None
