"""What is drawn over a face: a pixelation blurred smooth, or a solid mask. Both are irreversible.

Frames are worked on in their own YUV 4:2:0 planes (no conversion to RGB and back, which costs more than the
redaction itself at 1080p). Blur keeps `CELLS` averages across the box's longer side, i.e. about 6×7 values per
plane for a face, then smooths them: the identity is gone with the detail, only a blob of the face's mean colours
is left; nothing in the output carries more than those few numbers about the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np

Box = tuple[int, int, int, int]

CELLS = 6
MODES = ("blur", "mask")
MASK_VALUES = {"y": 16, "u": 128, "v": 128, "rgb": 0}  # black


@dataclass
class Plane:
    name: str  # "y", "u", "v" or "rgb"
    pixels: np.ndarray  # a writable view into the frame's array
    sub: int  # subsampling: 1 for luma, 2 for 4:2:0 chroma


def frame_planes(frame: av.VideoFrame) -> list[Plane]:
    """Writable views on a YUV 4:2:0 frame's own buffers (Y, U, V), without copying."""
    names = ("y", "u", "v")
    return [
        # a VideoPlane is a writable buffer (PEP 688); numpy's hints for frombuffer name the buffer types they
        # take, memoryview among them
        Plane(
            names[i],
            np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width],
            1 if i == 0 else 2,
        )
        for i, p in enumerate(frame.planes[:3])
    ]


def pad_box(box: Box, factor: float, width: int, height: int) -> Box | None:
    """The box grown by `factor` of its size on each side (more at the top and bottom: hair and chin)."""
    x, y, w, h = box
    dx, dy = w * factor, h * factor * 1.15
    x0, y0 = max(0, int(x - dx)), max(0, int(y - dy))
    x1, y1 = min(width, int(np.ceil(x + w + dx))), min(height, int(np.ceil(y + h + dy)))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def apply(planes: list[Plane], box: Box, mode: str) -> None:
    x, y, w, h = box
    for plane in planes:
        s = plane.sub
        x0, y0 = x // s, y // s
        x1, y1 = min(plane.pixels.shape[1], -(-(x + w) // s)), min(plane.pixels.shape[0], -(-(y + h) // s))
        if x1 <= x0 or y1 <= y0:
            continue
        region = plane.pixels[y0:y1, x0:x1]
        if mode == "mask":
            region[...] = MASK_VALUES[plane.name]
        else:
            _smear(region)


def _smear(region: np.ndarray) -> None:
    h, w = region.shape[:2]
    cells = max(1, CELLS)
    scale = cells / max(w, h)
    small = cv2.resize(region, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    smooth = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    k = max(3, (min(w, h) // cells) | 1)  # about a cell: no block edges left
    region[...] = cv2.blur(smooth, (k, k))
