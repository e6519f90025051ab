"""Where pictures and sound come from: protocols for the camera's sensor and microphone, and the
synthetic implementations used by simulated cameras and the tests.

A real camera plugs V4L2 (video) and ALSA (sound) implementations in here; they are not part of
this build.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import av
import numpy as np

from temoin.camera.clock import Clock, wait_until
from temoin.camera.media import SyntheticScene


class VideoSource(Protocol):
    width: int
    height: int
    fps: int

    def read(self) -> tuple[np.ndarray, datetime]:
        """Block until the next frame is captured; return it (RGB, height x width x 3) and its capture time."""


class AudioSource(Protocol):
    sample_rate: int

    def start(self, at: datetime) -> None:
        """Open the microphone: sound from `at` on is captured."""

    def read(self, until: datetime) -> av.AudioFrame | None:
        """The sound captured since the previous read (or `start`) up to `until`; None if there is none."""

    def stop(self) -> None: ...


def _micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


class SyntheticVideo:
    """Frames of a `SyntheticScene`, paced by `clock`: frame k is captured at epoch + k / fps."""

    def __init__(self, scene: SyntheticScene, clock: Clock, epoch: datetime | None = None) -> None:
        self.scene = scene
        self.clock = clock
        self.width, self.height, self.fps = scene.width, scene.height, scene.fps
        self.epoch = (epoch or clock()).astimezone(UTC)
        self._next = 0

    def read(self) -> tuple[np.ndarray, datetime]:
        # Skip frames whose time has passed (a slow encoder drops frames, as a real one would).
        now = self.clock()
        behind = _micros(now - self.epoch) * self.fps // 1_000_000
        index = max(self._next, behind)
        at = self.epoch + self.scene.frame_time(index)
        wait_until(self.clock, at)
        self._next = index + 1
        return self.scene.rgb(index), at


class SyntheticAudio:
    """The scene's tone, sample-exact: sample n is heard at epoch + n / rate."""

    def __init__(self, scene: SyntheticScene, epoch: datetime) -> None:
        self.scene = scene
        self.sample_rate = scene.sample_rate
        self.epoch = epoch.astimezone(UTC)
        self._cursor: int | None = None

    def _sample(self, at: datetime) -> int:
        return _micros(at - self.epoch) * self.sample_rate // 1_000_000

    def start(self, at: datetime) -> None:
        self._cursor = self._sample(at)

    def read(self, until: datetime) -> av.AudioFrame | None:
        if self._cursor is None:
            return None
        end = self._sample(until)
        if end <= self._cursor:
            return None
        frame = self.scene.audio_frame(self._cursor, end - self._cursor)
        self._cursor = end
        return frame

    def stop(self) -> None:
        self._cursor = None
