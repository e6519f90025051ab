"""Real media for the camera agent: a synthetic scene, the burned-in overlay, fMP4 segments.

A recording is cut into standalone fragmented-MP4 segments (H.264 + AAC): each one starts
with a keyframe and carries its own init section, so that it can be hashed, chained, uploaded
and played alone (ffprobe, a browser's <video>) without the segments around it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from types import TracebackType
from typing import Final, Literal, Self

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from temoin.law.legal_time import PARIS

# Each segment is a complete fMP4 file: moov first (empty), then one moof+mdat per keyframe.
FMP4_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    # Without this the muxer delays the whole video track by the AAC priming (21 ms at 48 kHz)
    # to keep timestamps non-negative, which makes the first frame last longer than the others.
    "avoid_negative_ts": "disabled",
}
# 90 kHz is the usual video clock; fine enough to carry real capture times (jitter, drops).
VIDEO_TIME_BASE = Fraction(1, 90_000)
AUDIO_RATE = 48_000
AUDIO_CHUNK = 960  # 20 ms, a typical microphone callback
VIDEO_CODEC: Final = "libx264"
# A keyframe every 2 s inside a segment: fragments stay small and seeking stays cheap.
KEYFRAME_INTERVAL_S = 2
BOX_MARGIN = 4
BOX_PADDING = 3
LINE_SPACING = 2
BOX_COLOUR = (16, 16, 16)
TEXT_COLOUR = (255, 255, 255)


def pick_audio_codec() -> Literal["aac", "libopus"]:
    """AAC plays everywhere in MP4; Opus-in-MP4 is the fallback for builds without it."""
    name: Literal["aac", "libopus"]
    for name in ("aac", "libopus"):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001, S112 - PyAV raises different errors across versions
            continue
        return name
    raise RuntimeError("this PyAV build has neither an AAC nor an Opus encoder")


# --- synthetic scene -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mover:
    """A rectangle crossing the frame horizontally (a car, a pedestrian), wrapping around."""

    x0: float
    y: int
    w: int
    h: int
    speed: float  # pixels per second, negative goes left
    colour: tuple[int, ...]  # RGB

    def x_at(self, t: float, frame_width: int) -> int:
        span = frame_width + self.w
        return int((self.x0 + self.speed * t) % span) - self.w


class SyntheticScene:
    """A cheap, deterministic street-like scene with a matching tone, for simulated cameras.

    Frame `i` and audio sample `n` depend only on the seed and on `i` / `n`, so that segments
    can be produced in any order and a recording can be reproduced exactly.
    """

    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        fps: int = 15,
        seed: int = 0,
        *,
        sample_rate: int = AUDIO_RATE,
        tone_hz: float = 440.0,
    ) -> None:
        # yuv420p subsamples chroma by two in both directions.
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError("width and height must be even and at least 16")
        if fps <= 0 or sample_rate <= 0:
            raise ValueError("fps and sample_rate must be positive")
        self.width = width
        self.height = height
        self.fps = fps
        self.seed = seed
        self.sample_rate = sample_rate
        self.tone_hz = tone_hz
        rng = np.random.default_rng(seed)
        self._background = _street_background(width, height, rng)
        self._movers = _street_movers(width, height, rng)

    def frame_time(self, index: int) -> timedelta:
        """Offset of frame `index` from the start of the scene."""
        return timedelta(microseconds=round(index * 1_000_000 / self.fps))

    def rgb(self, index: int) -> np.ndarray:
        """Frame `index` as a fresh (height, width, 3) uint8 RGB array."""
        image = self._background.copy()
        t = index / self.fps
        for mover in self._movers:
            x = mover.x_at(t, self.width)
            left, right = max(x, 0), min(x + mover.w, self.width)
            if left < right:
                image[mover.y : mover.y + mover.h, left:right] = mover.colour
        return image

    def video_frame(self, index: int) -> av.VideoFrame:
        """Frame `index` as an rgb24 `av.VideoFrame` (no timestamp: the writer sets it)."""
        return av.VideoFrame.from_ndarray(self.rgb(index), format="rgb24")

    def samples(self, first: int, count: int) -> np.ndarray:
        """`count` mono float32 samples of the tone, from absolute sample `first`."""
        n = np.arange(first, first + count, dtype=np.int64)
        # Reduce the phase modulo one second first: float precision stays good for hours.
        phase = (n % self.sample_rate) * (2 * np.pi * self.tone_hz / self.sample_rate)
        return (0.2 * np.sin(phase)).astype(np.float32)

    def audio_frame(self, first: int, count: int = AUDIO_CHUNK) -> av.AudioFrame:
        """`count` samples from absolute sample `first`, as a mono fltp `av.AudioFrame`."""
        frame = av.AudioFrame.from_ndarray(self.samples(first, count).reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = self.sample_rate
        return frame


def _street_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Sky gradient, a row of buildings with windows, a sidewalk and a road."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    horizon = int(height * 0.55)
    tint = rng.integers(-30, 30, size=3)
    ramp = np.linspace(0.0, 1.0, horizon)[:, None]
    sky_top = np.clip(np.array([70, 110, 190]) + tint, 0, 255)
    sky_low = np.clip(np.array([180, 200, 230]) + tint, 0, 255)
    image[:horizon] = (sky_top + (sky_low - sky_top) * ramp)[:, None, :].astype(np.uint8)
    x = 0
    while x < width:
        w = int(rng.integers(width // 10, width // 4))
        top = int(rng.integers(horizon // 5, horizon - horizon // 5))
        colour = rng.integers(60, 160, size=3)
        image[top:horizon, x : x + w] = colour
        # Lit windows: a sparse grid in a lighter shade.
        for wy in range(top + 4, horizon - 6, 10):
            for wx in range(x + 3, min(x + w, width) - 4, 8):
                if rng.random() < 0.6:
                    image[wy : wy + 5, wx : wx + 4] = np.minimum(colour + 80, 255)
        x += w
    sidewalk = horizon + (height - horizon) // 5
    image[horizon:sidewalk] = (150, 150, 140)
    image[sidewalk:] = (70, 70, 75)
    lane = sidewalk + (height - sidewalk) // 2
    image[lane : lane + 2, ::16] = (230, 230, 200)
    image[lane : lane + 2, 1::16] = (230, 230, 200)
    return image


def _street_movers(width: int, height: int, rng: np.random.Generator) -> list[_Mover]:
    """Cars on two lanes and pedestrians on the sidewalk, with seeded sizes and speeds."""
    horizon = int(height * 0.55)
    sidewalk = horizon + (height - horizon) // 5
    lane = sidewalk + (height - sidewalk) // 2
    car_h = max(4, (height - sidewalk) // 3)
    movers: list[_Mover] = []
    for i in range(4):
        going_right = i % 2 == 0
        y = sidewalk + 2 if going_right else lane + 3
        speed = float(rng.uniform(width / 6, width / 2)) * (1 if going_right else -1)
        w = int(rng.integers(width // 8, width // 5))
        colour = tuple(int(c) for c in rng.integers(30, 255, size=3))
        movers.append(_Mover(float(rng.uniform(0, width)), y, w, min(car_h, height - y), speed, colour))
    person_h = max(4, (sidewalk - horizon) + height // 20)
    for _ in range(3):
        speed = float(rng.uniform(width / 40, width / 15)) * float(rng.choice([-1, 1]))
        colour = tuple(int(c) for c in rng.integers(20, 200, size=3))
        y = max(0, sidewalk - person_h)
        movers.append(_Mover(float(rng.uniform(0, width)), y, max(2, width // 60), person_h, speed, colour))
    return movers


# --- burned-in overlay -----------------------------------------------------------------------


def format_burn_in(at: datetime, agent_id: str, camera_id: str) -> list[str]:
    """The lines burned into a frame captured at `at`: local time in Paris, agent, camera."""
    if at.tzinfo is None:
        raise ValueError("the capture time must be timezone-aware")
    local = at.astimezone(PARIS)
    return [f"{local:%Y-%m-%d %H:%M:%S} {PARIS.key}", f"Agent {agent_id}", f"Caméra {camera_id}"]


def burn_in(rgb: np.ndarray, lines: list[str], *, scale: int | None = None) -> np.ndarray:
    """Write `lines` in white on a dark box at the top-left of `rgb`, in place; return it.

    `rgb` is a writable (height, width, 3) uint8 array. The box is opaque so that the text
    stays readable whatever the scene; its pixels depend only on the text and the scale
    (by default one step per 240 lines of picture, so the text keeps its size on screen).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("expected a (height, width, 3) uint8 RGB array")
    box = _render_box("\n".join(lines), scale or max(1, rgb.shape[0] // 240))
    h = min(box.shape[0], rgb.shape[0] - BOX_MARGIN)
    w = min(box.shape[1], rgb.shape[1] - BOX_MARGIN)
    if h > 0 and w > 0:
        rgb[BOX_MARGIN : BOX_MARGIN + h, BOX_MARGIN : BOX_MARGIN + w] = box[:h, :w]
    return rgb


@lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's built-in bitmap font: it covers Latin-1 (the "é" of "Caméra", which the bundled
    # FreeType default lacks), needs no system font, and renders the same on every machine.
    load = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)
    return load()


# The text changes once a second: rendering it once and pasting it keeps burn-in nearly free.
@lru_cache(maxsize=8)
def _render_box(text: str, scale: int) -> np.ndarray:
    text = text.encode("latin-1", "replace").decode("latin-1")  # what the bitmap font covers
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    _, _, right, bottom = probe.multiline_textbbox((0, 0), text, font=font, spacing=LINE_SPACING)
    image = Image.new("RGB", (int(right) + 2 * BOX_PADDING, int(bottom) + 2 * BOX_PADDING), BOX_COLOUR)
    ImageDraw.Draw(image).multiline_text(
        (BOX_PADDING, BOX_PADDING), text, fill=TEXT_COLOUR, font=font, spacing=LINE_SPACING
    )
    if scale > 1:
        # Whole-pixel enlargement keeps the bitmap glyphs sharp on larger pictures.
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    box = np.asarray(image, dtype=np.uint8)
    box.flags.writeable = False  # shared through the cache
    return box


# --- segments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedSegment:
    """One standalone fMP4 segment of a recording."""

    index: int
    data: bytes
    started_at: datetime  # capture time of its first video frame, UTC
    duration_s: float

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.duration_s)


class SegmentWriter:
    """Encodes one segment as it is captured; `close()` returns it.

    A live camera opens a writer, feeds it frames with their capture times, and rolls to a new
    writer every few seconds. Only the current segment's bytes are held in memory.
    Audio is laid out contiguously from the segment start (one microphone clock per segment).
    """

    def __init__(
        self,
        index: int,
        started_at: datetime,
        *,
        width: int,
        height: int,
        fps: int,
        agent_id: str,
        camera_id: str,
        audio: bool = True,
        sample_rate: int = AUDIO_RATE,
        overlay: bool = True,
    ) -> None:
        if started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        self.index = index
        self.started_at = started_at.astimezone(UTC)
        self.fps = fps
        self.agent_id = agent_id
        self.camera_id = camera_id
        self.overlay = overlay
        self._buffer = io.BytesIO()
        self._container = av.open(self._buffer, mode="w", format="mp4", options=FMP4_OPTIONS)
        self._video = self._add_video_stream(width, height, fps)
        self._audio = self._add_audio_stream(sample_rate) if audio else None
        self._last_pts = -1
        self._audio_samples = 0
        self._audio_input_rate: int | None = None
        self._closed = False

    def _add_video_stream(self, width: int, height: int, fps: int) -> av.VideoStream:
        stream = self._container.add_stream(
            VIDEO_CODEC, rate=fps, options={"preset": "veryfast", "tune": "zerolatency", "crf": "23"}
        )
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.time_base = VIDEO_TIME_BASE
        stream.codec_context.time_base = VIDEO_TIME_BASE
        stream.codec_context.gop_size = max(1, fps * KEYFRAME_INTERVAL_S)
        return stream

    def _add_audio_stream(self, sample_rate: int) -> av.AudioStream:
        stream = self._container.add_stream(pick_audio_codec(), rate=sample_rate, layout="mono")
        stream.bit_rate = 64_000
        return stream

    def add_video(self, frame: av.VideoFrame | np.ndarray, at: datetime) -> None:
        """Encode one frame captured at `at`; the overlay shows `at`, not the encode time."""
        self._check_open()
        if at.tzinfo is None:
            raise ValueError("the capture time must be timezone-aware")
        image = self._with_overlay(frame, at)
        # Capture times set the timestamps, but the muxer needs them strictly increasing.
        pts = max(_to_ticks(at - self.started_at), self._last_pts + 1)
        image.pts = pts
        image.time_base = VIDEO_TIME_BASE
        self._last_pts = pts
        self._mux(self._video.encode(image))

    def _with_overlay(self, frame: av.VideoFrame | np.ndarray, at: datetime) -> av.VideoFrame:
        if not self.overlay:
            return frame if isinstance(frame, av.VideoFrame) else av.VideoFrame.from_ndarray(frame, format="rgb24")
        rgb = frame.to_ndarray(format="rgb24") if isinstance(frame, av.VideoFrame) else frame
        if not rgb.flags.writeable:
            rgb = rgb.copy()
        burn_in(rgb, format_burn_in(at, self.agent_id, self.camera_id))
        return av.VideoFrame.from_ndarray(rgb, format="rgb24")

    def add_audio(self, frame: av.AudioFrame) -> None:
        """Encode the next chunk of sound, right after the previous one; sets `frame.pts`.

        Any sample format, layout and rate is accepted (the encoder resamples), but the rate
        must stay the same within a segment since it is the audio clock.
        """
        self._check_open()
        if self._audio is None:
            raise ValueError("this segment was opened without audio")
        if self._audio_input_rate is None:
            self._audio_input_rate = frame.sample_rate
        elif frame.sample_rate != self._audio_input_rate:
            raise ValueError("the audio sample rate changed within a segment")
        frame.pts = self._audio_samples
        frame.time_base = Fraction(1, frame.sample_rate)
        self._audio_samples += frame.samples
        self._mux(self._audio.encode(frame))

    def close(self) -> EncodedSegment:
        """Flush the encoders, finish the file and return the segment."""
        self._check_open()
        if self._last_pts < 0:
            self.abort()
            raise ValueError("a segment needs at least one video frame")
        self._mux(self._video.encode(None))
        if self._audio is not None:
            self._mux(self._audio.encode(None))
        self._container.close()
        self._closed = True
        data = self._buffer.getvalue()
        self._buffer = io.BytesIO()  # drop our reference: the caller owns the bytes now
        duration_s = float((self._last_pts + _to_ticks(timedelta(seconds=1 / self.fps))) * VIDEO_TIME_BASE)
        return EncodedSegment(self.index, data, self.started_at, duration_s)

    def abort(self) -> None:
        """Discard the segment (on error or shutdown)."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:  # noqa: BLE001, S110 - the partial file is being thrown away anyway
                pass
            self._buffer = io.BytesIO()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A segment left unclosed (an error, a forgotten close) is discarded, never half-written.
        self.abort()

    def _mux(self, packets: list[av.Packet]) -> None:
        if packets:
            self._container.mux(packets)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("segment already closed")


def _to_ticks(delta: timedelta) -> int:
    """A time offset in 90 kHz ticks, rounded to the nearest tick."""
    micros = delta // timedelta(microseconds=1)
    return (micros * 9 + 50) // 100


def iter_recording(
    scene: SyntheticScene,
    started_at: datetime,
    duration_s: float,
    segment_s: float = 10,
    *,
    agent_id: str = "PM-0001",
    camera_id: str = "cam-sim",
    audio: bool = True,
) -> Iterator[EncodedSegment]:
    """Encode `duration_s` of `scene` as if captured from `started_at`, one segment at a time."""
    if started_at.tzinfo is None:
        raise ValueError("started_at must be timezone-aware")
    if duration_s <= 0 or segment_s <= 0:
        raise ValueError("duration_s and segment_s must be positive")
    total = max(1, round(duration_s * scene.fps))
    per_segment = max(1, round(segment_s * scene.fps))
    for index, first in enumerate(range(0, total, per_segment)):
        last = min(first + per_segment, total)
        yield _encode_span(scene, started_at, index, first, last, agent_id, camera_id, audio)


def _encode_span(
    scene: SyntheticScene,
    started_at: datetime,
    index: int,
    first: int,
    last: int,
    agent_id: str,
    camera_id: str,
    audio: bool,
) -> EncodedSegment:
    """Encode frames [first, last) of `scene` and the sound that goes with them."""
    writer = SegmentWriter(
        index,
        started_at + scene.frame_time(first),
        width=scene.width,
        height=scene.height,
        fps=scene.fps,
        agent_id=agent_id,
        camera_id=camera_id,
        audio=audio,
        sample_rate=scene.sample_rate,
    )
    with writer:
        for i in range(first, last):
            writer.add_video(scene.rgb(i), started_at + scene.frame_time(i))
            if audio:
                # The sound of that frame's interval, so the muxer never has to queue much.
                start, end = _sample_at(scene, i), _sample_at(scene, i + 1)
                writer.add_audio(scene.audio_frame(start, end - start))
        return writer.close()


def _sample_at(scene: SyntheticScene, frame_index: int) -> int:
    return frame_index * scene.sample_rate // scene.fps


def encode_recording(
    scene: SyntheticScene,
    started_at: datetime,
    duration_s: float,
    segment_s: float = 10,
    *,
    agent_id: str = "PM-0001",
    camera_id: str = "cam-sim",
    audio: bool = True,
) -> list[EncodedSegment]:
    """Encode a whole recording; prefer `iter_recording` to hold one segment at a time."""
    return list(
        iter_recording(scene, started_at, duration_s, segment_s, agent_id=agent_id, camera_id=camera_id, audio=audio)
    )
