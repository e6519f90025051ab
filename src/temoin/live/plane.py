"""The media plane interface: what the platform asks of whatever carries live media.

The in-process implementation (`live.relay.AiortcMediaPlane`) runs inside `temoin serve`; an external
SFU (mediasoup, Janus, LiveKit, a WHIP/WHEP server) can replace it by implementing this class. The
rest of the platform (authorisation, sessions, journal, events) never touches WebRTC objects.

A *stream* is named by its live session id. Publishing and playing both speak SDP, as WHIP
(RFC 9725) and WHEP carry it: an offer in, an answer out, and a resource id to end it with.

A stream may also be fed from inside the server (`attach`, a `LocalFeed`): the CCTV cameras whose RTSP
streams the platform pulls (`live.rtsp_pull`) are streams named `cctv:{tenant}:{camera}`, watched over the
same WHEP path.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from temoin import errors

# RTP clock rates of H.264 and Opus, and the H.264 NAL unit types the relay and the pullers look for: here, with no
# media library, so that modules needing only these (backup, rtsp_pull) do not load aiortc.
CLOCK = {"video": 90_000, "audio": 48_000}
NAL_IDR, NAL_SPS, NAL_PPS = 5, 7, 8

MAX_SDP_BYTES = 64 * 1024
VIDEO_CODEC = "H264"
AUDIO_CODEC = "opus"

# Called once when a publication or a playback ends, whatever ended it (DELETE, lost link, shutdown).
OnEnded = Callable[[str], Awaitable[None] | None]  # the argument says why: "deleted", "failed", "closed", ...


class MediaPlaneError(errors.Fault):
    pass


class BadOffer(errors.Malformed, MediaPlaneError):
    """The SDP offer is malformed, or does not offer what the platform carries (H.264 + Opus)."""


class NoSuchStream(errors.NotFound, MediaPlaneError):
    pass


class TooManyViewers(errors.Unavailable, MediaPlaneError):
    pass


@dataclass(frozen=True)
class Answer:
    resource_id: str  # names the WHIP/WHEP session resource (the Location header)
    sdp: str


@dataclass(frozen=True)
class StreamStatus:
    stream: str
    publishing: bool  # a publisher is attached
    publisher: str | None  # its resource id
    last_packet_at: float | None  # wall-clock time (time.time()) of the last media frame received
    video_frames: int
    audio_frames: int
    keyframes: int
    viewers: int

    def silent_for(self, now: float) -> float | None:
        """Seconds since the last frame, None before the first."""
        return None if self.last_packet_at is None else max(0.0, now - self.last_packet_at)


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    kind: Literal["audio", "video"]
    data: bytes  # H.264 access unit (Annex B) or one Opus packet
    timestamp: int  # in the RTP clock of its kind (90 kHz, 48 kHz), from 0 at the publisher's first frame
    keyframe: bool
    generation: int  # which publication produced it (a reconnecting camera starts a new generation)
    received_at: float  # time.time()


class FrameSink(ABC):
    """Receives the encoded frames of a stream as they arrive (the server-side backup recording).
    Called in the event loop: it must not block."""

    @abstractmethod
    def write(self, frame: EncodedFrame) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class LocalFeed(ABC):
    """A publication from inside the server (`MediaPlane.attach`): a CCTV camera's RTSP stream pulled by
    the platform, say. It is the stream's publisher as a WHIP camera would be: its frames reach the viewers
    the same way, `StreamStatus` (publishing, last_packet_at, counters) and the link health read the same,
    a WHIP publication or another feed replaces it, and `MediaPlane.end(stream, feed.resource_id)` ends it.

    Its methods are called in the event loop (from a thread: `loop.call_soon_threadsafe`)."""

    resource_id: str

    @abstractmethod
    def push(self, kind: Literal["audio", "video"], data: bytes, timestamp: int) -> None:
        """One encoded frame: an H.264 access unit in Annex B (SPS/PPS in front of keyframes, or given once
        before) or one Opus packet; `timestamp` on the RTP clock of its kind (90 kHz, 48 kHz), from 0 at the
        source's first frame and never going back. Ignored once the feed has ended or been replaced."""

    @abstractmethod
    def restart(self) -> None:
        """The source starts over (a reconnection: its timestamps start from 0 again). The viewers carry on
        with monotonic timestamps and resume at the source's next keyframe, as when a camera reconnects."""

    @property
    @abstractmethod
    def active(self) -> bool:
        """Still the stream's publisher (not ended, not replaced)."""


class MediaPlane(ABC):
    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """End every publication and playback (server shutdown)."""

    @abstractmethod
    async def publish(self, stream: str, offer: str, *, on_ended: OnEnded | None = None) -> Answer:
        """Accept a publisher's offer (WHIP). A new publisher replaces the previous one (a camera that
        reconnects after losing its link); viewers stay attached and resume at the next keyframe."""

    @abstractmethod
    async def play(self, stream: str, offer: str, *, on_ended: OnEnded | None = None) -> Answer:
        """Accept a viewer's offer (WHEP). The stream must have been opened (`open_stream`)."""

    @abstractmethod
    def open_stream(self, stream: str, sink: FrameSink | None = None) -> None:
        """Make a stream known, so that viewers may attach before the publisher's media arrives; `sink`
        (once per stream) receives every frame until the stream ends, then is closed."""

    @abstractmethod
    async def attach(
        self, stream: str, *, on_keyframe_request: Callable[[], None] | None = None, on_ended: OnEnded | None = None
    ) -> LocalFeed:
        """Publish into a stream from inside the server (see `LocalFeed`), opening the stream if needed. A
        feed replaces the current publisher, as a new WHIP publication does. `on_keyframe_request` is called
        (at most every few hundred ms) when a viewer needs a keyframe: a source that cannot produce one on
        demand (an RTSP camera) leaves it out and viewers wait for its next periodic keyframe."""

    @abstractmethod
    async def end(self, stream: str, resource_id: str) -> bool:
        """End one publication or playback; False if there is no such resource on that stream."""

    @abstractmethod
    async def end_stream(self, stream: str, reason: str = "stream_ended") -> None:
        """End the publication and every playback of a stream, and forget it."""

    @abstractmethod
    def status(self, stream: str) -> StreamStatus | None: ...

    @abstractmethod
    def streams(self) -> list[str]: ...


class LazyMediaPlane(MediaPlane):
    """A media plane built on first use: the relay imports aiortc and PyAV (about 80 MiB), which a server that
    nobody streams to should not load. Before that, there is no stream: `streams` is empty, `status` None.
    `build`'s plane must not need `start` before `open_stream` (the relay's `start` does nothing)."""

    def __init__(self, build: Callable[[], MediaPlane]) -> None:
        self._build = build
        self._inner: MediaPlane | None = None
        self._started = False

    def _plane(self) -> MediaPlane:
        if self._inner is None:
            self._inner = self._build()
        return self._inner

    async def _ready(self) -> MediaPlane:
        plane = self._plane()
        if not self._started:
            self._started = True
            await plane.start()
        return plane

    async def start(self) -> None:
        pass  # the real plane starts when first used

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()

    async def publish(self, stream: str, offer: str, *, on_ended: OnEnded | None = None) -> Answer:
        return await (await self._ready()).publish(stream, offer, on_ended=on_ended)

    async def play(self, stream: str, offer: str, *, on_ended: OnEnded | None = None) -> Answer:
        return await (await self._ready()).play(stream, offer, on_ended=on_ended)

    def open_stream(self, stream: str, sink: FrameSink | None = None) -> None:
        self._plane().open_stream(stream, sink)

    async def attach(
        self, stream: str, *, on_keyframe_request: Callable[[], None] | None = None, on_ended: OnEnded | None = None
    ) -> LocalFeed:
        plane = await self._ready()
        return await plane.attach(stream, on_keyframe_request=on_keyframe_request, on_ended=on_ended)

    async def end(self, stream: str, resource_id: str) -> bool:
        return False if self._inner is None else await self._inner.end(stream, resource_id)

    async def end_stream(self, stream: str, reason: str = "stream_ended") -> None:
        if self._inner is not None:
            await self._inner.end_stream(stream, reason)

    def status(self, stream: str) -> StreamStatus | None:
        return None if self._inner is None else self._inner.status(stream)

    def streams(self) -> list[str]:
        return [] if self._inner is None else self._inner.streams()


_MEDIA = re.compile(r"^m=(audio|video) \d+ [A-Z/]+ [\d ]+$", re.MULTILINE)
_RTPMAP = re.compile(r"^a=rtpmap:\d+ ([\w.-]+)/", re.MULTILINE)


def offered_kinds(sdp: str) -> set[str]:
    """The media kinds an SDP offer has a section for."""
    return set(_MEDIA.findall(sdp.replace("\r\n", "\n")))


def check_offer(sdp: str, *, video_required: bool = True) -> None:
    """Refuse early and clearly what aiortc would refuse obscurely (or accept and fail later)."""
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise BadOffer(f"SDP offer larger than {MAX_SDP_BYTES} bytes")
    if not sdp.startswith("v=0"):
        raise BadOffer("not an SDP offer: it must start with 'v=0' (send the offer as application/sdp)")
    sdp = sdp.replace("\r\n", "\n")
    kinds = _MEDIA.findall(sdp)
    if not kinds:
        raise BadOffer("the SDP offer has no audio or video media section")
    if video_required and "video" not in kinds:
        raise BadOffer("the SDP offer has no video media section")
    if "a=fingerprint:" not in sdp or "a=ice-ufrag:" not in sdp:
        raise BadOffer("the SDP offer lacks ICE credentials or a DTLS fingerprint")
    codecs = {name.lower() for name in _RTPMAP.findall(sdp)}
    if "video" in kinds and VIDEO_CODEC.lower() not in codecs:
        raise BadOffer("the SDP offer does not offer H.264 video: live media is forwarded as H.264, never transcoded")
    if "audio" in kinds and AUDIO_CODEC not in codecs:
        raise BadOffer("the SDP offer does not offer Opus audio")
    if "\na=candidate:" not in sdp:
        raise BadOffer(
            "the SDP offer has no ICE candidate: this server does not take trickle ICE (PATCH); send "
            "the offer once ICE gathering is complete, with its candidates in the SDP"
        )
