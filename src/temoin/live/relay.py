"""The in-process media plane: a small SFU on aiortc that forwards H.264 and Opus as they arrive.

One publisher per stream (the camera), any number of viewers (up to `max_viewers`). Nothing is
decoded or re-encoded on the server (see `live.forwarding`); a viewer's picture-loss indication is
forwarded to the publisher as a PLI, and a joining viewer triggers one, so it gets a keyframe within
a round trip instead of waiting for the camera's next periodic one.

It runs in the server's event loop: `temoin serve` must run a single worker process for live media
(the state lives in memory), or put an external SFU behind `MediaPlane` instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)

from temoin.live.forwarding import (
    ForwardTrack,
    ParameterSets,
    accept_rsa_dtls_peers,
    on_keyframe_request,
    packetize,
    request_keyframe,
    tap_receiver,
)
from temoin.live.plane import (
    Answer,
    BadOffer,
    EncodedFrame,
    FrameSink,
    LocalFeed,
    MediaPlane,
    NoSuchStream,
    OnEnded,
    StreamStatus,
    TooManyViewers,
    check_offer,
    offered_kinds,
)

log = logging.getLogger("temoin.live")
PLI_MIN_INTERVAL_S = 0.3


def _codecs(kind: str, mime: str):
    """Only this codec (and its RTX): the answer then never negotiates something we would have to transcode."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    return [c for c in caps if c.mimeType.lower() == mime] + [c for c in caps if c.mimeType.lower().endswith("/rtx")]


@dataclass(eq=False)
class _Leg:
    """One peer connection: the publication or a playback."""

    resource_id: str
    pc: RTCPeerConnection
    on_ended: OnEnded | None
    tracks: dict[str, ForwardTrack] = field(default_factory=dict)  # playbacks only
    video_receiver: RTCRtpReceiver | None = None  # publications only
    ended: bool = False

    async def finish(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        for track in self.tracks.values():
            track.finish()
        try:
            await self.pc.close()
        except Exception:  # closing a half-dead connection must not mask the reason
            log.exception("live: closing a peer connection")
        if self.on_ended is not None:
            result = self.on_ended(reason)
            if inspect.isawaitable(result):
                await result


@dataclass(eq=False)
class _Stream:
    name: str
    sink: FrameSink | None = None
    publisher: _Leg | _LocalLeg | None = None
    viewers: dict[str, _Leg] = field(default_factory=dict)
    generation: int = 0
    params: ParameterSets = field(default_factory=ParameterSets)
    last_packet_at: float | None = None
    video_frames: int = 0
    audio_frames: int = 0
    keyframes: int = 0
    last_pli: float = 0.0

    def on_frame(self, mime: str, data: bytes, timestamp: int) -> None:
        kind: Literal["audio", "video"] = "video" if mime.startswith("video/") else "audio"
        keyframe = False
        if kind == "video":
            data, keyframe = self.params.complete(data)
            self.video_frames += 1
            self.keyframes += keyframe
        else:
            self.audio_frames += 1
        frame = EncodedFrame(kind, data, timestamp, keyframe, self.generation, time.time())
        self.last_packet_at = frame.received_at
        if self.sink is not None:
            try:
                self.sink.write(frame)
            except Exception:  # a failing backup must never cut the live feed
                log.exception("live backup: dropping the recording of %s", self.name)
                self.sink = None
        payloads = None  # packetized once for all the viewers
        for viewer in self.viewers.values():
            track = viewer.tracks.get(kind)
            if track is not None:
                if payloads is None:
                    payloads = packetize(kind, data)
                track.push(frame, payloads)

    def request_keyframe(self) -> None:
        now = time.monotonic()
        if isinstance(self.publisher, _LocalLeg) and now - self.last_pli >= PLI_MIN_INTERVAL_S:
            self.last_pli = now
            self.publisher.request_keyframe()
            return
        if self.publisher is None or self.publisher.video_receiver is None or now - self.last_pli < PLI_MIN_INTERVAL_S:
            return
        self.last_pli = now
        task = asyncio.ensure_future(request_keyframe(self.publisher.video_receiver))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a closed transport: nothing to do


class _LocalLeg(LocalFeed):
    """A publication from inside the server (`MediaPlane.attach`): a leg without a peer connection, whose
    frames go through `_Stream.on_frame` as a WHIP publisher's do."""

    video_receiver = None
    tracks: dict[str, ForwardTrack] = {}  # noqa: RUF012 - a publication has no outgoing tracks (never written to)

    def __init__(
        self, stream: _Stream, on_keyframe_request: Callable[[], None] | None, on_ended: OnEnded | None
    ) -> None:
        self.resource_id = secrets.token_urlsafe(12)
        self.on_ended = on_ended
        self.ended = False
        self._stream = stream
        self._on_keyframe_request = on_keyframe_request

    @property
    def active(self) -> bool:
        return not self.ended and self._stream.publisher is self

    def push(self, kind: str, data: bytes, timestamp: int) -> None:
        if self.active:
            self._stream.on_frame(f"{kind}/local", data, timestamp)

    def restart(self) -> None:
        if self.active:
            self._stream.generation += 1
            for viewer in self._stream.viewers.values():
                for track in viewer.tracks.values():
                    track.restart()

    def request_keyframe(self) -> None:
        if self._on_keyframe_request is not None:
            try:
                self._on_keyframe_request()
            except Exception:  # a source's bug must not cut the viewers
                log.exception("live: asking a local source for a keyframe")

    async def finish(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        if self.on_ended is not None:
            result = self.on_ended(reason)
            if inspect.isawaitable(result):
                await result


class AiortcMediaPlane(MediaPlane):
    def __init__(self, ice_servers: list[str] | tuple[str, ...] = (), max_viewers: int = 8) -> None:
        # An explicit empty list: without it aiortc would reach out to a public Google STUN server.
        self.ice_servers = [RTCIceServer(url) for url in ice_servers]
        self.max_viewers = max_viewers
        accept_rsa_dtls_peers()  # GStreamer-based publishers have RSA certificates
        self._streams: dict[str, _Stream] = {}

    def _pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(iceServers=list(self.ice_servers)))

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        for name in list(self._streams):
            await self.end_stream(name, reason="shutdown")

    def open_stream(self, stream: str, sink: FrameSink | None = None) -> None:
        found = self._streams.setdefault(stream, _Stream(stream))
        if sink is not None and found.sink is None:
            found.sink = sink

    def streams(self) -> list[str]:
        return list(self._streams)

    def status(self, stream: str) -> StreamStatus | None:
        s = self._streams.get(stream)
        if s is None:
            return None
        publisher = s.publisher  # read once: another thread may read while the media loop replaces it
        return StreamStatus(
            stream=stream,
            publishing=publisher is not None,
            publisher=publisher.resource_id if publisher else None,
            last_packet_at=s.last_packet_at,
            video_frames=s.video_frames,
            audio_frames=s.audio_frames,
            keyframes=s.keyframes,
            viewers=len(s.viewers),
        )

    async def _negotiate(self, pc: RTCPeerConnection, offer: str) -> None:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:  # noqa: BLE001 - aiortc raises ValueError, KeyError, OperationError... on bad SDP
            await pc.close()
            raise BadOffer(f"the SDP offer was refused: {exc or type(exc).__name__}") from None

    async def _answer(self, pc: RTCPeerConnection) -> str:
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)  # waits for ICE gathering: no trickle, the answer is complete
        return pc.localDescription.sdp

    def _watch(self, pc: RTCPeerConnection, stream: _Stream, leg_of) -> None:
        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                leg = leg_of()
                if leg is not None and not leg.ended:
                    await self._drop(stream, leg, pc.connectionState)

    async def _drop(self, stream: _Stream, leg: _Leg | _LocalLeg, reason: str) -> None:
        if stream.publisher is leg:
            stream.publisher = None
        stream.viewers.pop(leg.resource_id, None)
        await leg.finish(reason)

    async def publish(self, stream: str, offer: str, *, on_ended: OnEnded | None = None) -> Answer:
        check_offer(offer)
        self.open_stream(stream)
        s = self._streams[stream]
        pc = self._pc()
        video = pc.addTransceiver("video", direction="recvonly")
        video.setCodecPreferences(_codecs("video", "video/h264"))
        receiving = [video]
        if "audio" in offered_kinds(offer):  # a video-only encoder is as valid as one with sound
            audio = pc.addTransceiver("audio", direction="recvonly")
            audio.setCodecPreferences(_codecs("audio", "audio/opus"))
            receiving.append(audio)
        await self._negotiate(pc, offer)
        leg = _Leg(secrets.token_urlsafe(12), pc, on_ended, video_receiver=video.receiver)
        generation = s.generation + 1

        def on_frame(mime: str, data: bytes, timestamp: int) -> None:
            if s.publisher is leg:  # frames of a replaced publisher are dropped
                s.on_frame(mime, data, timestamp)

        for transceiver in receiving:
            if transceiver.mid is not None:
                tap_receiver(transceiver.receiver, on_frame)
        sdp = await self._answer(pc)
        previous = s.publisher
        s.publisher, s.generation = leg, generation
        for viewer in s.viewers.values():
            for track in viewer.tracks.values():
                track.restart()
        self._watch(pc, s, lambda: leg)
        if previous is not None:
            await previous.finish("replaced")
        return Answer(leg.resource_id, sdp)

    async def play(self, stream: str, offer: str, *, on_ended: OnEnded | None = None) -> Answer:
        check_offer(offer)
        s = self._streams.get(stream)
        if s is None:
            raise NoSuchStream(f"no live stream {stream}")
        if len(s.viewers) >= self.max_viewers:
            raise TooManyViewers(f"this live stream already has {self.max_viewers} viewers")
        # Only the kinds the viewer offers: a video-only WHEP client is as valid as one asking for sound too.
        kinds = [k for k in ("video", "audio") if k in offered_kinds(offer)]
        pc = self._pc()
        tracks = {kind: ForwardTrack(kind, s.request_keyframe) for kind in kinds}
        senders = {}
        for kind, track in tracks.items():
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_codecs(kind, "video/h264" if kind == "video" else "audio/opus"))
            senders[kind] = transceiver
        await self._negotiate(pc, offer)
        if "video" in senders:
            on_keyframe_request(senders["video"].sender, s.request_keyframe)
        for kind, track in tracks.items():
            track.bind(senders[kind].sender)
        leg = _Leg(
            secrets.token_urlsafe(12),
            pc,
            on_ended,
            tracks={k: t for k, t in tracks.items() if senders[k].mid is not None},
        )
        sdp = await self._answer(pc)
        if stream not in self._streams:  # ended while we negotiated
            await leg.finish("stream_ended")
            raise NoSuchStream(f"the live stream {stream} has ended")
        s.viewers[leg.resource_id] = leg
        self._watch(pc, s, lambda: leg)
        s.request_keyframe()  # the newcomer needs a keyframe now, not at the camera's next periodic one
        return Answer(leg.resource_id, sdp)

    async def attach(
        self, stream: str, *, on_keyframe_request: Callable[[], None] | None = None, on_ended: OnEnded | None = None
    ) -> LocalFeed:
        self.open_stream(stream)
        s = self._streams[stream]
        leg = _LocalLeg(s, on_keyframe_request, on_ended)
        previous = s.publisher
        s.publisher = leg
        s.generation += 1
        for viewer in s.viewers.values():
            for track in viewer.tracks.values():
                track.restart()
        if previous is not None:
            await previous.finish("replaced")
        return leg

    async def end(self, stream: str, resource_id: str) -> bool:
        s = self._streams.get(stream)
        if s is None:
            return False
        if s.publisher is not None and s.publisher.resource_id == resource_id:
            await self._drop(s, s.publisher, "deleted")
            return True
        leg = s.viewers.get(resource_id)
        if leg is None:
            return False
        await self._drop(s, leg, "deleted")
        return True

    async def end_stream(self, stream: str, reason: str = "stream_ended") -> None:
        s = self._streams.pop(stream, None)
        if s is None:
            return
        legs = list(s.viewers.values()) + ([s.publisher] if s.publisher else [])
        s.viewers.clear()
        s.publisher = None
        for leg in legs:
            await leg.finish(reason)
        if s.sink is not None:
            sink, s.sink = s.sink, None
            await asyncio.get_running_loop().run_in_executor(None, sink.close)
