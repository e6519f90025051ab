"""The camera's clock: injectable, so that simulated cameras and tests run faster than real time.

A `Clock` is any callable returning the current time (timezone-aware, UTC). Sources that pace
capture (one frame every 1/fps s) also need to wait: `wait_until` sleeps on the system clock and
simply jumps a `SimulatedClock` forward.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class SimulatedClock:
    """A clock that only moves when told to (tests, fleet simulation faster than real time)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += timedelta(seconds=seconds)
        return self._now

    def wait_until(self, at: datetime) -> None:
        if at > self._now:
            self._now = at


def wait_until(clock: Clock, at: datetime) -> None:
    """Block until `clock()` reaches `at`: a jump for a simulated clock, a sleep otherwise."""
    jump = getattr(clock, "wait_until", None)
    if jump is not None:
        jump(at)
        return
    while (left := (at - clock()).total_seconds()) > 0:
        time.sleep(min(left, 0.5))
