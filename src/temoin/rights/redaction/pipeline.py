"""Decode, detect, track, redact, encode: a video file in, a redacted MP4 out (the source is only read).

One pass over the file. Frames are decoded (PyAV, frame threads) and copied into reusable YUV 4:2:0 frames
held in a short look-ahead buffer; one frame in `interval` goes to the detector on a worker thread (downscaled
so its longer side is `long_side`); the tracker turns detections into tracks; a frame leaves the buffer once
its boxes are final and goes to the writer thread, which blurs or masks them and feeds libx264. The sound is
altered (voice.py) or copied as it is, and muxed with the video into MP4.

Frame numbers are the order in which frames are decoded, from 0: the same file always gives the same frames,
detections and track ids, so the tracks found by `detect_tracks` are the ones `redact_file` finds again (or
pass them with `tracks=`).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np

from temoin.rights.redaction import detect, effects
from temoin.rights.redaction.model import DEFAULT_THRESHOLD, Input, shared_detector
from temoin.rights.redaction.source import RedactionError, Source, open_source
from temoin.rights.redaction.tracker import CONFIRM_KEYS, Box, FaceTrack, Tracker, face_track
from temoin.rights.redaction.voice import VoiceChanger, estimate_pitch

Progress = Callable[[int, int], None]
YUV = ("yuv420p", "yuvj420p")
COPYABLE_AUDIO = {"aac", "mp3", "opus", "alac", "ac3", "eac3", "flac"}  # what MP4 carries as it is
# A face seen once may have moved this much of the picture's width per frame: someone running across a 1080p
# picture, or walking past a camera that turns, moves 30-40 px per frame (20 lost the faces of the benchmark's
# `hard` clip, each sighting starting a track of its own that covered one frame).
FAST_FACE = 40 / 1920
PITCH_SAMPLE_S = 30  # seconds of sound listened to before choosing the new voice


@dataclass(frozen=True)
class ManualRegion:
    """A box drawn by a person, in source pixels, over frames start_frame..end_frame (inclusive)."""

    start_frame: int
    end_frame: int
    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.start_frame < 0 or self.end_frame < self.start_frame:
            raise ValueError(
                f"a region's frames must satisfy 0 <= start_frame <= end_frame "
                f"(got {self.start_frame}..{self.end_frame})"
            )
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"a region needs a positive width and height (got {self.w}×{self.h})")

    def covers(self, frame: int) -> bool:
        return self.start_frame <= frame <= self.end_frame

    def contains(self, x: float, y: float) -> bool:
        return self.x <= x < self.x + self.w and self.y <= y < self.y + self.h

    @property
    def box(self) -> Box:
        return self.x, self.y, self.w, self.h


@dataclass
class RedactionReport:
    frames: int
    faces_detected: int  # detections, summed over the frames the detector ran on
    tracks: int
    seconds: float
    fps: float  # frames processed per second (wall clock)
    providers: list[str]  # onnxruntime execution providers; empty when tracks were given
    mode: str = "blur"
    boxes_redacted: int = 0  # boxes drawn over all frames (faces and added regions)
    kept_tracks: list[int] = field(default_factory=list)
    audio: str = "none"  # "altered", "copied", "re-encoded" (unaltered) or "none"
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0
    detection_frames: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent per stage, by reader and writer

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Settings:
    """How the engine trades speed for recall. The defaults are what the tests and benchmark measure."""

    interval: int | None = None  # frames between detections; None: about 6 detections per second
    long_side: int = 640  # the detector sees whole frames downscaled to this longer side (never upscaled)
    hires_side: int = 1920  # and tiles of the frame at this size (small faces; never upscaled); see detect.py
    tiles: bool = True
    tiles_per_key: int = 2  # tiles looked at on each key frame (the others in turn on the next ones)
    roi: bool = True  # a close look around each small track on every key frame
    threshold: float = DEFAULT_THRESHOLD
    track_threshold: float = 0.1  # a detection this sure may continue a live track; only `threshold` starts one
    lift: float = 0.0  # lift a dim look's mean luma to this before detection (detector input only; 0: off)
    pad: float = 0.15  # each redacted box grows by this fraction of its size on every side
    max_missed: int = 2  # detections a track may miss before it ends
    # A weak detection of a small face starts a track drawn once seen again (tracker.py). Off: in the benchmark
    # of 06:09 UTC it recovered dark small faces but lost one face of each `crowd` clip entirely (to be found).
    tentative: bool = False
    fast_face: float = FAST_FACE  # how fast a face seen once may move (share of the picture's width per frame)
    fast_roi: bool = True  # the close look around a face seen once reaches as far as it may have moved
    preset: str = "superfast"  # libx264
    crf: int = 21

    def interval_for(self, fps: float) -> int:
        return max(1, self.interval if self.interval else round((fps or 30) / 6))


DEFAULT = Settings()


# --- input ------------------------------------------------------------------------------------------


def _yuv(frame: av.VideoFrame) -> av.VideoFrame:
    return frame if frame.format.name in YUV else frame.reformat(format="yuv420p")


class _FramePool:
    """Output frames, reused: a fresh 1080p frame costs ~2.5 ms in page faults, a copy into an old one 0.15 ms.
    A frame goes back to the pool once encoded (libx264 copies the picture during `encode`)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.free: dict[str, list[tuple[av.VideoFrame, list[effects.Plane]]]] = {}
        self.lock = threading.Lock()  # taken by the reader, given back by the writer

    def copy_of(self, decoded: av.VideoFrame) -> tuple[av.VideoFrame, list[effects.Plane]]:
        fmt = decoded.format.name
        with self.lock:
            free = self.free.setdefault(fmt, [])
            reused = free.pop() if free else None
        if reused:
            frame, planes = reused
        else:
            frame = av.VideoFrame(self.width, self.height, fmt)
            planes = effects.frame_planes(frame)
        for dst, src in zip(planes, effects.frame_planes(decoded), strict=True):
            np.copyto(dst.pixels, src.pixels)
        frame.pts, frame.time_base = decoded.pts, decoded.time_base
        return frame, planes

    def give_back(self, frame: av.VideoFrame, planes: list[effects.Plane]) -> None:
        with self.lock:
            self.free.setdefault(frame.format.name, []).append((frame, planes))


def _network_image(planes: list[effects.Plane], net: Input) -> np.ndarray:
    """The RGB picture the whole-frame look gives the detector (the benchmark times the detector on it)."""
    h, w = planes[0].pixels.shape
    return detect.region_image(planes, (0, 0, w, h), net.width, net.height)


class _Detection:
    """Key frames go to the detector on a worker thread; results come back in order, into the tracker."""

    MAX_ROI = 12  # regions of interest per key frame, smallest faces first

    def __init__(self, src: Source, settings: Settings) -> None:
        self.detector = shared_detector()
        self.planner = detect.Planner(
            src.width,
            src.height,
            settings.long_side,
            settings.hires_side,
            settings.tiles,
            settings.roi,
            settings.tiles_per_key,
            young_px=settings.fast_face * max(src.width, src.height) * settings.interval_for(src.fps)
            if settings.fast_roi
            else 0.0,
        )
        self.net = self.planner.net
        self.width, self.height = src.width, src.height
        # The detector keeps the weaker responses too; the tracker lets them only continue a live track.
        self.threshold = min(settings.threshold, settings.track_threshold)
        self.lift = settings.lift
        self.interval = settings.interval_for(src.fps)
        # A small face first seen on a tile may have been there since that tile was last looked at.
        reach = self.interval * self.planner.rounds
        self.tracker = Tracker(
            self.interval,
            settings.max_missed,
            small_px=self.planner.small_px,
            small_reach=reach,
            speed_px=settings.fast_face * max(src.width, src.height) if self.planner.roi else 0.0,
            start_score=settings.threshold,
            confirm_keys=CONFIRM_KEYS if settings.tentative else 0,
        )
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="temoin-face-detector")
        self.pending: deque[tuple[int, Future]] = deque()
        self.last_submitted = -1
        self.frames = 0
        self.looks = 0

    def submit(self, index: int, planes: list[effects.Plane]) -> None:
        small = self.tracker.to_follow(index) if self.planner.roi else []
        looks = self.planner.looks(self.frames, small[: self.MAX_ROI])
        self.pending.append(
            (index, self.pool.submit(detect.detect, self.detector, planes, looks, self.threshold, self.lift))
        )
        self.last_submitted = index
        self.frames += 1
        self.looks += len(looks)

    def offer(self, index: int, planes: list[effects.Plane]) -> None:
        """A decoded frame; its planes must stay unchanged until the tracker has its detections."""
        if index % self.interval == 0:
            if self.planner.roi:  # the regions of interest follow the tracks as of the previous key frame
                while self.pending:
                    self._take()
            self.submit(index, planes)
        # At most two detections in flight: the look-ahead buffer stays short.
        while self.pending and (self.pending[0][1].done() or len(self.pending) > 2):
            self._take()

    def _take(self) -> None:
        index, future = self.pending.popleft()
        self.tracker.update(index, future.result())

    def finish(self, last: int, last_planes: list[effects.Plane] | None) -> None:
        if last >= 0 and last != self.last_submitted and last_planes is not None:
            self.submit(last, last_planes)  # faces that appear after the last key frame
        while self.pending:
            self._take()
        self.tracker.finish(last)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _decoded(src: Source, name: str) -> Iterator[av.VideoFrame]:
    """The video frames in decoding order; refuses a file that ends before the frames its header announces."""
    index = packets = 0
    try:
        for packet in src.container.demux(src.video):
            packets += 1 if packet.size else 0
            for frame in packet.decode():
                yield frame
                index += 1
    except av.error.FFmpegError as exc:
        raise _undecodable(src, name, index, exc) from exc
    src.check_complete(name, packets)


def _undecodable(src: Source, name: str, index: int, exc: Exception) -> RedactionError:
    announced = f" of the {src.total} announced" if src.total else ""
    return RedactionError(
        f"{name}: the video could not be decoded after frame {index}{announced} ({exc}); the file is damaged or "
        "truncated. Nothing was redacted: export the recording again from the vault or the camera"
    )


# --- detect_tracks ------------------------------------------------------------------------------------


def detect_tracks(src: Path, *, progress: Progress | None = None, settings: Settings = DEFAULT) -> list[FaceTrack]:
    """The faces in a recording, as tracks (ids from 1, in order of appearance), for a person to review."""
    source = open_source(src)
    try:
        detection = _Detection(source, settings)
    except BaseException:  # e.g. the model is not installed
        source.container.close()
        raise
    last, last_planes = -1, None
    try:
        for index, frame in enumerate(_decoded(source, Path(src).name)):
            # Views on the decoder's own frame: it stays alive (and unchanged) while the detector holds it.
            planes = effects.frame_planes(_yuv(frame))
            detection.offer(index, planes)
            last, last_planes = index, planes
            if progress:
                progress(index + 1, max(source.total, index + 1))
        detection.finish(last, last_planes)
    finally:
        detection.close()
        source.container.close()
    if progress:
        progress(last + 1, last + 1)
    interval = detection.interval
    drawn = sorted((t for t in detection.tracker.tracks if t.confirmed), key=lambda t: t.id)
    return [face_track(t, source.width, source.height, interval) for t in drawn]


# --- redact_file --------------------------------------------------------------------------------------


class _Boxes:
    """Which boxes to draw on a frame: tracks (found now or given), minus kept tracks and removed
    detections, plus regions added by hand."""

    def __init__(
        self,
        width: int,
        height: int,
        settings: Settings,
        keep: Collection[int],
        add: Sequence[ManualRegion],
        remove: Sequence[ManualRegion],
        given: Sequence[FaceTrack] | None,
    ) -> None:
        self.width, self.height, self.pad = width, height, settings.pad
        self.keep = {int(k) for k in keep}
        self.add, self.remove = list(add), list(remove)
        self.by_frame: dict[int, list[tuple[int, Box]]] | None = None
        if given is not None:
            self.by_frame = {}
            for track in given:
                for frame, box in track.boxes.items():
                    self.by_frame.setdefault(int(frame), []).append((int(track.id), cast(Box, tuple(box))))

    def for_frame(self, index: int, tracker: Tracker | None) -> list[Box]:
        found = (
            self.by_frame.get(index, [])
            if self.by_frame is not None
            else tracker.boxes_at(index, self.width, self.height)
            if tracker
            else []
        )
        out = []
        for track_id, (x, y, w, h) in found:
            if track_id in self.keep:
                continue
            cx, cy = x + w / 2, y + h / 2
            if any(r.covers(index) and r.contains(cx, cy) for r in self.remove):
                continue
            padded = effects.pad_box((x, y, w, h), self.pad, self.width, self.height)
            if padded:
                out.append(padded)
        for region in self.add:
            if region.covers(index):
                x0, y0 = max(0, region.x), max(0, region.y)
                x1, y1 = min(self.width, region.x + region.w), min(self.height, region.y + region.h)
                if x1 > x0 and y1 > y0:
                    out.append((x0, y0, x1 - x0, y1 - y0))
        return out


VOICE_RATE = 16_000  # the vocoder works at 16 kHz (speech lies below 8 kHz); the encoder resamples back


class _Audio:
    """The sound of the copy: altered through the vocoder, copied as it is, or (a codec MP4 cannot carry)
    re-encoded unaltered."""

    def __init__(self, src: Path, source: Source, out: av.container.OutputContainer, alter: bool) -> None:
        self.stream_in = source.audio
        self.mode = "none"
        self.changer: VoiceChanger | None = None
        self.stream_out = None
        if self.stream_in is None:
            return
        ctx = self.stream_in.codec_context
        if not alter and ctx.name in COPYABLE_AUDIO:
            self.stream_out = out.add_stream_from_template(self.stream_in)
            self.mode = "copied"
            return
        from temoin.camera.media import pick_audio_codec

        rate = ctx.sample_rate or 48_000
        layout = ctx.layout.name if ctx.layout and ctx.layout.nb_channels else "mono"
        self.stream_out = out.add_stream(pick_audio_codec(), rate=rate, layout=layout)
        self.stream_out.bit_rate = 64_000 * min(2, ctx.layout.nb_channels or 1)
        if alter:
            self.resampler = av.AudioResampler(format="fltp", layout="mono", rate=VOICE_RATE)
            self.changer = VoiceChanger(VOICE_RATE, _speaker_pitch(src))
            self.pts: int | None = None
            self.mode = "altered"
        else:
            self.mode = "re-encoded"

    def packet(self, packet: av.Packet, out: av.container.OutputContainer) -> None:
        if self.stream_out is None:
            return
        if self.mode == "copied":
            if packet.size:  # the demuxer ends with an empty packet per stream
                packet.stream = self.stream_out
                out.mux(packet)
            return
        for frame in packet.decode():  # the empty last packet flushes the decoder
            assert isinstance(frame, av.AudioFrame)  # an audio stream's packets decode to audio
            if self.changer is None:
                self._mux(frame, out)
                continue
            if self.pts is None:
                start = frame.pts or 0
                self.pts = int(round(start * frame.time_base * VOICE_RATE)) if frame.time_base else 0
            for mono in self.resampler.resample(frame):
                self._emit(self.changer.process(mono.to_ndarray()[0]), out)

    def _emit(self, samples: np.ndarray, out: av.container.OutputContainer) -> None:
        if not len(samples):
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[None, :], np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate, frame.time_base, frame.pts = VOICE_RATE, Fraction(1, VOICE_RATE), self.pts
        self.pts = (self.pts or 0) + len(samples)
        self._mux(frame, out)

    def _mux(self, frame: av.AudioFrame | None, out: av.container.OutputContainer) -> None:
        assert self.stream_out is not None  # callers return early when the audio is dropped
        for packet in self.stream_out.encode(frame):
            out.mux(packet)

    def finish(self, out: av.container.OutputContainer) -> None:
        if self.stream_out is None or self.mode == "copied":
            return
        if self.changer is not None:
            if self.pts is None:
                self.pts = 0
            for mono in self.resampler.resample(None):
                self._emit(self.changer.process(mono.to_ndarray()[0]), out)
            self._emit(self.changer.flush(), out)
        self._mux(None, out)


def _speaker_pitch(src: Path) -> float | None:
    """The median pitch of the first PITCH_SAMPLE_S seconds of sound (a separate, audio-only read)."""
    chunks: list[np.ndarray] = []
    got = 0
    try:
        with av.open(str(src)) as container:
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=VOICE_RATE)
            for frame in container.decode(audio=0):
                for mono in resampler.resample(frame):
                    chunks.append(mono.to_ndarray()[0])
                    got += mono.samples
                if got >= PITCH_SAMPLE_S * VOICE_RATE:
                    break
    except av.error.FFmpegError:
        return None
    return estimate_pitch(np.concatenate(chunks), VOICE_RATE) if chunks else None


class _Writer:
    """The output side, on its own thread: boxes drawn, libx264, the sound, the muxer (which is not
    thread-safe, so everything that muxes lives here). The reading side feeds it through a short queue."""

    QUEUE = 6

    def __init__(
        self, out: av.container.OutputContainer, video: av.VideoStream, audio: _Audio, pool: _FramePool, mode: str
    ) -> None:
        self.out, self.video, self.audio, self.pool, self.mode = out, video, audio, pool, mode
        self.queue: queue.Queue = queue.Queue(self.QUEUE)
        self.error: BaseException | None = None
        self.frames = 0
        self.drawn = 0
        self.timings = {"redact": 0.0, "encode": 0.0, "audio": 0.0}
        self.thread = threading.Thread(target=self._run, name="temoin-redaction-writer", daemon=True)
        self.thread.start()

    def put(self, item: tuple) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item[0] == "abort":
                    return
                if item[0] == "end":
                    break
                if item[0] == "audio":
                    t0 = time.perf_counter()
                    self.audio.packet(item[1], self.out)
                    self.timings["audio"] += time.perf_counter() - t0
                    continue
                _, frame, planes, boxes = item
                t0 = time.perf_counter()
                for box in boxes:
                    effects.apply(planes, box, self.mode)
                self.drawn += len(boxes)
                t1 = time.perf_counter()
                for packet in self.video.encode(frame):
                    self.out.mux(packet)
                self.pool.give_back(frame, planes)
                self.frames += 1
                self.timings["redact"] += t1 - t0
                self.timings["encode"] += time.perf_counter() - t1
            for packet in self.video.encode(None):
                self.out.mux(packet)
            t0 = time.perf_counter()
            self.audio.finish(self.out)
            self.timings["audio"] += time.perf_counter() - t0
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side, which raises it
            self.error = exc

    def close(self) -> None:
        """Wait for everything queued to be written; raise what went wrong on the writer's side."""
        self.put(("end",))
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop without writing the rest (the reading side failed); returns once the thread is gone, so the
        container can be closed safely."""
        while self.thread.is_alive():
            try:
                while True:
                    self.queue.get_nowait()
            except queue.Empty:
                pass
            try:
                self.queue.put(("abort",), timeout=0.5)
            except queue.Full:
                continue
            self.thread.join(timeout=0.5)


def _feed(
    src: Path,
    source: Source,
    pool: _FramePool,
    writer: _Writer,
    detection: _Detection | None,
    boxes: _Boxes,
    progress: Progress | None,
    timings: dict[str, float],
) -> int:
    """The reading side: decode, detect, hold frames until their boxes are final, queue them for the writer.
    Returns the index of the last frame (-1 when none)."""
    tracker = detection.tracker if detection else None
    buffer: deque[tuple[int, av.VideoFrame, list[effects.Plane]]] = deque()
    reported = 0

    def release(final: int) -> None:
        nonlocal reported
        while buffer and buffer[0][0] <= final:
            i, frame, planes = buffer.popleft()
            writer.put(("video", frame, planes, boxes.for_frame(i, tracker)))
        if tracker:
            tracker.prune(final + 1)
        if progress and writer.frames != reported:
            reported = writer.frames
            progress(reported, max(source.total, reported))

    index = -1
    packets = 0  # video packets with data: the frames the file holds, against the frames announced
    last_planes = None
    streams = [s for s in (source.video, source.audio) if s is not None]
    t0 = time.perf_counter()
    try:
        for packet in source.container.demux(streams):
            if packet.stream.type == "audio":
                writer.put(("audio", packet))
                continue
            packets += 1 if packet.size else 0
            for decoded in packet.decode():
                assert isinstance(decoded, av.VideoFrame)  # only the video stream's packets get here
                index += 1
                frame, planes = pool.copy_of(_yuv(decoded))
                timings["decode"] += time.perf_counter() - t0
                buffer.append((index, frame, planes))
                if detection:
                    tw = time.perf_counter()
                    detection.offer(index, planes)
                    timings["wait"] += time.perf_counter() - tw
                    last_planes = planes
                    release(detection.tracker.final_through())
                else:
                    release(index)
                t0 = time.perf_counter()
    except av.error.FFmpegError as exc:
        raise _undecodable(source, src.name, index + 1, exc) from exc
    # Before the last frames are released: a file cut short gives no copy at all (the .part is removed).
    source.check_complete(src.name, packets)
    if detection:
        tw = time.perf_counter()
        detection.finish(index, last_planes)
        timings["wait"] += time.perf_counter() - tw
    release(index)
    return index


def redact_file(
    src: Path,
    dst: Path,
    *,
    mode: str = "blur",
    keep_tracks: Collection[int] = (),
    add_regions: Sequence[ManualRegion] = (),
    remove_regions: Sequence[ManualRegion] = (),
    voice: bool = True,
    progress: Progress | None = None,
    tracks: Sequence[FaceTrack] | None = None,
    settings: Settings = DEFAULT,
) -> RedactionReport:
    """Write to `dst` an MP4 (H.264 + AAC) of `src` with its faces blurred (or masked) and its voices altered.

    keep_tracks: ids of tracks (from `detect_tracks`) left clear, e.g. the person asking for their images.
    add_regions: boxes always redacted; remove_regions: a tracked box whose centre falls in one is left clear
    (a false detection). tracks: the tracks to use instead of detecting again (as reviewed by a person).
    `progress(done, total)` is called from the calling thread as frames are written.
    """
    if mode not in effects.MODES:
        raise ValueError(f"unknown redaction mode {mode!r}: use one of {', '.join(effects.MODES)}")
    src, dst = Path(src), Path(dst)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise RedactionError("the redacted copy cannot be written over its source: give another output path")
    started = time.perf_counter()
    source = open_source(src)
    try:
        detection = None if tracks is not None else _Detection(source, settings)
    except BaseException:  # e.g. the model is not installed
        source.container.close()
        raise
    tracker = detection.tracker if detection else None
    boxes = _Boxes(source.width, source.height, settings, keep_tracks, add_regions, remove_regions, tracks)
    partial = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    timings = {"decode": 0.0, "wait": 0.0}
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(partial), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            video = out.add_stream(
                "libx264",
                rate=Fraction(source.fps).limit_denominator(1001),
                options={"preset": settings.preset, "crf": str(settings.crf)},
            )
            video.width, video.height, video.pix_fmt = source.width, source.height, "yuv420p"
            video.time_base = source.video.time_base
            pool = _FramePool(source.width, source.height)
            writer = _Writer(out, video, _Audio(src, source, out, voice), pool, mode)
            try:
                last = _feed(src, source, pool, writer, detection, boxes, progress, timings)
                writer.close()
            except BaseException:
                writer.abort()  # before the container closes under it
                raise
        if last < 0:
            raise RedactionError(f"{src.name} has a video track but no frame could be decoded from it")
        partial.replace(dst)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        if detection:
            detection.close()
        source.container.close()
    seconds = time.perf_counter() - started
    frames = last + 1
    if progress:
        progress(frames, frames)
    return RedactionReport(
        frames=frames,
        faces_detected=tracker.detections if tracker else 0,
        tracks=tracker.created if tracker else len(tracks or []),
        seconds=round(seconds, 3),
        fps=round(frames / seconds, 2) if seconds else 0.0,
        providers=list(detection.detector.providers) if detection else [],
        mode=mode,
        boxes_redacted=writer.drawn,
        kept_tracks=sorted(boxes.keep),
        audio=writer.audio.mode,
        width=source.width,
        height=source.height,
        frame_rate=round(source.fps, 3),
        detection_frames=detection.frames if detection else 0,
        timings={k: round(v, 3) for k, v in {**timings, **writer.timings}.items()},
    )
