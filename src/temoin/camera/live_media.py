"""The live transmission's media: what the camera sends, paced in real time.

The two aiortc tracks (`CameraVideoTrack`, `CameraAudioTrack`) that the WHIP client publishes, their
real-time pacing (`_Paced`), and `LiveFeed`, the short FIFOs through which the capture loop hands them the
pictures and sound it records. Apart from the HTTP client and the re-publish logic (`live_whip`,
`live_publisher`) so that the media can be read and tested without the network.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from temoin.camera.media import SyntheticScene

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_PTIME_S = 0.020
Frames = Callable[[int], np.ndarray]  # frame index -> (height, width, 3) uint8 RGB
Samples = Callable[[int, int], np.ndarray]  # (first sample, count) -> count mono float32 samples at 48 kHz


class _Paced:
    """Real-time pacing from a monotonic origin; `paused` holds the media back (a lost uplink, in tests)."""

    def __init__(self) -> None:
        self.origin: float | None = None
        self.running = asyncio.Event()
        self.running.set()
        self._paused_at: float | None = None

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = time.monotonic()
            self.running.clear()

    def resume(self) -> None:
        if self._paused_at is not None:
            if self.origin is not None:
                self.origin += time.monotonic() - self._paused_at  # the media skips the pause, no burst
            self._paused_at = None
            self.running.set()

    async def wait(self, offset_s: float) -> None:
        await self.running.wait()
        if self.origin is None:
            self.origin = time.monotonic()
        delay = self.origin + offset_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class CameraVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, frames: Frames, fps: int, pace: _Paced) -> None:
        super().__init__()
        self.frames, self.fps, self.pace = frames, fps, pace
        self.index = 0
        self.step = VIDEO_CLOCK // fps

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        i = self.index
        await self.pace.wait(i / self.fps)
        self.index += 1
        frame = av.VideoFrame.from_ndarray(self.frames(i), format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i * self.step, fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class CameraAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, scene: SyntheticScene | Samples, pace: _Paced) -> None:
        """`scene`: anything with `samples(first, count)` (a `SyntheticScene`), or that callable itself."""
        super().__init__()
        self.samples_of = cast("Samples", getattr(scene, "samples", scene))
        self.pace = pace
        self.index = 0
        self.samples = int(AUDIO_RATE * AUDIO_PTIME_S)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        i = self.index
        await self.pace.wait(i * AUDIO_PTIME_S)
        self.index += 1
        first = i * self.samples
        pcm = (np.clip(self.samples_of(first, self.samples), -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts, frame.time_base = first, fractions.Fraction(1, AUDIO_RATE)
        return frame


class _Gaps:
    """The longest recent interval between two deliveries of the agent: how much delay a FIFO needs."""

    def __init__(self, keep: int = 60) -> None:
        self._last: float | None = None
        self._gaps: deque[float] = deque(maxlen=keep)

    def tick(self) -> None:
        now = time.monotonic()
        if self._last is not None:
            self._gaps.append(now - self._last)
        self._last = now

    @property
    def longest(self) -> float:
        return max(self._gaps, default=0.0)


class LiveFeed:
    """What the camera agent captures, handed to the live tracks through two short FIFOs.

    The capture loop puts pictures (one per captured frame) and sound (what it reads from the microphone
    for the recording); the live tracks take one picture per 1/fps and 20 ms of sound at a time. Each FIFO
    keeps the delay it needs to ride over the gaps between the agent's deliveries (one frame in real time;
    a burst per tick for a simulated camera) and drops what is older: the live stream stays close to the
    recording. When the agent falls behind, the last picture is repeated and the sound is silence; before
    the first picture, a black one. Only while `active` (a live session) does it hold anything.
    """

    MAX_DELAY_S = 1.0
    AUDIO_MARGIN_S = 0.04

    def __init__(self, width: int, height: int, fps: int, sample_rate: int = AUDIO_RATE) -> None:
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self._lock = threading.Lock()
        self.active = False
        self._video: deque[np.ndarray] = deque()
        self._last = np.zeros((height, width, 3), np.uint8)
        self._audio = np.zeros(0, np.float32)
        self._resampler: av.AudioResampler | None = None
        self._video_gaps, self._audio_gaps = _Gaps(), _Gaps()
        self._video_started = False
        self._audio_buffering = True
        self.stats = {"pictures_in": 0, "pictures_out": 0, "repeated": 0, "dropped": 0, "audio_underruns": 0}

    def open(self) -> None:
        with self._lock:
            self._reset()
            self.active = True

    def close(self) -> None:
        with self._lock:
            self.active = False
            self._reset()

    def _reset(self) -> None:
        self._video.clear()
        self._audio = np.zeros(0, np.float32)
        self._resampler = None
        self._video_gaps, self._audio_gaps = _Gaps(), _Gaps()
        self._video_started = False
        self._audio_buffering = True

    # --- the capture loop's side ---

    def put_video(self, rgb: np.ndarray) -> None:
        if not self.active:
            return
        if rgb.shape[:2] != (self.height, self.width):
            rgb = (
                av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                .reformat(width=self.width, height=self.height)
                .to_ndarray()
            )
        else:
            rgb = rgb.copy()  # the recording burns its overlay into the agent's array afterwards
        with self._lock:
            if not self.active:
                return  # closed meanwhile
            self._video.append(rgb)
            self._video_gaps.tick()
            self.stats["pictures_in"] += 1
            while len(self._video) > self.fps * self.MAX_DELAY_S:
                self._video.popleft()
                self.stats["dropped"] += 1

    def put_audio(self, frame: av.AudioFrame) -> None:
        # The capture loop calls this while the live link may close the feed from another thread: the resampler
        # is taken under the lock, and what it gives is kept only if the same session is still open.
        with self._lock:
            if not self.active:
                return
            if self._resampler is None:
                self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
            resampler = self._resampler
        copy = av.AudioFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name)
        copy.sample_rate = frame.sample_rate  # a copy: the recording's encoder sets the original's pts
        parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(copy)]
        if not parts:
            return
        with self._lock:
            if not self.active or self._resampler is not resampler:
                return  # closed (or closed and opened again) meanwhile
            self._audio = np.concatenate([self._audio, *parts])
            self._audio_gaps.tick()
            cap = int(self.MAX_DELAY_S * self.sample_rate)
            if len(self._audio) > cap:
                self._audio = self._audio[-cap:]

    # --- the live tracks' side ---

    def picture(self, index: int) -> np.ndarray:
        """The next picture to send (`Frames`)."""
        with self._lock:
            keep = max(1, math.ceil(self._video_gaps.longest * self.fps))
            if not self._video_started and self._video:
                while len(self._video) > 1:  # the first picture sent is the newest: no backlog from the start
                    self._video.popleft()
                    self.stats["dropped"] += 1
                self._video_started = True
            while len(self._video) > keep + 1:
                self._video.popleft()
                self.stats["dropped"] += 1
            if self._video:
                self._last = self._video.popleft()
            else:
                self.stats["repeated"] += 1
            self.stats["pictures_out"] += 1
            return self._last

    def samples(self, first: int, count: int) -> np.ndarray:
        """The next `count` samples to send (`Samples`); silence while buffering."""
        with self._lock:
            target = int((self._audio_gaps.longest + self.AUDIO_MARGIN_S) * self.sample_rate)
            if self._audio_buffering:
                if len(self._audio) < max(target, count):
                    return np.zeros(count, np.float32)
                self._audio_buffering = False
                self._audio = self._audio[-max(target, count) :]
            if len(self._audio) < count:
                out = np.concatenate([self._audio, np.zeros(count - len(self._audio), np.float32)])
                self._audio = np.zeros(0, np.float32)
                self._audio_buffering = True
                self.stats["audio_underruns"] += 1
                return out
            out, self._audio = self._audio[:count], self._audio[count:]
            if len(self._audio) > target + self.sample_rate // 5:
                self._audio = self._audio[-target:]
            return out
