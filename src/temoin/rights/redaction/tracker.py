"""Face tracks between detections.

The detector runs on one frame in `interval` (the key frames). At each key frame the detections are matched to
the live tracks (greedy, best overlap first, against where each track is predicted to be by constant velocity);
an unmatched detection starts a track, and a track not seen for more than `max_missed` key frames ends.

Between two sightings of a track the box is interpolated linearly (the file is processed with a look-ahead, so
both ends are known). A track is also extended beyond its first and last sightings, because the face may have
been there since just after the previous key frame, and may still be there until just before the next one:
`interval` frames backwards and `interval` frames forwards, moving at the track's velocity and growing by
`GROW_PER_FRAME` of its size each frame (the further from a sighting, the less sure the position). Extensions
stop at the first and last frame of the clip.

A frame's boxes are final once the key frame `settle` = max_missed × interval + 1 frames later has been
processed: by then no new track can reach back to it, and every track still alive was seen after it (so the
frame lies between two sightings, or before the first).
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in source pixels

GROW_PER_FRAME = 0.03
MATCH_IOU = 0.15
MATCH_DISTANCE = 0.8  # or centres closer than this many face widths
MATCH_DISTANCE_NEW = 2.5  # for a track seen only once (no velocity to predict with yet)
CONFIRM_KEYS = 3  # key frames in a row a tentative track must be seen on to be drawn


@dataclass
class FaceTrack:
    """One face through the clip: its box (x, y, w, h in source pixels) on every frame it is redacted on.

    `detected` lists the frames the detector saw it on; the other frames are interpolated or extended."""

    id: int
    boxes: dict[int, Box] = field(default_factory=dict)
    detected: tuple[int, ...] = ()
    score: float = 0.0  # best detector confidence
    # Stretches a person should look at (first frame, last frame, why), in frame order: "gap" (the box was
    # interpolated over missed detections), "reach" (the face was not seen there: the track was extended
    # beyond its first or last sighting by more than one detection interval), "low" (the detector was unsure).
    review: tuple[tuple[int, int, str], ...] = ()

    @property
    def first_frame(self) -> int:
        return min(self.boxes, default=0)

    @property
    def last_frame(self) -> int:
        return max(self.boxes, default=0)


@dataclass
class _Live:
    id: int
    frames: list[int] = field(default_factory=list)  # key frames it was seen on, increasing
    boxes: list[np.ndarray] = field(default_factory=list)  # cx, cy, w, h at those frames
    score: float = 0.0
    scores: list[float] = field(default_factory=list)  # at each sighting
    missed: int = 0
    ended: bool = False
    begin: int = 0  # first frame covered (after backwards extension)
    end: int = 0  # last frame covered (after forwards extension), once known
    confirmed: bool = True  # False: started by a weak detection, not drawn until seen again (see Tracker)

    def velocity(self, at_start: bool = False) -> np.ndarray:
        if len(self.frames) < 2:
            return np.zeros(4)
        i, j = (0, 1) if at_start else (-2, -1)
        dv = (self.boxes[j] - self.boxes[i]) / (self.frames[j] - self.frames[i])
        dv[2:] = 0  # sizes are held, not extrapolated
        return dv

    def predict(self, frame: int) -> np.ndarray:
        return self.boxes[-1] + self.velocity() * (frame - self.frames[-1])

    def at(self, frame: int) -> np.ndarray | None:
        """cx, cy, w, h on `frame`, or None if the track does not cover it."""
        if frame < self.begin or (self.ended and frame > self.end):
            return None
        first, last = self.frames[0], self.frames[-1]
        if frame < first:
            box = self.boxes[0] + self.velocity(at_start=True) * (frame - first)
            return _grown(box, first - frame)
        if frame > last:
            if not self.ended:
                return None  # not final yet
            return _grown(self.predict(frame), frame - last)
        k = bisect.bisect_left(self.frames, frame)
        if self.frames[k] == frame:
            return self.boxes[k]
        f0, f1 = self.frames[k - 1], self.frames[k]
        t = (frame - f0) / (f1 - f0)
        return _grown(self.boxes[k - 1] * (1 - t) + self.boxes[k] * t, min(frame - f0, f1 - frame) / 2)


def _grown(box: np.ndarray, frames: float) -> np.ndarray:
    out = box.copy()
    out[2:] *= 1 + GROW_PER_FRAME * frames
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw, ih = max(0.0, min(ax1, bx1) - max(ax0, bx0)), max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def to_xywh(box: np.ndarray, width: int, height: int) -> Box | None:
    """cx, cy, w, h (float) to an integer x, y, w, h clipped to the frame; None when nothing is left."""
    x0 = max(0, int(np.floor(box[0] - box[2] / 2)))
    y0 = max(0, int(np.floor(box[1] - box[3] / 2)))
    x1 = min(width, int(np.ceil(box[0] + box[2] / 2)))
    y1 = min(height, int(np.ceil(box[1] + box[3] / 2)))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


class Tracker:
    def __init__(
        self,
        interval: int,
        max_missed: int = 2,
        *,
        small_px: float = 0.0,
        small_reach: int = 0,
        speed_px: float = 0.0,
        start_score: float = 0.0,
        confirm_keys: int = CONFIRM_KEYS,
    ) -> None:
        self.interval = max(1, interval)
        # A detection less sure than this may continue a live track but never starts one: near a face already
        # followed, a weak response is most likely that face (dim, blurred, turned), elsewhere a false alarm.
        self.start_score = start_score
        self.max_missed = max_missed
        self.extend = self.interval  # frames covered before the first and after the last sighting
        # A small face (narrower than small_px) is seen up close only now and then (one tile in turn): it may
        # have been there, unseen, for up to small_reach frames before its first sighting and after its last.
        self.small_px = small_px
        self.speed_px = speed_px  # the fastest a face seen once is assumed to move, pixels per frame
        self.small_reach = max(self.interval, small_reach)
        # A weak detection of a small face away from any track starts a tentative track: followed up close like
        # the others, drawn only once seen on CONFIRM_KEYS key frames in a row (or once with a sure score).
        # The detector scores a small dark face at full size between 0.1 and 0.8 from one frame to the next
        # (and under 0.1 at the whole-frame size); seeding only from sure scores left it visible until a tile
        # happened to catch it on a good frame. Confirmed late, such a track still reaches back its full reach.
        # 0: a weak detection never starts a track.
        self.confirm_keys = confirm_keys
        late = max(0, confirm_keys - 1) * self.interval
        self.settle = max(max_missed * self.interval, self.small_reach + late) + 1
        self.tracks: list[_Live] = []
        self._next_id = 1
        self.detections = 0
        self.last_key = -1
        self.finished_at: int | None = None

    def update(self, frame: int, dets: np.ndarray) -> None:
        """Detections on key frame `frame` (increasing): an (N, 5) array x1, y1, x2, y2, score, source pixels."""
        self.last_key = frame
        self.detections += len(dets)
        boxes = [np.array([(d[0] + d[2]) / 2, (d[1] + d[3]) / 2, d[2] - d[0], d[3] - d[1]]) for d in dets]
        live = [t for t in self.tracks if not t.ended]
        pairs = []
        for ti, track in enumerate(live):
            guess = track.predict(frame)
            for di, box in enumerate(boxes):
                iou = _iou(guess, box)
                dist = np.hypot(guess[0] - box[0], guess[1] - box[1]) / max(guess[2], box[2], 1.0)
                # A track seen once has no speed yet: a fast face is further from where it was (and a small
                # one many of its own widths away).
                reach = MATCH_DISTANCE
                if len(track.frames) == 1 and self.speed_px:
                    gap = frame - track.frames[-1]
                    reach = max(MATCH_DISTANCE_NEW, self.speed_px * gap / max(guess[2], box[2], 1.0))
                if dets[di][4] < self.start_score and iou < MATCH_IOU:
                    continue  # a weak detection must overlap where the track is expected, not just be near it
                if iou >= MATCH_IOU or dist <= reach:
                    pairs.append((iou - dist, ti, di))
        pairs.sort(key=lambda p: -p[0])
        used_t: set[int] = set()
        used_d: set[int] = set()
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            track = live[ti]
            track.frames.append(frame)
            track.boxes.append(boxes[di])
            track.score = max(track.score, float(dets[di][4]))
            track.scores.append(float(dets[di][4]))
            track.missed = 0
            if not track.confirmed and (dets[di][4] >= self.start_score or len(track.frames) >= self.confirm_keys):
                self._confirm(track)
        for ti, track in enumerate(live):
            if ti not in used_t:
                track.missed += 1
                if not track.confirmed:
                    track.ended = True  # a tentative track must be seen on every key frame: dropped
                    self.tracks.remove(track)
                elif track.missed > self.max_missed:
                    self._end(track)
        for di, box in enumerate(boxes):
            if di in used_d:
                continue
            score = float(dets[di][4])
            sure = score >= self.start_score
            if sure or (self.confirm_keys and box[2] < self.small_px):
                track = _Live(self._next_id if sure else 0, [frame], [box], score, [score], confirmed=sure)
                track.begin = max(0, frame - self._reach(box))
                if sure:
                    self._next_id += 1
                self.tracks.append(track)

    def _confirm(self, track: _Live) -> None:
        track.confirmed = True
        track.id = self._next_id  # ids in order of confirmation: the same file gives the same ids
        self._next_id += 1

    @property
    def created(self) -> int:
        return self._next_id - 1

    def _reach(self, box: np.ndarray) -> int:
        return self.small_reach if box[2] < self.small_px else self.extend

    def to_follow(self, frame: int) -> list[tuple[np.ndarray, bool]]:
        """Where the live tracks that need a close look are predicted on `frame` (cx, cy, w, h), smallest
        first (tentative ones last), each with whether its speed is still unknown (seen once: it may be further
        from where it was). A close look: small faces, and any face the last key frame missed."""
        follow = [t for t in self.tracks if not t.ended and (t.boxes[-1][2] < self.small_px or t.missed > 0)]
        # Faces drawn first (a tentative track may be a false alarm), then the smallest.
        follow.sort(key=lambda t: (not t.confirmed, float(t.boxes[-1][2])))
        return [(t.predict(frame), len(t.frames) < 2) for t in follow]

    def _end(self, track: _Live) -> None:
        track.ended = True
        track.end = track.frames[-1] + self._reach(track.boxes[-1])
        if self.finished_at is not None:
            track.end = min(track.end, self.finished_at)

    def finish(self, last_frame: int) -> None:
        """The clip ended on `last_frame`: every track ends, extensions stop there."""
        self.finished_at = last_frame
        for track in self.tracks:
            if not track.ended:
                self._end(track)
            track.end = min(track.end, last_frame)

    def final_through(self) -> int:
        """The last frame whose boxes can no longer change."""
        if self.finished_at is not None:
            return self.finished_at
        return self.last_key - self.settle

    def boxes_at(self, frame: int, width: int, height: int) -> list[tuple[int, Box]]:
        """(track id, box) for every track covering `frame` (which must be final)."""
        out = []
        for track in self.tracks:
            if not track.confirmed:
                continue
            box = track.at(frame)
            if box is not None:
                xywh = to_xywh(box, width, height)
                if xywh is not None:
                    out.append((track.id, xywh))
        return out

    def prune(self, before: int) -> list[_Live]:
        """Drop (and return) the tracks that end before `before`: they can no longer cover a frame to come."""
        gone = [t for t in self.tracks if t.ended and t.end < before]
        if gone:
            self.tracks = [t for t in self.tracks if not (t.ended and t.end < before)]
        return gone


def face_track(track: _Live, width: int, height: int, interval: int = 0) -> FaceTrack:
    """The finished track as the API gives it: a box on every frame it covers."""
    boxes: dict[int, Box] = {}
    for frame in range(track.begin, track.end + 1):
        box = track.at(frame)
        if box is not None:
            xywh = to_xywh(box, width, height)
            if xywh is not None:
                boxes[frame] = xywh
    review = tuple(
        (max(a, min(boxes)), min(b, max(boxes)), why)
        for a, b, why in _review(track, interval)
        if boxes and max(a, min(boxes)) <= min(b, max(boxes))
    )
    return FaceTrack(track.id, boxes, tuple(track.frames), round(track.score, 3), review)


LOW_SCORE = 0.35  # a sighting below this confidence is worth a look (the detector keeps anything over 0.2)


def _review(track: _Live, interval: int) -> tuple[tuple[int, int, str], ...]:
    """The stretches of a finished track where the machine was unsure (see FaceTrack.review)."""
    out: list[tuple[int, int, str]] = []
    if interval and track.frames[0] - track.begin > interval:
        out.append((track.begin, track.frames[0] - 1, "reach"))
    for k, (f0, f1) in enumerate(itertools.pairwise(track.frames)):
        if interval and f1 - f0 > interval:
            out.append((f0 + 1, f1 - 1, "gap"))
        if track.scores[k] < LOW_SCORE:
            out.append((max(track.begin, f0 - interval // 2), min(track.end, f0 + interval // 2), "low"))
    if track.scores and track.scores[-1] < LOW_SCORE:
        f = track.frames[-1]
        out.append((max(track.begin, f - interval // 2), min(track.end, f + interval // 2), "low"))
    if interval and track.end - track.frames[-1] > interval:
        out.append((track.frames[-1] + 1, track.end, "reach"))
    return tuple(_merged(sorted(out)))


def _merged(stretches: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping or touching stretches of the same kind become one."""
    out: list[tuple[int, int, str]] = []
    for a, b, why in stretches:
        same = [i for i, (_, b0, w0) in enumerate(out) if w0 == why and a <= b0 + 1]
        if same:
            i = same[-1]
            out[i] = (out[i][0], max(out[i][1], b), why)
        else:
            out.append((a, b, why))
    return sorted(out)
