"""What the detector looks at on a key frame, and the detections it returns (in source pixels).

The whole frame at `long_side` (640 px by default) finds the faces of 16 px and more at that size: 48 px and more
at 1080p. Smaller faces need more pixels, which the whole frame at full size would cost nine times over. So each
key frame also gets cheaper looks:

- **tiles** of the frame at `hires_side` (1920 px: full size at 1080p, half size in 4K), each the network size
  of the whole-frame look plus an overlap, `per_key` of them per key frame in turn (at 1080p: 12 tiles, two per
  key frame, so each part of the picture is looked at closely every 6 key frames, one second at 30 fps);
- **regions of interest** around the tracks that need a close look (faces under 24 px at `long_side`, and any
  face the last key frame missed): a crop around where the face is predicted to be, at full resolution for a
  small face (half in 4K), so that a small face found once by a tile keeps being found on every key frame.

Detections from all looks are merged (non-maximum suppression) before the tracker sees them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from temoin.rights.redaction import effects
from temoin.rights.redaction.model import NMS_IOU, FaceDetector, Input, network_input, nms

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels
TILE_OVERLAP = 64  # network pixels shared by neighbouring tiles: a face on a border is whole in one of them
ROI_FACES = 5  # a region of interest is this many face widths across
ROI_FACES_NEW = 9  # around a track seen once (its speed unknown)
ROI_MIN = 96  # source pixels, at least
ROI_FACE_PX = 48  # a face is looked at with this many pixels across, or its full size if smaller
SMALL = 24  # a face narrower than this at the whole-frame size is "small": found and followed up close
# With a lift, a look whose mean luma is under DIM_LUMA is lifted by a gamma curve that brings its mean to the
# lift's target before the detector sees it (its input only; the output is never touched).
DIM_LUMA = 90.0


@dataclass(frozen=True)
class Look:
    """One detector run: a source rectangle resized to a network size (multiples of 32)."""

    rect: Rect
    width: int
    height: int


def lift_table(mean: float, to: float) -> np.ndarray | None:
    """The 256-entry luma table that brings a look of this mean luma to `to`, or None if it is bright enough."""
    if mean >= DIM_LUMA or mean >= to:
        return None
    m = max(mean, 8.0) / 255.0
    gamma = math.log(to / 255.0) / math.log(m)
    return np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)


def region_image(planes: list[effects.Plane], rect: Rect, width: int, height: int, lift: float = 0.0) -> np.ndarray:
    """The RGB picture of `rect` at width×height, made from the YUV 4:2:0 planes (cropped and resized before
    the colour conversion, which is the cheaper order); with a `lift` (a mean luma), a dim picture's luma is lifted
    to it first (see DIM_LUMA)."""
    x0, y0, x1, y1 = (v & ~1 for v in rect)
    y = planes[0].pixels[y0:y1, x0:x1]
    u = planes[1].pixels[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
    v = planes[2].pixels[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
    if y.shape != (height, width):
        area = width < y.shape[1] or height < y.shape[0]
        how = cv2.INTER_AREA if area else cv2.INTER_LINEAR
        y = cv2.resize(y, (width, height), interpolation=how)
        u = cv2.resize(u, (width // 2, height // 2), interpolation=how)
        v = cv2.resize(v, (width // 2, height // 2), interpolation=how)
    if lift:
        table = lift_table(float(cv2.mean(y)[0]), lift)
        if table is not None:
            y = cv2.LUT(y, table)  # a copy: the source planes stay as they are
    i420 = np.concatenate(
        [
            np.ascontiguousarray(y),
            np.ascontiguousarray(u).reshape(-1, width),
            np.ascontiguousarray(v).reshape(-1, width),
        ]
    )
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)


class Planner:
    """The looks for each key frame of a width×height video."""

    def __init__(
        self,
        width: int,
        height: int,
        long_side: int,
        hires_side: int,
        tiles: bool,
        roi: bool,
        per_key: int = 1,
        young_px: float = 0.0,
    ) -> None:
        self.per_key = max(1, per_key)
        # How far a face seen once may have moved by the next key frame (source pixels): its region reaches that
        # far on each side, or a fast face seen once is never seen again up close (no second sighting, no speed).
        self.young_px = young_px
        self.width, self.height = width, height
        self.net: Input = network_input(width, height, long_side)
        self.full = Look((0, 0, width, height), self.net.width, self.net.height)
        self.small_px = SMALL * self.net.sx  # source pixels
        self.roi_scale = min(1.0, 1920 / max(width, height))  # 4K: half size, as a 1080p frame
        self.roi = roi and self.roi_scale > 1.2 / self.net.sx  # only where it sees more than the whole frame
        self.tiles: list[Look] = []
        hires = network_input(width, height, hires_side)
        if tiles and hires.width > self.net.width * 1.2:
            nx = max(1, math.ceil(hires.width / self.net.width))
            ny = max(1, math.ceil(hires.height / self.net.height))
            tw = min(hires.width, _mult32(hires.width / nx + (TILE_OVERLAP if nx > 1 else 0)))
            th = min(hires.height, _mult32(hires.height / ny + (TILE_OVERLAP if ny > 1 else 0)))
            for j in range(ny):
                for i in range(nx):
                    nx0 = round(i * (hires.width - tw) / max(1, nx - 1))
                    ny0 = round(j * (hires.height - th) / max(1, ny - 1))
                    rect = (
                        int(nx0 * hires.sx),
                        int(ny0 * hires.sy),
                        min(width, int(round((nx0 + tw) * hires.sx))),
                        min(height, int(round((ny0 + th) * hires.sy))),
                    )
                    self.tiles.append(Look(rect, tw, th))

    @property
    def rounds(self) -> int:
        """Key frames until every tile has been looked at once (1 without tiles)."""
        return max(1, math.ceil(len(self.tiles) / self.per_key))

    def looks(self, key: int, small_tracks: list[tuple[np.ndarray, bool]]) -> list[Look]:
        """The whole frame, this key frame's tile, and a region around each small track (cx, cy, w, h; and
        whether its speed is unknown: then the region is wider)."""
        out = [self.full]
        if self.tiles:
            for j in range(min(self.per_key, len(self.tiles))):
                out.append(self.tiles[(key * self.per_key + j) % len(self.tiles)])
        if self.roi:
            for (cx, cy, w, _h), young in small_tracks:
                side = (
                    max(ROI_MIN, ROI_FACES_NEW * w, ROI_FACES * w + 2 * self.young_px)
                    if young
                    else max(ROI_MIN, ROI_FACES * w)
                )
                x0 = int(max(0, min(self.width - side, cx - side / 2)))
                y0 = int(max(0, min(self.height - side, cy - side / 2)))
                x1, y1 = int(min(self.width, x0 + side)), int(min(self.height, y0 + side))
                scale = min(self.roi_scale, ROI_FACE_PX / max(1.0, w))  # big faces need no more pixels
                nw = max(32, _mult32((x1 - x0) * scale))
                nh = max(32, _mult32((y1 - y0) * scale))
                out.append(Look((x0, y0, x1, y1), nw, nh))
        return out


def _mult32(v: float) -> int:
    return max(32, int(math.ceil(v / 32)) * 32)


def detect(
    detector: FaceDetector, planes: list[effects.Plane], looks: list[Look], threshold: float, lift: float = 0.0
) -> np.ndarray:
    """Every look through the detector; the detections in source pixels, merged: (N, 5) x1, y1, x2, y2, score.
    With a `lift` (a mean luma), a dim look's luma is lifted to it before the detector sees it (see DIM_LUMA)."""
    found = []
    height, width = planes[0].pixels.shape
    for n, look in enumerate(looks):
        x0, y0, x1, y1 = (v & ~1 for v in look.rect)
        dets = detector.detect(region_image(planes, look.rect, look.width, look.height, lift), threshold)
        dets[:, [0, 2]] = dets[:, [0, 2]] * ((x1 - x0) / look.width) + x0
        dets[:, [1, 3]] = dets[:, [1, 3]] * ((y1 - y0) / look.height) + y0
        if n:  # a face cut by the edge of a tile or region (not the frame's): another look has it whole
            margin = 2.0
            cut = (
                ((dets[:, 0] <= x0 + margin) & (x0 > 0))
                | ((dets[:, 1] <= y0 + margin) & (y0 > 0))
                | ((dets[:, 2] >= x1 - margin) & (x1 < (width & ~1)))
                | ((dets[:, 3] >= y1 - margin) & (y1 < (height & ~1)))
            )
            dets = dets[~cut]
        found.append(dets)
    if len(found) == 1:
        return found[0]
    merged = np.concatenate(found)
    return merged[nms(merged, NMS_IOU)] if len(merged) else merged
