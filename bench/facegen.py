"""Hard clips for the redaction benchmark, made with faces that no test uses.

The faces are 80 of the 100 faces of scikit-image's bundled Labeled Faces in the Wild subset (25×25 grey;
the tests and the demo use only numbers 3, 17 and 42, which are left out here, with their neighbours), tinted
to six skin tones from dark to light, pasted with a feathered oval edge over busy backgrounds (gravel, grass,
coffee beans, bricks, coloured signs). Nothing is downloaded. Each clip is 1080p30 (by default) with its ground
truth per frame: every visible face's box and the conditions it is seen in:

- `street`: eight people 28 to 140 px wide crossing at 2 to 15 px per frame, two turned (squeezed sideways),
  one half hidden behind a hand;
- `hard`: eight people 24 to 70 px wide, moving sideways at 10 to 40 px per frame (half of them with as much
  horizontal motion blur, half sharp), in dim light (a third of the brightness) with sensor noise, over a busy background;
- `crowd`: fourteen people 24 to 60 px wide, slowly moving, overlapping now and then.

A face more than a fifth hidden by another is left out of the ground truth on that frame (it cannot be seen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np

Box = tuple[int, int, int, int]
SCENES = ("street", "hard", "crowd")

USED_BY_TESTS = {3, 17, 42}  # temoin.demo.passersby (tests/facesynth.py): never in the benchmark
FACE_BOX = (0.08, 0.04, 0.84, 0.92)  # the face (brow to chin, cheek to cheek) in an LFW-subset crop
TONES = (  # RGB gains on the grey face, dark to light skin
    (0.50, 0.36, 0.27),
    (0.68, 0.50, 0.38),
    (0.85, 0.66, 0.52),
    (0.98, 0.80, 0.66),
    (1.06, 0.91, 0.80),
    (1.12, 1.00, 0.92),
)
TONE_NAMES = {0: " (darkest)", len(TONES) - 1: " (lightest)"}


@lru_cache(maxsize=1)
def faces() -> list[np.ndarray]:
    """The grey faces (float 0..1, 25×25) the benchmark may use: none the tests use, nor their neighbours."""
    import skimage.data as data

    lfw = data.lfw_subset()[:100]
    banned = {i + d for i in USED_BY_TESTS for d in (-1, 0, 1)}
    return [lfw[i] for i in range(100) if i not in banned]


@dataclass(frozen=True)
class Person:
    face: int  # index into faces()
    tone: int  # index into TONES
    start: int
    end: int  # frames, inclusive
    x: float  # face centre at start (px)
    y: float
    vx: float  # px per frame
    vy: float
    width0: float  # face width at start and at end (px)
    width1: float
    blur: int = 0  # horizontal motion blur, px
    turned: float = 1.0  # <1: the head turned sideways (the face squeezed horizontally)
    occluded: bool = False  # the lower part hidden behind a hand

    def box_at(self, frame: int, width: int, height: int) -> Box | None:
        if not self.start <= frame <= self.end:
            return None
        t = (frame - self.start) / max(1, self.end - self.start)
        fw = (self.width0 + (self.width1 - self.width0) * t) * self.turned
        fh = fw / self.turned * FACE_BOX[3] / FACE_BOX[2]
        cx = _bounce(self.x + self.vx * (frame - self.start), fw / 2, width - fw / 2)
        cy = _bounce(self.y + self.vy * (frame - self.start), fh / 2, height - fh / 2)
        return int(round(cx - fw / 2)), int(round(cy - fh / 2)), int(round(fw)), int(round(fh))

    def conditions(self, dim: bool, crowd: bool) -> list[str]:
        out = []
        if max(abs(self.vx), abs(self.vy)) >= 10:
            out.append("fast (>= 10 px/frame)")
        if self.blur >= 10:
            out.append("motion blur >= 10 px")
        if dim:
            out.append("dim light + noise")
        if self.turned < 1:
            out.append("turned")
        if self.occluded:
            out.append("partly hidden")
        if self.tone <= 1:
            out.append("dark skin")
        out.append(f"skin tone {self.tone + 1} of {len(TONES)}" + TONE_NAMES.get(self.tone, ""))
        if crowd:
            out.append("crowd (10+ faces)")
        return out if len(out) > 1 else ["plain", *out]  # the tone alone: nothing makes it hard


def _bounce(v: float, lo: float, hi: float) -> float:
    if hi <= lo:
        return (lo + hi) / 2
    span = hi - lo
    k = (v - lo) % (2 * span)
    return lo + (k if k <= span else 2 * span - k)


@dataclass
class HardClip:
    name: str
    path: Path
    width: int
    height: int
    fps: int
    frames: int
    people: list[Person]
    dim: bool = False
    crowd: bool = False
    truth: list[list[tuple[int, Box]]] = field(default_factory=list)  # per frame: (person, face box)


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A busy street-like wall: photographic textures in patches, with coloured signs."""
    import skimage.data as data

    textures = [
        cv2.cvtColor(data.gravel(), cv2.COLOR_GRAY2RGB),
        data.coffee(),
        cv2.cvtColor(data.grass(), cv2.COLOR_GRAY2RGB),
        cv2.cvtColor(data.brick(), cv2.COLOR_GRAY2RGB),
    ]
    img = np.zeros((height, width, 3), np.uint8)
    step = 360
    for y in range(0, height, step):
        for x in range(0, width, step):
            tex = textures[int(rng.integers(len(textures)))]
            tile = np.tile(tex, (step // tex.shape[0] + 1, step // tex.shape[1] + 1, 1))[:step, :step]
            gain = rng.uniform(0.6, 1.1, 3)
            patch = np.clip(tile * gain, 0, 255).astype(np.uint8)
            img[y : y + step, x : x + step] = patch[: height - y, : width - x]
    for _ in range(14):
        x, y = int(rng.integers(0, width - 200)), int(rng.integers(0, height - 100))
        w, h = int(rng.integers(60, 260)), int(rng.integers(30, 120))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(img, (x, y), (x + w, y + h), color, -1)
        cv2.putText(img, "OUVERT", (x + 5, y + h // 2 + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return img


def _patch(person: Person, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """The tinted head picture at the size that puts its face on `box`, and its alpha (feathered oval)."""
    grey = faces()[person.face]
    pw = max(4, int(round(box[2] / FACE_BOX[2])))
    ph = max(4, int(round(box[3] / FACE_BOX[3])))
    scaled = cv2.resize(grey.astype(np.float32), (pw, ph), interpolation=cv2.INTER_CUBIC)
    rgb = np.clip(scaled[..., None] * 255 * np.array(TONES[person.tone], np.float32), 0, 255)
    alpha = np.zeros((ph, pw), np.float32)
    cv2.ellipse(alpha, (pw // 2, ph // 2), (max(1, int(pw * 0.48)), max(1, int(ph * 0.5))), 0, 0, 360, 1.0, -1)
    feather = max(1, pw // 12) * 2 + 1
    alpha = cv2.GaussianBlur(alpha, (feather, feather), 0)
    if person.occluded:  # a hand over the mouth and chin: flat skin-coloured, no face detail
        hand = slice(int(ph * 0.6), ph)
        rgb[hand] = np.array(TONES[min(5, person.tone + 1)], np.float32) * 170
    if person.blur > 1:
        k = np.ones((1, person.blur), np.float32) / person.blur
        pad = person.blur
        rgb = cv2.copyMakeBorder(rgb, 0, 0, pad, pad, cv2.BORDER_CONSTANT)
        alpha = cv2.copyMakeBorder(alpha, 0, 0, pad, pad, cv2.BORDER_CONSTANT)
        premult = cv2.filter2D(rgb * alpha[..., None], -1, k)
        alpha = cv2.filter2D(alpha, -1, k)
        rgb = premult / np.maximum(alpha[..., None], 1e-3)
    return rgb, alpha


def _paste(img: np.ndarray, person: Person, box: Box, owner: np.ndarray, n: int) -> None:
    rgb, alpha = _patch(person, box)
    ph, pw = alpha.shape
    pad = person.blur if person.blur > 1 else 0
    x0 = box[0] - int(round(FACE_BOX[0] * box[2] / FACE_BOX[2])) - pad
    y0 = box[1] - int(round(FACE_BOX[1] * box[3] / FACE_BOX[3]))
    H, W = img.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(W, x0 + pw), min(H, y0 + ph)
    if dx1 <= dx0 or dy1 <= dy0:
        return
    a = alpha[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0, None]
    region = img[dy0:dy1, dx0:dx1].astype(np.float32)
    img[dy0:dy1, dx0:dx1] = np.clip(region * (1 - a) + rgb[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0] * a, 0, 255)
    bx0, by0 = max(0, box[0]), max(0, box[1])
    owner[by0 : box[1] + box[3], bx0 : box[0] + box[2]] = n  # the face itself, whatever its blur


def make(
    name: str, path: Path, *, width: int = 1920, height: int = 1080, fps: int = 30, seconds: float = 4.0, seed: int = 1
) -> HardClip:
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * fps))
    s = width / 1920
    identities = rng.permutation(len(faces()))
    people: list[Person] = []
    dim = crowd = False
    if name == "street":
        widths = [140, 100, 72, 56, 44, 36, 30, 28]
        for i, w in enumerate(widths):
            speed = float(rng.uniform(2, 15)) * rng.choice([-1, 1])
            people.append(
                Person(
                    int(identities[i]),
                    i % len(TONES),
                    0 if i % 3 else int(rng.integers(0, frames // 3)),
                    frames - 1,
                    float(rng.uniform(100, 1820)) * s,
                    (140 + i * 110) * s,
                    speed * s,
                    float(rng.uniform(-2, 2)) * s,
                    w * s,
                    w * float(rng.uniform(0.8, 1.2)) * s,
                    turned=0.7 if i in (1, 5) else 1.0,
                    occluded=i == 3,
                )
            )
    elif name == "hard":
        dim = True
        widths = [70, 56, 44, 36, 30, 27, 24, 24]
        for i, w in enumerate(widths):
            speed = float(rng.uniform(10, 40))
            people.append(
                Person(
                    int(identities[20 + i]),
                    (i * 5) % len(TONES),
                    0,
                    frames - 1,
                    float(rng.uniform(100, 1820)) * s,
                    (130 + i * 115) * s,
                    speed * rng.choice([-1, 1]) * s,
                    float(rng.uniform(-1, 1)) * s,
                    w * s,
                    w * s,
                    blur=int(round(speed * s)) if i % 2 else 0,  # half as with a short shutter: sharp
                )
            )
    elif name == "crowd":
        crowd = True
        for i in range(14):
            w = float(rng.uniform(24, 60))
            people.append(
                Person(
                    int(identities[40 + i]),
                    i % len(TONES),
                    0,
                    frames - 1,
                    (160 + (i % 7) * 260 + rng.uniform(-40, 40)) * s,
                    (300 + (i // 7) * 380 + rng.uniform(-60, 60)) * s,
                    float(rng.uniform(-4, 4)) * s,
                    float(rng.uniform(-1, 1)) * s,
                    w * s,
                    w * float(rng.uniform(0.9, 1.1)) * s,
                    turned=0.75 if i % 5 == 4 else 1.0,
                )
            )
    else:
        raise ValueError(f"unknown clip {name!r}: street, hard or crowd")
    clip = HardClip(name, path, width, height, fps, frames, people, dim, crowd)
    base = background(width, height, rng)
    noise_rng = np.random.default_rng(seed + 1)
    noises = [noise_rng.normal(0, 5, (height, width, 1)).astype(np.float32) for _ in range(7)] if dim else []
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "16"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for f in range(frames):
            img = base.copy()
            owner = np.full((height, width), -1, np.int16)
            placed = []
            for n, person in enumerate(people):
                box = person.box_at(f, width, height)
                if box is not None:
                    _paste(img, person, box, owner, n)
                    placed.append((n, box))
            if dim:
                dark = img.astype(np.float32) * 0.33 + noises[f % len(noises)]  # fresh noise each frame
                img = np.clip(dark, 0, 255).astype(np.uint8)
            truth = []
            for n, (x, y, w, h) in placed:
                x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
                if x1 - x0 >= 8 and y1 - y0 >= 8 and float(np.mean(owner[y0:y1, x0:x1] == n)) >= 0.8:
                    truth.append((n, (x, y, w, h)))
            clip.truth.append(truth)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = f, Fraction(1, fps)
            for packet in video.encode(vf):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return clip
