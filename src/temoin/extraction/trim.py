"""Trimming a recording to a time range by stream copy: packets are copied, never decoded or encoded.

A recording is a run of standalone fMP4 segments, each starting at its own time zero. The trimmed file
starts at the last video keyframe at or before the requested start (a copy cannot start elsewhere without
re-encoding) and stops before the first packet at or after the requested end. What was actually kept is
returned, so that the package's manifest states it, with the originals' hashes it derives from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from temoin import errors

# The same timestamp policy as the camera's segments (temoin.camera.media.FMP4_OPTIONS); a plain MP4
# with its index at the front, so that any player opens it.
OUTPUT_OPTIONS = {"movflags": "faststart", "avoid_negative_ts": "disabled"}


if TYPE_CHECKING:
    import av


class TrimError(errors.InvalidInput, ValueError):
    """The range cannot be cut from this recording; the message says why."""


@dataclass(frozen=True)
class TrimSource:
    """One original segment: where it sits in the recording, its device-signed hash, how to read it."""

    index: int
    offset_s: float  # segment start, seconds after the recording's start
    duration_s: float
    sha256: str
    open: Callable[[], BinaryIO]


@dataclass
class TrimResult:
    requested_start_s: float
    requested_end_s: float
    kept_start_s: float
    kept_end_s: float
    segments: list[TrimSource] = field(default_factory=list)
    packets: dict[str, int] = field(default_factory=dict)

    def as_manifest(self) -> dict:
        return {
            "method": "stream copy (PyAV remux): no decoding, no re-encoding",
            "requested": {"start_s": self.requested_start_s, "end_s": self.requested_end_s},
            "kept": {"start_s": round(self.kept_start_s, 6), "end_s": round(self.kept_end_s, 6)},
            "cut_rule": "starts at the last video keyframe at or before the requested start",
            "source_segments": [{"index": s.index, "sha256": s.sha256} for s in self.segments],
            "packets": self.packets,
        }


def _keyframe_at_or_before(source: TrimSource, start_s: float) -> float:
    """Time (in the recording) of the last video keyframe at or before start_s in this segment."""
    best: float | None = None
    import av  # PyAV (about 30 MiB) loaded by the first trim, not at server start

    with source.open() as fh, av.open(fh, mode="r") as container:
        video = container.streams.video[0]
        assert video.time_base is not None, "a demuxed input stream has its time base"
        for packet in container.demux(video):
            if packet.pts is None or not packet.is_keyframe:
                continue
            t = source.offset_s + float(packet.pts * video.time_base)
            if t <= start_s + 1e-9:
                best = t
            else:
                break
    if best is None:  # a segment always opens on a keyframe; a camera's that does not is cut at its first
        raise TrimError(f"segment {source.index} has no video keyframe at or before {start_s:.3f} s")
    return best


def trim(sources: list[TrimSource], start_s: float, end_s: float, dst: Path) -> TrimResult:
    """Write [start_s, end_s) of the recording made of `sources` into `dst` by stream copy."""
    if not 0 <= start_s < end_s:
        raise TrimError(f"the range must satisfy 0 <= start < end (got {start_s} to {end_s})")
    total = max((s.offset_s + s.duration_s for s in sources), default=0.0)
    if start_s >= total:
        raise TrimError(f"the recording lasts {total:.1f} s: nothing to keep from {start_s} s")
    chosen = [s for s in sources if s.offset_s + s.duration_s > start_s and s.offset_s < end_s]
    first = max((s for s in chosen if s.offset_s <= start_s), key=lambda s: s.offset_s, default=chosen[0])
    cut = _keyframe_at_or_before(first, max(start_s, first.offset_s))
    result = TrimResult(start_s, end_s, cut, cut, chosen, {})
    import av  # as above: loaded when first needed

    out_streams: dict[int, av.stream.Stream] = {}
    last_dts: dict[int, int] = {}  # per output stream: segments overlap by the audio codec's priming
    with av.open(str(dst), mode="w", format="mp4", options=OUTPUT_OPTIONS) as output:
        for source in chosen:
            with source.open() as fh, av.open(fh, mode="r") as container:
                if not out_streams:
                    for stream in container.streams:
                        if stream.type in ("video", "audio"):
                            out_streams[stream.index] = output.add_stream_from_template(stream)
                for packet in container.demux():
                    if packet.pts is None or packet.stream.index not in out_streams:
                        continue  # the demuxer's final flush packets
                    tb: Fraction = packet.time_base
                    t = source.offset_s + float(packet.pts * tb)
                    if t < cut - 1e-9 or t >= end_s:
                        continue
                    # Shift the copy so that it starts at zero; same time base, so the values stay exact.
                    shift = round(
                        (
                            Fraction(source.offset_s).limit_denominator(1_000_000)
                            - Fraction(cut).limit_denominator(1_000_000)
                        )
                        / tb
                    )
                    packet.pts += shift
                    if packet.dts is not None:
                        packet.dts += shift
                    kind, index = packet.stream.type, packet.stream.index
                    dts = packet.dts if packet.dts is not None else packet.pts
                    if dts <= last_dts.get(index, -(2**62)):
                        continue  # already covered by the previous segment's copy
                    last_dts[index] = dts
                    packet.stream = out_streams[index]
                    output.mux(packet)
                    result.packets[kind] = result.packets.get(kind, 0) + 1
                    result.kept_end_s = max(result.kept_end_s, t + float((packet.duration or 0) * tb))
    if not result.packets.get("video"):
        dst.unlink(missing_ok=True)
        raise TrimError(f"no video between {start_s} s and {end_s} s")
    return result
