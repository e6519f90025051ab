"""A generated clip with real faces at known places, for the redaction tests and benchmark.

The faces are photographs that ship inside installed packages (nothing is downloaded): scikit-image's
astronaut (Eileen Collins) and cameraman, and faces from its bundled Labeled Faces in the Wild subset
(`temoin.demo.passersby`, where the demo's passers-by come from too). They are composited over a textured
background, moving, growing or shrinking, some entering half-way through the clip, and the face box of each one
is known on every frame (the ground truth). The sound is a voice-like signal: harmonics of a moving pitch shaped
by vowel formants, in syllables.

`coverage()` decides, from the decoded source and output, whether each ground-truth face was redacted: the fine
detail (Laplacian energy, per block) inside the face box must have collapsed. The same measure scores our engine
and deface in bench/redaction.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from temoin.demo.passersby import Box, bounce, face_images, paste_face


@dataclass(frozen=True)
class Actor:
    """One face on screen from `start` to `end` (frames, inclusive), moving and bouncing off the edges."""

    face: int  # index into face_images()
    start: int
    end: int
    x: float  # face box centre at `start`, in pixels
    y: float
    vx: float  # pixels per frame
    vy: float
    width0: float  # face box width at `start`, then at `end`
    width1: float
    cell: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # where it roams: x0, y0, x1, y1 (fractions)

    def box_at(self, frame: int, width: int, height: int) -> Box | None:
        if not self.start <= frame <= self.end:
            return None
        img = face_images()[self.face]
        t = (frame - self.start) / max(1, self.end - self.start)
        fw = self.width0 + (self.width1 - self.width0) * t
        fh = fw * img.face[3] / img.face[2]
        x0, y0, x1, y1 = self.cell[0] * width, self.cell[1] * height, self.cell[2] * width, self.cell[3] * height
        cx = bounce(self.x + self.vx * (frame - self.start), x0 + fw / 2, x1 - fw / 2)
        cy = bounce(self.y + self.vy * (frame - self.start), y0 + fh / 2, y1 - fh / 2)
        return int(round(cx - fw / 2)), int(round(cy - fh / 2)), int(round(fw)), int(round(fh))


@dataclass
class Clip:
    path: Path
    width: int
    height: int
    fps: int
    frames: int
    actors: list[Actor]
    truth: list[list[tuple[int, Box]]] = field(default_factory=list)  # per frame: (actor index, face box)
    audio_rate: int = 48_000


def default_actors(width: int, height: int, frames: int) -> list[Actor]:
    """Six faces, each roaming its own sixth of the picture: big and small, slow and fast, growing and
    shrinking, two that enter after the start (one between two detections) and one that leaves early."""
    s = width / 640
    third, half = 1 / 3, 1 / 2
    return [
        Actor(0, 0, frames - 1, 100 * s, 90 * s, 2.0 * s, 0.8 * s, 70 * s, 55 * s, (0, 0, third, half)),
        Actor(1, 0, frames - 1, 320 * s, 100 * s, -1.5 * s, -1.2 * s, 45 * s, 60 * s, (third, 0, 2 * third, half)),
        Actor(2, frames // 4, frames - 1, 530 * s, 90 * s, 3.0 * s, 1.5 * s, 45 * s, 40 * s, (2 * third, 0, 1, half)),
        Actor(3, 0, (2 * frames) // 3, 100 * s, 270 * s, -1.0 * s, 1.0 * s, 40 * s, 34 * s, (0, half, third, 1)),
        Actor(
            4,
            frames // 2 + 1,
            frames - 1,
            320 * s,
            270 * s,
            1.6 * s,
            -0.6 * s,
            55 * s,
            60 * s,
            (third, half, 2 * third, 1),
        ),
        Actor(5, 7, frames - 1, 530 * s, 270 * s, 0.0, -0.5 * s, 36 * s, 42 * s, (2 * third, half, 1, 1)),
    ]


def background(width: int, height: int) -> np.ndarray:
    import skimage.data as data

    brick = cv2.cvtColor(data.brick(), cv2.COLOR_GRAY2RGB)
    tiled = np.tile(brick, (height // brick.shape[0] + 1, width // brick.shape[1] + 1, 1))[:height, :width]
    ramp = np.linspace(0.55, 0.9, width)[None, :, None] * np.array([0.9, 1.0, 1.1])
    return np.clip(tiled * ramp, 0, 255).astype(np.uint8)


def render(clip: Clip, frame: int, base: np.ndarray) -> tuple[np.ndarray, list[tuple[int, Box]]]:
    """The picture and its ground truth; a face more than a fifth hidden by a later one is left out of it."""
    img = base.copy()
    truth: list[tuple[int, Box]] = []
    drawn = np.full((clip.height, clip.width), -1, np.int16)  # which actor's patch is on top, per pixel
    for n, actor in enumerate(clip.actors):
        box = actor.box_at(frame, clip.width, clip.height)
        if box is None:
            continue
        area = paste_face(img, face_images()[actor.face], box)
        if area is not None:
            x0, y0, x1, y1 = area
            drawn[y0:y1, x0:x1] = n
        truth.append((n, box))
    visible = []
    for n, box in truth:
        x, y, w, h = clipped(box, clip.width, clip.height)
        if w and h and float(np.mean(drawn[y : y + h, x : x + w] == n)) >= 0.8:
            visible.append((n, box))
    return img, visible


def voice(seconds: float, rate: int = 48_000, seed: int = 7) -> np.ndarray:
    """A voice-like mono signal in [-1, 1]: a pitch gliding 110-190 Hz, vowel formants, 4 syllables/s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 35 * np.sin(2 * np.pi * 0.6 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    vowels = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480]], float)
    syllable = (t * 4).astype(int)
    formants = vowels[rng.integers(0, len(vowels), syllable.max() + 1)][syllable]
    out = np.zeros_like(t)
    for h in range(1, 40):
        freq = h * f0
        gain = sum(np.exp(-0.5 * ((freq - formants[:, k]) / (80 + 40 * k)) ** 2) / (k + 1) for k in range(3))
        out += np.where(freq < rate / 2 - 1000, gain / np.sqrt(h), 0) * np.sin(h * phase)
    envelope = np.clip(np.sin(np.pi * (t * 4 % 1)), 0, 1) ** 0.7
    out *= envelope
    return (0.5 * out / np.max(np.abs(out))).astype(np.float32)


def make_clip(
    path: Path,
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    seconds: float = 3.0,
    actors: list[Actor] | None = None,
    audio: bool = True,
    crf: int = 18,
) -> Clip:
    frames = int(round(seconds * fps))
    clip = Clip(path, width, height, fps, frames, actors or default_actors(width, height, frames))
    base = background(width, height)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": str(crf)})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=clip.audio_rate, layout="mono") if audio else None
        if sound is not None:
            samples = voice(frames / fps, clip.audio_rate)
            chunk = 1024
            for start in range(0, len(samples), chunk):
                piece = samples[None, start : start + chunk]
                frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = clip.audio_rate, start, Fraction(1, clip.audio_rate)
                for packet in sound.encode(frame):
                    out.mux(packet)
        for i in range(frames):
            img, truth = render(clip, i, base)
            clip.truth.append(truth)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for packet in video.encode(vf):
                out.mux(packet)
        for stream in (video, sound):
            if stream is not None:
                for packet in stream.encode():
                    out.mux(packet)
    return clip


# --- scoring ---------------------------------------------------------------------------------------


def luma_frames(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="gray")


def _detail(y: np.ndarray, box: Box, block: int) -> np.ndarray:
    """Mean |Laplacian| per block inside `box`: the fine detail that identifies a face."""
    x, yy, w, h = box
    region = y[max(0, yy) : yy + h, max(0, x) : x + w].astype(np.float32)
    if region.shape[0] < block or region.shape[1] < block:
        return np.empty(0, np.float32)
    lap = np.abs(cv2.Laplacian(region, cv2.CV_32F, ksize=1))  # 4-neighbour: the finest detail only
    bh, bw = region.shape[0] // block, region.shape[1] // block
    return lap[: bh * block, : bw * block].reshape(bh, block, bw, block).mean(axis=(1, 3)).ravel()


def _block(box: Box) -> int:
    return max(4, min(box[2], box[3]) // 8)


NOISE_FLOOR = 3.0  # the detail that encoding noise leaves on a smooth area
TEXTURED = 6.0  # a block with at least this much detail carries something of the face


def redacted(src_y: np.ndarray, out_y: np.ndarray, box: Box) -> bool:
    """The face's fine detail is gone: at most a third of it is left above the noise floor overall, and no more
    than a tenth of its textured blocks keep over 60 % of theirs (a face half covered fails)."""
    before, after = _detail(src_y, box, _block(box)), _detail(out_y, box, _block(box))
    textured = before > TEXTURED
    if textured.sum() < 3:  # nothing to measure: fall back to a plain difference
        x, y, w, h = box
        return float(np.abs(src_y[y : y + h, x : x + w].astype(int) - out_y[y : y + h, x : x + w]).mean()) > 10
    kept = float(np.mean(after[textured] > 0.6 * before[textured]))
    left = np.clip(after - NOISE_FLOOR, 0, None).sum() / np.clip(before - NOISE_FLOOR, 1e-6, None).sum()
    return float(left) <= 1 / 3 and kept <= 0.1


def clear(src_y: np.ndarray, out_y: np.ndarray, box: Box) -> bool:
    """The face is left as it was: most of its detail survives and the pixels barely moved."""
    before, after = _detail(src_y, box, _block(box)), _detail(out_y, box, _block(box))
    textured = before > TEXTURED
    x, y, w, h = box
    diff = float(np.abs(src_y[y : y + h, x : x + w].astype(int) - out_y[y : y + h, x : x + w]).mean())
    return diff < 6 and float(np.mean(after[textured] >= before[textured] / 2)) >= 0.8


def clipped(box: Box, width: int, height: int) -> Box:
    x, y, w, h = box
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


@dataclass
class Coverage:
    covered: int = 0
    total: int = 0
    missed: list[tuple[int, int]] = field(default_factory=list)  # (frame, actor)
    frames_compared: int = 0

    @property
    def recall(self) -> float:
        return self.covered / self.total if self.total else 1.0


def coverage(clip: Clip, out: Path, *, actors: set[int] | None = None, frames: range | None = None) -> Coverage:
    """How many ground-truth face boxes (of `actors`, on `frames`; default all) are redacted in `out`."""
    result = Coverage()
    for i, (src_y, out_y) in enumerate(zip(luma_frames(clip.path), luma_frames(out), strict=False)):
        result.frames_compared += 1
        if frames is not None and i not in frames:
            continue
        for actor, box in clip.truth[i]:
            if actors is not None and actor not in actors:
                continue
            box = clipped(box, clip.width, clip.height)
            if box[2] < 8 or box[3] < 8:
                continue
            result.total += 1
            if redacted(src_y, out_y, box):
                result.covered += 1
            else:
                result.missed.append((i, actor))
    return result
