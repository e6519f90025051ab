"""The input side of the engine: opening a recording, and refusing one that is cut short.

A truncated file must never give a half-redacted copy. How a cut shows depends on the MP4 layout:

- index at the front (`+faststart`): the header announces every frame, the demuxer stops at the cut without
  an error, so the frames found are compared with the frames announced;
- index at the end (the camera's usual layout): the cut takes the index with it, no frame can be located;
- fragmented: each fragment header (`moof`) announces its frames; a cut in a fragment leaves a box that
  declares more bytes than the file holds, and the movie header's duration (`mehd`) announces the rest.

So an MP4 is walked box by box (a few reads, no decoding) before anything else: a top-level box that runs
past the end of the file means the file was cut. After decoding, the frames found are checked against the
frames the header announces (exact for MP4/MOV, from the declared duration for other containers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from temoin import errors

MP4_TOP = {b"ftyp", b"styp", b"moov", b"mdat", b"moof", b"mfra", b"free", b"skip", b"wide", b"sidx", b"uuid", b"meta"}
MAX_INDEX_BOX = 256 << 20  # a moov or moof larger than this is not read whole (it would be a damaged size)


class RedactionError(errors.Conflict, RuntimeError):
    """The file cannot be redacted; the message says why and what to do."""


@dataclass
class Mp4Facts:
    """What the MP4 boxes say, read without decoding."""

    cut: str | None = None  # how the file is cut short, or None when every top-level box is whole
    video_frames: int | None = None  # frames the index and fragment headers announce for the video track
    duration_s: float | None = None  # the movie's declared duration (mvhd, or mehd for a fragmented file)
    has_index: bool = False  # a moov box is present
    fragmented: bool = False  # moof boxes: the frame count is the sum of the fragments present


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, bytes]]:
    """(type, payload) of the boxes in data[start:end]; a box that runs past `end` is cut to it."""
    out = []
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        head = 8
        if size == 1 and pos + 16 <= end:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            head = 16
        elif size == 0:
            size = end - pos
        if size < head:
            break
        out.append((kind, data[pos + head : min(end, pos + size)]))
        pos += size
    return out


def _child(payload: bytes, *path: bytes) -> bytes | None:
    for kind in path:
        found = next((p for k, p in _boxes(payload) if k == kind), None)
        if found is None:
            return None
        payload = found
    return payload


def _u32(payload: bytes | None, offset: int) -> int | None:
    if payload is None or len(payload) < offset + 4:
        return None
    return int(struct.unpack(">I", payload[offset : offset + 4])[0])


def _video_track(moov: bytes) -> tuple[int | None, int | None, float | None]:
    """(track id, sample count, duration in s) of the first video track in a moov payload."""
    for kind, trak in _boxes(moov):
        if kind != b"trak":
            continue
        hdlr = _child(trak, b"mdia", b"hdlr")
        if hdlr is None or hdlr[8:12] != b"vide":
            continue
        tkhd = _child(trak, b"tkhd")
        track_id = _u32(tkhd, 20 if tkhd and tkhd[0] == 1 else 12)
        stbl = _child(trak, b"mdia", b"minf", b"stbl")
        count = None
        if stbl is not None:
            sizes = _child(stbl, b"stsz") or _child(stbl, b"stz2")
            count = _u32(sizes, 8)
        mdhd = _child(trak, b"mdia", b"mdhd")
        duration = None
        if mdhd:
            if mdhd[0] == 1 and len(mdhd) >= 32:
                scale, length = struct.unpack(">IQ", mdhd[20:32])
            elif len(mdhd) >= 20:
                scale, length = struct.unpack(">II", mdhd[12:20])
            else:
                scale, length = 0, 0
            duration = length / scale if scale and length else None
        return track_id, count, duration
    return None, None, None


def _fragment_duration(moov: bytes) -> float | None:
    mvhd, mehd = _child(moov, b"mvhd"), _child(moov, b"mvex", b"mehd")
    if not mvhd or not mehd:
        return None
    scale = _u32(mvhd, 20 if mvhd[0] == 1 else 12)
    if mehd[0] == 1 and len(mehd) >= 12:
        length = struct.unpack(">Q", mehd[4:12])[0]
    else:
        length = _u32(mehd, 4) or 0
    return length / scale if scale and length else None


def mp4_facts(path: Path) -> Mp4Facts | None:
    """The layout facts of an MP4/MOV file, or None when it is not one (another container, or garbage)."""
    facts = Mp4Facts()
    track_id: int | None = None
    fragments = 0
    size = path.stat().st_size
    with path.open("rb") as f:
        pos = 0
        first = True
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            box_size, kind = struct.unpack(">I4s", head[:8])
            header = 8
            if box_size == 1 and len(head) == 16:
                box_size, header = struct.unpack(">Q", head[8:16])[0], 16
            elif box_size == 0:
                box_size = size - pos
            if first and kind not in MP4_TOP:
                return None
            first = False
            if box_size < header:
                facts.cut = f"a damaged box header at byte {pos}"
                break
            if pos + box_size > size:
                facts.cut = (
                    f"its '{kind.decode('latin-1')}' box declares {box_size} bytes from byte {pos}, "
                    f"the file ends {pos + box_size - size} bytes before that"
                )
            if kind in (b"moov", b"moof") and box_size <= MAX_INDEX_BOX:
                f.seek(pos + header)
                payload = f.read(min(box_size, size - pos) - header)
                if kind == b"moov":
                    facts.has_index = True
                    track_id, count, duration = _video_track(payload)
                    facts.video_frames = count or 0
                    facts.duration_s = _fragment_duration(payload) or duration
                else:
                    fragments += 1
                    for child, traf in _boxes(payload):
                        tfhd = _child(traf, b"tfhd") if child == b"traf" else None
                        if tfhd is not None and _u32(tfhd, 4) == track_id:
                            runs = sum(_u32(p, 4) or 0 for k, p in _boxes(traf) if k == b"trun")
                            facts.video_frames = (facts.video_frames or 0) + runs
            if facts.cut:
                break
            pos += box_size
    facts.fragmented = fragments > 0
    if not facts.cut and 0 < size - pos < 8:
        facts.cut = f"it ends {size - pos} bytes into a box header"
    if fragments == 0 and facts.video_frames == 0 and facts.has_index and not facts.cut:
        facts.video_frames = None  # an index without a sample table: nothing announced
    return facts


@dataclass
class Source:
    container: av.container.InputContainer
    video: av.VideoStream
    audio: av.AudioStream | None
    width: int
    height: int
    fps: float
    total: int  # expected frames, for progress (from the header or a duration); 0 when unknown
    announced: int = 0  # frames the header announces (0: it does not say), checked once the file is read
    exact: bool = False  # `announced` is a count of frames (MP4/MOV), not derived from a declared duration

    def check_complete(self, name: str, found: int) -> None:
        """Refuse a file whose frames fall short of what its header announces."""
        if self.exact:
            short = found < self.announced
        else:  # a declared duration: allow for rounding and a variable rate
            short = self.announced > 0 and found < self.announced - max(2, self.announced // 100)
        if short:
            said = "the header announces" if self.exact else "its declared duration implies"
            raise truncated(name, found, self.announced, said)


def truncated(
    name: str, found: int, announced: int | None, said: str = "the header announces", why: str = ""
) -> RedactionError:
    if announced:
        what = f"{found} of the {announced} video frames {said} can be read"
    else:
        what = f"{found} video frames can be read and the header announces no frame count"
    return RedactionError(
        f"{name} is cut short or damaged: {what}{f' ({why})' if why else ''}. Nothing was redacted: "
        "a copy of part of a recording would hide that the rest is missing. Export the recording again from "
        "the vault or the camera and redact the complete file"
    )


def _readable_frames(path: Path) -> int:
    """Video packets that can be read from a damaged file (the frames found), without decoding them."""
    found = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return 0
            for packet in container.demux(container.streams.video[0]):
                if packet.size and not packet.is_corrupt:
                    found += 1
    except (av.error.FFmpegError, OSError, ValueError):
        pass
    return found


def open_source(src: Path) -> Source:
    src = Path(src)
    if not src.is_file():
        raise RedactionError(f"{src} does not exist or is not a file: give the path of a video recording")
    facts = mp4_facts(src)
    if facts is not None and facts.cut:
        why = facts.cut if facts.has_index else f"{facts.cut}; its index (the 'moov' box) is missing"
        raise truncated(src.name, _readable_frames(src), facts.video_frames, why=why)  # even with all frames:
        # the sound, or frames the damaged index no longer lists, may be what is missing
    try:
        container = av.open(str(src))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise RedactionError(
            f"{src.name} is not a video file that can be read ({exc}); "
            "check that it is the recording (MP4, MKV, MOV…) and that it is complete"
        ) from exc
    if not container.streams.video:
        container.close()
        raise RedactionError(f"{src.name} has no video track: there is nothing to redact")
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    width, height = video.codec_context.width, video.codec_context.height
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        container.close()
        raise RedactionError(
            f"{src.name}: frame size {width}×{height} is not supported (even sizes only, as H.264 4:2:0 needs)"
        )
    rate = video.average_rate or video.guessed_rate or Fraction(30)
    fps = float(rate)
    announced, exact = 0, False
    if facts is not None and facts.video_frames:
        # The sample table, or the fragment headers (all whole, else the walk refused the file): exact.
        announced, exact = facts.video_frames, True
        if facts.fragmented and facts.duration_s and facts.duration_s * fps > announced + max(2, announced // 100):
            announced, exact = int(round(facts.duration_s * fps)), False  # whole fragments missing at the end
    elif facts is None and video.duration and video.time_base:
        announced = int(round(float(video.duration * video.time_base) * fps))  # the video stream's own duration
    total = announced
    if not total and container.duration:
        total = int(round(container.duration / av.time_base * fps))
    audio = container.streams.audio[0] if container.streams.audio else None
    return Source(container, video, audio, width, height, fps, total, announced, exact)
