"""The pre-event buffer: the last seconds of encoded video, handed over as a recording's start.

In standby the agent keeps encoding into short keyframe-aligned segments (video only by
default) and pushes each closed segment here. The buffer keeps whole segments only, so that
what it hands over plays alone and can be hashed and chained like any other segment:

- never more than `seconds` before the moment recording starts (a segment that began earlier
  is dropped, so the pre-event footage is between `seconds - segment length` and `seconds`);
- never more than `max_bytes` held (the bitrate bound: bitrate x duration), oldest first;
- never more than `cap_bytes` when the agent sets it (`limit`): what the buffer holds lands on the
  device store when a recording starts, so when the store runs low the buffer gives way first.

Where the bytes lie: given a `folder` (the agent gives the device store's), in a sealed ring file
on the camera's storage (`camera.buffer_ring`: preallocated, nameless, AES-GCM under a key that
never leaves the process), so that the agent's memory does not grow with the buffer; without one,
in memory. Either way nothing of standby is readable once the camera is off, and a recording that
starts gets it encrypted under its own key (`device_store`).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from temoin.camera.buffer_ring import SealedRing, ring_capacity
from temoin.camera.media import EncodedSegment

log = logging.getLogger(__name__)

MAX_PRE_EVENT_S = 120.0  # the manifest's limit too (RecordingManifest.pre_event_buffer_s)
DEFAULT_PRE_EVENT_S = 30.0  # common practice (La Grande-Motte pilot, Axon's default)
DEFAULT_BITRATE_BPS = 2_000_000  # a 720p body-camera stream
RING_FOLDER = "standby"  # under the device store's root: the ring file's folder (0700)


def byte_budget(seconds: float, bitrate_bps: int) -> int:
    """Memory allowed for `seconds` of video at `bitrate_bps`."""
    return math.ceil(seconds * bitrate_bps / 8)


@dataclass(frozen=True)
class BufferedSegment:
    """A segment the buffer holds: what it is, and how to get its bytes back (`read`, from the ring or memory)."""

    index: int
    started_at: datetime
    duration_s: float
    size: int
    _load: Callable[[], bytes]
    sealed_size: int = 0  # what it takes in the ring file (0: held in memory)

    def read(self) -> EncodedSegment:
        """The segment itself; raises `RingDamaged` when its bytes no longer open (altered, failing storage)."""
        return EncodedSegment(self.index, self._load(), self.started_at, self.duration_s)


class PreEventBuffer:
    def __init__(
        self,
        seconds: float = DEFAULT_PRE_EVENT_S,
        *,
        bitrate_bps: int = DEFAULT_BITRATE_BPS,
        max_bytes: int | None = None,
        folder: Path | None = None,
    ) -> None:
        """`folder`: where the ring file goes (the camera's storage); None keeps the segments in memory."""
        if not 0 <= seconds <= MAX_PRE_EVENT_S:
            raise ValueError(f"the pre-event buffer is 0 to {MAX_PRE_EVENT_S:g} s, not {seconds:g}")
        if bitrate_bps <= 0:
            raise ValueError("bitrate_bps must be positive")
        self.seconds = float(seconds)
        self.max_bytes = byte_budget(seconds, bitrate_bps) if max_bytes is None else max_bytes
        self.cap_bytes: int | None = None  # set by `limit` (storage running low), None: no cap
        self.folder = folder
        self._ring: SealedRing | None = None  # opened with the first segment worth keeping
        self._ring_failed = False  # a write to it failed: in memory from then on
        self._segments: deque[BufferedSegment] = deque()
        self._bytes = 0
        self._sealed = 0  # bytes of the ring file the held segments take
        self.evicted = 0  # segments dropped so far (by age or by the memory bound)

    @property
    def enabled(self) -> bool:
        """Worth encoding into: a duration, and room for at least something."""
        return self.seconds > 0 and self.bound > 0

    @property
    def bound(self) -> int:
        """The bytes it may hold now: the memory bound, or less under a storage cap."""
        return self.max_bytes if self.cap_bytes is None else min(self.max_bytes, self.cap_bytes)

    @property
    def disk_bytes(self) -> int:
        """The bytes its ring file takes on the camera's storage (preallocated to the bound once opened)."""
        return self._ring.capacity if self._ring is not None else 0

    @property
    def in_memory_bytes(self) -> int:
        """The bytes of segments held in the process's memory (0 with a ring file)."""
        return sum(s.size for s in self._segments if not s.sealed_size)

    @property
    def on_disk(self) -> bool:
        """Its segments go to a ring file (False: in memory, by choice or after the storage failed)."""
        return self.folder is not None and not self._ring_failed

    def limit(self, cap_bytes: int | None) -> int:
        """Hold at most `cap_bytes` from now on (None lifts the cap); returns the segments dropped now. The ring
        file follows the bound: given back when it shrinks (storage running low: its room goes to recordings, and
        what it held with it), made again at the larger size, with the next segment, when it grows by a tenth."""
        self.cap_bytes = None if cap_bytes is None else max(0, cap_bytes)
        before = self.evicted
        self._trim(None)
        if self._ring is not None:
            wanted = ring_capacity(self.bound)
            if self.bound == 0 or wanted < self._ring.capacity or wanted > self._ring.capacity * 1.1:
                self.evicted += len(self._segments)
                self.close()
        return self.evicted - before

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self._segments)

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[BufferedSegment]:
        return iter(self._segments)

    def push(self, segment: EncodedSegment, now: datetime) -> None:
        """Add the segment just closed at `now`, after dropping what is too old or must make room for it."""
        if not self.enabled:
            return
        self._trim(now, incoming=segment.size)
        if segment.size > self.bound:
            self.evicted += 1  # larger than all the buffer may hold: dropped at once
            return
        ring = self._open_ring()
        held: BufferedSegment | None = None
        if ring is not None:
            held = self._write(ring, segment)
        if held is None:
            held = BufferedSegment(
                segment.index, segment.started_at, segment.duration_s, segment.size, _constant(segment.data)
            )
        self._segments.append(held)
        self._bytes += segment.size

    def _write(self, ring: SealedRing, segment: EncodedSegment) -> BufferedSegment | None:
        """The segment sealed into the ring; None when the storage fails (it is then kept in memory, and what
        follows too: standby goes on, and what the ring already holds is still read back when it can be)."""
        sealed = ring.sealed_size(segment.size)
        while self._segments and self._sealed + sealed > ring.capacity:  # never write over a held segment
            self._evict()
        try:
            aead, seq, offset = ring.write(segment.data)
        except OSError as exc:
            log.warning("pre-event buffer kept in memory from now on: its file failed (%s)", exc)
            self._ring_failed = True
            return None
        size = segment.size  # (the closure must not keep the segment's bytes alive)
        held = BufferedSegment(
            segment.index,
            segment.started_at,
            segment.duration_s,
            size,
            lambda: ring.read(aead, seq, offset, size),
            sealed,
        )
        self._sealed += sealed
        return held

    def take(self, now: datetime) -> list[BufferedSegment]:
        """Hand over what covers the last `seconds` before `now` and empty the buffer. Read each one back
        (`read`) before anything is pushed again: the ring's next turn overwrites them. Only what is handed over
        keeps the key they open with (the ring takes a new one)."""
        self._trim(now)
        out = list(self._segments)
        self.clear()
        return out

    def clear(self) -> None:
        """Drop everything held; in the ring, under a new key (what was there can no longer be opened)."""
        self._forget()
        if self._ring is not None:
            self._ring.rekey()

    def close(self) -> None:
        """Drop everything and give the ring file back (the buffer is replaced or the agent stops)."""
        self._forget()
        if self._ring is not None:
            self._ring.close()
            self._ring = None

    def _forget(self) -> None:
        self._segments.clear()
        self._bytes = self._sealed = 0

    def _open_ring(self) -> SealedRing | None:
        if self._ring_failed:
            return None
        if self._ring is None and self.folder is not None:
            try:
                self._ring = SealedRing(self.folder / RING_FOLDER, ring_capacity(self.bound))
            except OSError as exc:  # no room or no storage for it: the buffer still works, in memory
                log.warning("pre-event buffer kept in memory: its file could not be made in %s (%s)", self.folder, exc)
                self.folder = None
        return self._ring

    def _trim(self, now: datetime | None, incoming: int = 0) -> None:
        horizon = None if now is None else now - timedelta(seconds=self.seconds)
        bound = self.bound
        while self._segments and (
            (horizon is not None and self._segments[0].started_at < horizon) or self._bytes + incoming > bound
        ):
            self._evict()

    def _evict(self) -> None:
        dropped = self._segments.popleft()
        self._bytes -= dropped.size
        self._sealed -= dropped.sealed_size
        self.evicted += 1


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data
