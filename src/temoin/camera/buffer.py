"""The pre-event buffer: the last seconds of encoded video, handed over as a recording's start.

In standby the agent keeps encoding into short keyframe-aligned segments (video only by
default) and pushes each closed segment here. The buffer keeps whole segments only, so that
what it hands over plays alone and can be hashed and chained like any other segment:

- never more than `seconds` before the moment recording starts (a segment that began earlier
  is dropped, so the pre-event footage is between `seconds - segment length` and `seconds`);
- never more than `max_bytes` in memory (the bitrate bound: bitrate x duration), oldest first;
- never more than `cap_bytes` when the agent sets it (`limit`): what the buffer holds lands on the
  device store when a recording starts, so when the store runs low the buffer gives way first.

The buffer lives in memory only: nothing of standby ever reaches the disk unless a recording
starts, and then only encrypted (`device_store`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timedelta

from temoin.camera.media import EncodedSegment

MAX_PRE_EVENT_S = 120.0  # the manifest's limit too (RecordingManifest.pre_event_buffer_s)
DEFAULT_PRE_EVENT_S = 30.0  # common practice (La Grande-Motte pilot, Axon's default)
DEFAULT_BITRATE_BPS = 2_000_000  # a 720p body-camera stream


def byte_budget(seconds: float, bitrate_bps: int) -> int:
    """Memory allowed for `seconds` of video at `bitrate_bps`."""
    return math.ceil(seconds * bitrate_bps / 8)


class PreEventBuffer:
    def __init__(
        self,
        seconds: float = DEFAULT_PRE_EVENT_S,
        *,
        bitrate_bps: int = DEFAULT_BITRATE_BPS,
        max_bytes: int | None = None,
    ) -> None:
        if not 0 <= seconds <= MAX_PRE_EVENT_S:
            raise ValueError(f"the pre-event buffer is 0 to {MAX_PRE_EVENT_S:g} s, not {seconds:g}")
        if bitrate_bps <= 0:
            raise ValueError("bitrate_bps must be positive")
        self.seconds = float(seconds)
        self.max_bytes = byte_budget(seconds, bitrate_bps) if max_bytes is None else max_bytes
        self.cap_bytes: int | None = None  # set by `limit` (storage running low), None: no cap
        self._segments: deque[EncodedSegment] = deque()
        self._bytes = 0
        self.evicted = 0  # segments dropped so far (by age or by the memory bound)

    @property
    def enabled(self) -> bool:
        """Worth encoding into: a duration, and room for at least something."""
        return self.seconds > 0 and self.bound > 0

    @property
    def bound(self) -> int:
        """The bytes it may hold now: the memory bound, or less under a storage cap."""
        return self.max_bytes if self.cap_bytes is None else min(self.max_bytes, self.cap_bytes)

    def limit(self, cap_bytes: int | None) -> int:
        """Hold at most `cap_bytes` from now on (None lifts the cap); returns the segments dropped now."""
        self.cap_bytes = None if cap_bytes is None else max(0, cap_bytes)
        before = self.evicted
        self._trim(None)
        return self.evicted - before

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self._segments)

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[EncodedSegment]:
        return iter(self._segments)

    def push(self, segment: EncodedSegment, now: datetime) -> None:
        """Add the segment just closed at `now`, then drop what is too old or over the memory bound."""
        if not self.enabled:
            return
        self._segments.append(segment)
        self._bytes += segment.size
        self._trim(now)

    def take(self, now: datetime) -> list[EncodedSegment]:
        """Hand over what covers the last `seconds` before `now` and empty the buffer."""
        self._trim(now)
        out = list(self._segments)
        self.clear()
        return out

    def clear(self) -> None:
        self._segments.clear()
        self._bytes = 0

    def _trim(self, now: datetime | None) -> None:
        horizon = None if now is None else now - timedelta(seconds=self.seconds)
        bound = self.bound
        while self._segments and (
            (horizon is not None and self._segments[0].started_at < horizon) or self._bytes > bound
        ):
            self._bytes -= self._segments.popleft().size
            self.evicted += 1
