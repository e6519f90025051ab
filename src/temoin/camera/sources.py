"""Where pictures and sound come from: protocols for the camera's sensor and microphone, and
their implementations, all through PyAV (FFmpeg):

- `SyntheticVideo` / `SyntheticAudio`: a generated street scene and tone (simulated cameras, tests);
- `FileVideo`: a video file played in a loop at its own frame rate (a bench test without a sensor);
- `V4l2Video`: a V4L2 camera (`/dev/videoN`, a USB webcam or a board's sensor);
- `DeviceAudio`: an ALSA or PulseAudio microphone (when the FFmpeg build has that input).

`parse_source` reads the `--source` spec of `temoin camera run`: `synthetic`, `file:PATH` or
`v4l2:/dev/video0`, optionally followed by `+AUDIO` where AUDIO is `synthetic`, `alsa:DEVICE`,
`pulse:DEVICE` or `none` (e.g. `v4l2:/dev/video0+alsa:default`). `open_sources` opens them and
says clearly what is missing (the device, or the input in this FFmpeg build).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol, cast

import av
import numpy as np

from temoin import errors
from temoin.camera import SOURCE_HELP
from temoin.camera.clock import Clock, system_clock, wait_until
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


SENSOR_BUFFER_S = 1.0  # what a real-time sensor keeps of the frames nobody has read yet


class SyntheticVideo:
    """Frames of a `SyntheticScene`, paced by `clock`: frame k is captured at epoch + k / fps.

    In real time (the system clock) it behaves as a sensor with buffers: frames captured while the camera
    was busy (a segment being written, the process paused) are still delivered, late, up to `backlog_s` of
    them; older ones are lost (`dropped`), as they would be from a real sensor's full buffers. With a
    simulated clock there is no backlog: frames whose time has passed are skipped."""

    def __init__(
        self, scene: SyntheticScene, clock: Clock, epoch: datetime | None = None, backlog_s: float | None = None
    ) -> None:
        self.scene = scene
        self.clock = clock
        self.width, self.height, self.fps = scene.width, scene.height, scene.fps
        self.epoch = (epoch or clock()).astimezone(UTC)
        self._real_time = clock is system_clock
        self.backlog_s = backlog_s if backlog_s is not None else (SENSOR_BUFFER_S if self._real_time else 0.0)
        self._next = 0
        self.dropped = 0  # frames lost because they were not read in time
        self.captured_monotonic: float | None = None  # time.monotonic() when the last frame read was captured

    def read(self) -> tuple[np.ndarray, datetime]:
        now = self.clock()
        mono = time.monotonic()
        behind = _micros(now - self.epoch) * self.fps // 1_000_000  # the frame being captured now
        index = max(self._next, behind - int(self.backlog_s * self.fps))
        self.dropped += index - self._next
        at = self.epoch + self.scene.frame_time(index)
        if self._real_time:  # its capture instant on the monotonic clock, whenever this thread gets to run
            self.captured_monotonic = mono + (at - now).total_seconds()
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


# --- real sources ------------------------------------------------------------------------------


class SourceError(errors.UpstreamFault, RuntimeError):
    """A source cannot be opened or read: the message names it and says what to check."""


def _even(n: int) -> int:
    return max(16, n - n % 2)  # yuv420p needs even dimensions


def _rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    return frame.reformat(width=width, height=height, format="rgb24").to_ndarray()


def _has_input_format(name: str) -> bool:
    try:
        av.format.ContainerFormat(name)
    except ValueError:
        return False
    return True


class FileVideo:
    """A video file's frames, looped, paced by `clock` at the file's own frame rate.

    Frame k (counting across loops) is captured at epoch + k / fps; as with the synthetic source a
    slow encoder skips frames rather than falling behind.
    """

    def __init__(
        self,
        path: str | Path,
        clock: Clock,
        *,
        width: int | None = None,
        height: int | None = None,
        epoch: datetime | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"no video file at {self.path}")
        self.clock = clock
        self._container = self._open()
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = max(1, round(float(rate))) if rate else 25
        self.width = _even(width or stream.codec_context.width)
        self.height = _even(height or stream.codec_context.height)
        self.epoch = (epoch or clock()).astimezone(UTC)
        self.loops = 0
        self._frames = self._container.decode(video=0)
        self._next = 0

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot read the video file {self.path}: {exc}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.path} has no video stream")
        return container

    def _decode_one(self) -> av.VideoFrame:
        for _ in range(2):
            try:
                return next(self._frames)
            except StopIteration:
                # The end of the file: start it again (reopening is simpler and surer than seeking).
                self._container.close()
                self._container = self._open()
                self._frames = self._container.decode(video=0)
                self.loops += 1
        raise SourceError(f"{self.path} has no decodable video frame")

    def read(self) -> tuple[np.ndarray, datetime]:
        now = self.clock()
        behind = _micros(now - self.epoch) * self.fps // 1_000_000
        index = max(self._next, behind)
        frame = self._decode_one()
        for _ in range(index - self._next):
            frame = self._decode_one()  # frames whose time has passed are dropped
        at = self.epoch + timedelta(microseconds=round(index * 1_000_000 / self.fps))
        wait_until(self.clock, at)
        self._next = index + 1
        return _rgb(frame, self.width, self.height), at

    def close(self) -> None:
        self._container.close()


class V4l2Video:
    """A V4L2 camera through FFmpeg's v4l2 input. Frames are stamped with the camera clock when
    they arrive (the driver paces them)."""

    def __init__(self, device: str, clock: Clock, *, width: int = 640, height: int = 480, fps: int = 15) -> None:
        if not _has_input_format("v4l2"):
            raise SourceError("this FFmpeg build (PyAV) has no V4L2 input: use file: or synthetic")
        if not os.path.exists(device):
            raise SourceError(
                f"no V4L2 camera at {device}: the device does not exist "
                "(is the camera plugged in? see `ls /dev/video*`)"
            )
        self.device = device
        self.clock = clock
        self.width, self.height, self.fps = _even(width), _even(height), fps
        try:
            self._container = av.open(
                device, format="v4l2", options={"video_size": f"{self.width}x{self.height}", "framerate": str(fps)}
            )
        except (av.FFmpegError, OSError):
            try:  # that size or rate is not offered: take the camera's own mode, frames are rescaled
                self._container = av.open(device, format="v4l2")
            except (av.FFmpegError, OSError) as exc:
                raise SourceError(f"cannot open the V4L2 camera {device}: {exc}") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{device} gives no video stream")
        self._frames = self._container.decode(video=0)

    def read(self) -> tuple[np.ndarray, datetime]:
        try:
            frame = next(self._frames)
        except (StopIteration, av.FFmpegError, OSError) as exc:
            raise SourceError(
                f"the V4L2 camera {self.device} stopped giving frames: {exc or 'end of stream'}"
            ) from None
        return _rgb(frame, self.width, self.height), self.clock()

    def close(self) -> None:
        self._container.close()


class DeviceAudio:
    """A microphone through FFmpeg's `alsa` or `pulse` input, read by a background thread while open.

    Sound is resampled to mono float at `sample_rate`; `read` hands over what arrived since the
    last read. The device is opened on `start` and closed on `stop` (standby is silent by default).
    """

    def __init__(
        self, kind: Literal["alsa", "pulse"], device: str = "default", *, sample_rate: int = 48_000, probe: bool = True
    ) -> None:
        if not _has_input_format(kind):
            raise SourceError(
                f"this FFmpeg build (PyAV) has no {kind} input: cannot use the microphone "
                f"{kind}:{device}; try {'alsa' if kind == 'pulse' else 'pulse'}: or none"
            )
        self.kind, self.device, self.sample_rate = kind, device, sample_rate
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        if probe:
            self._open().close()

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(self.device, format=self.kind)
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(
                f"cannot open the {self.kind} microphone {self.device!r}: {exc} "
                f"(list devices with `arecord -L`, or use --source ...+none)"
            ) from None
        if not container.streams.audio:
            container.close()
            raise SourceError(f"{self.kind}:{self.device} gives no audio stream")
        return container

    def start(self, at: datetime) -> None:
        self.stop()
        container = self._open()  # here, so that a missing device is an error now, not in a thread
        self._stop = threading.Event()
        with self._lock:
            self._chunks = []
        self._thread = threading.Thread(
            target=self._pump, args=(container, self._stop), daemon=True, name=f"mic-{self.kind}"
        )
        self._thread.start()

    def _pump(self, container: av.container.InputContainer, stop: threading.Event) -> None:
        # The container is read and closed by this thread only (FFmpeg contexts are not thread-safe);
        # a microphone delivers a frame every few tens of milliseconds, so `stop` is seen quickly.
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=self.sample_rate)
        try:
            for frame in container.decode(audio=0):
                if stop.is_set():
                    return
                for out in resampler.resample(frame):
                    with self._lock:
                        self._chunks.append(out.to_ndarray().reshape(-1).copy())
        except (av.FFmpegError, OSError) as exc:
            self.error = f"the {self.kind} microphone {self.device!r} stopped: {exc}"
        finally:
            try:
                container.close()
            except (av.FFmpegError, OSError):
                pass

    def read(self, until: datetime) -> av.AudioFrame | None:
        with self._lock:
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return None
        frame = av.AudioFrame.from_ndarray(
            np.concatenate(chunks).reshape(1, -1).astype(np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = self.sample_rate
        return frame

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None


# --- the --source spec -------------------------------------------------------------------------

VideoKind = Literal["synthetic", "file", "v4l2"]
AudioKind = Literal["synthetic", "alsa", "pulse", "none"]
SPEC_HELP = SOURCE_HELP


@dataclass(frozen=True)
class SourceSpec:
    video: VideoKind
    video_target: str | None = None  # the file or the device
    audio: AudioKind = "none"
    audio_device: str | None = None

    def describe(self) -> str:
        video = self.video if self.video_target is None else f"{self.video}:{self.video_target}"
        audio = self.audio if self.audio_device is None else f"{self.audio}:{self.audio_device}"
        return f"{video}+{audio}"


def parse_source(spec: str) -> SourceSpec:
    """`synthetic`, `file:PATH`, `v4l2:/dev/video0`, each optionally `+synthetic|+alsa:DEV|+pulse:DEV|+none`."""
    text = spec.strip()
    video_part, plus, audio_part = text.rpartition("+")
    if not plus or audio_part.partition(":")[0].strip().lower() not in ("synthetic", "alsa", "pulse", "none"):
        video_part, plus, audio_part = text, "", ""  # no audio part (a file name may hold a "+")
    kind, _colon, target = video_part.partition(":")
    kind = kind.strip().lower()
    if kind == "synthetic" and not target:
        video: tuple[VideoKind, str | None] = ("synthetic", None)
    elif kind == "file" and target:
        video = ("file", target)
    elif kind == "v4l2":
        if target and not target.startswith("/dev/"):
            raise ValueError(f"a V4L2 device is a /dev path such as /dev/video0, not {target!r}")
        video = ("v4l2", target or "/dev/video0")
    else:
        raise ValueError(f"unknown source {spec!r}: expected {SPEC_HELP}")
    if not plus:
        audio: tuple[AudioKind, str | None] = ("synthetic", None) if video[0] == "synthetic" else ("none", None)
    else:
        audio = parse_audio(audio_part)
    return SourceSpec(video[0], video[1], audio[0], audio[1])


def parse_audio(spec: str) -> tuple[AudioKind, str | None]:
    kind, _, device = spec.strip().partition(":")
    kind = kind.lower()
    if kind in ("synthetic", "none") and not device:
        return cast(AudioKind, kind), None
    if kind in ("alsa", "pulse"):
        return cast(AudioKind, kind), device or "default"
    raise ValueError(f"unknown audio source {spec!r}: expected synthetic, alsa:DEVICE, pulse:DEVICE or none")


def open_sources(
    spec: SourceSpec, clock: Clock, *, width: int = 320, height: int = 240, fps: int = 10, seed: int = 0
) -> tuple[VideoSource, AudioSource | None]:
    """Open what `spec` names; a `SourceError` says precisely what is missing."""
    epoch = clock()
    scene: SyntheticScene | None = None
    if spec.video == "synthetic" or spec.audio == "synthetic":
        scene = SyntheticScene(_even(width), _even(height), fps=fps, seed=seed)
    video: VideoSource
    if spec.video == "synthetic":
        assert scene is not None
        video = SyntheticVideo(scene, clock, epoch)
    elif spec.video == "file":
        assert spec.video_target is not None
        video = FileVideo(spec.video_target, clock, epoch=epoch)
    else:
        video = V4l2Video(spec.video_target or "/dev/video0", clock, width=width, height=height, fps=fps)
    audio: AudioSource | None = None
    if spec.audio == "synthetic":
        assert scene is not None
        audio = SyntheticAudio(scene, epoch)
    elif spec.audio in ("alsa", "pulse"):
        audio = DeviceAudio(spec.audio, spec.audio_device or "default")
    return video, audio
