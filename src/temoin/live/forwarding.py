"""Forwarding encoded media with aiortc, without decoding or re-encoding it.

aiortc's public API decodes everything it receives (`RTCRtpReceiver` runs a decoder thread that turns
RTP into `av.VideoFrame`/`av.AudioFrame`), and `MediaRelay` fans out those *decoded* frames, which the
viewers' senders then re-encode: a full transcode per viewer. Two aiortc facts make real forwarding
possible instead:

- a sender packs an `av.Packet` returned by its track as is (`Encoder.pack`: H.264 NAL units are only
  re-packetized into RTP, Opus packets are copied), no encoder involved;
- a receiver hands each re-assembled encoded frame (depayloaded H.264 access unit in Annex B, or one
  Opus packet) to its decoder through a queue.

`tap_receiver` replaces that queue by one that passes the encoded frames to the relay and never to the
decoder, which then idles, and the receiver's jitter buffer by one that releases a frame as soon as it is
complete. This uses private attributes of aiortc (checked when tapping, and by the tests): pin aiortc,
and re-check on upgrade.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Callable
from fractions import Fraction

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

from temoin import errors
from temoin.live.plane import CLOCK, NAL_IDR, NAL_PPS, NAL_SPS, EncodedFrame

log = logging.getLogger("temoin.live")

FRAME_STEP = {"video": 3_000, "audio": 960}  # one 30 fps frame, one 20 ms Opus packet, in clock ticks
_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_MAPPER_ATTR = "_RTCRtpReceiver__timestamp_mapper"
_NACK_ATTR = "_RTCRtpReceiver__nack_generator"
_REMB_ATTR = "_RTCRtpReceiver__remote_bitrate_estimator"
GAP_GIVE_UP_S = 0.25  # a lost packet's retransmission takes one round trip (~80 ms on 4G): then give up
NACK_SHARE = 0.1  # retransmissions asked for: at most a tenth of the packets received
NACK_BURST = 20  # ... with this many at once at most (a burst of losses)
REMB_INTERVAL_S = 0.2  # one bandwidth estimate to the camera per this long (libwebrtc's pace), ...
REMB_DROP = 0.03  # ... or at once when it falls by more than this share


class UnsupportedAiortc(errors.Fault, RuntimeError):
    pass


def nal_types(data: bytes) -> list[int]:
    """Types of the NAL units of an Annex B access unit."""
    types: list[int] = []
    i = 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0 or i + 3 >= len(data):
            return types
        types.append(data[i + 3] & 0x1F)
        i += 3


class ParameterSets:
    """Remembers the last SPS/PPS so that a keyframe sent without them can still be decoded."""

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None

    def complete(self, data: bytes) -> tuple[bytes, bool]:
        """(access unit, is a keyframe); the cached SPS/PPS are put in front of an IDR that lacks them."""
        units = _split(data)
        types = [u[0] & 0x1F for u in units if u]
        for unit in units:
            if unit and unit[0] & 0x1F == NAL_SPS:
                self.sps = unit
            elif unit and unit[0] & 0x1F == NAL_PPS:
                self.pps = unit
        keyframe = NAL_IDR in types
        if keyframe and NAL_SPS not in types and self.sps and self.pps:
            data = b"\x00\x00\x00\x01" + self.sps + b"\x00\x00\x00\x01" + self.pps + data
        return data, keyframe


def _split(data: bytes) -> list[bytes]:
    out, starts, i = [], [], 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0:
            break
        starts.append(i + 3)
        i += 3
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        if n + 1 < len(starts) and end > start and data[end - 1] == 0:
            end -= 1  # four-byte start code
        out.append(data[start:end])
    return out


class EagerJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer releases a frame when the *next* frame's first packet arrives: one frame
    interval of added delay (67 ms at 15 fps), harmless for a player, wasted in a relay. This one releases
    a video frame at its marker packet (RFC 6184: the last packet of an access unit) and an audio packet
    at once, and otherwise behaves as aiortc's (a following timestamp also completes a frame).

    A packet lost for good (its NACK or its retransmission lost as well: aiortc asks once) would otherwise
    hold every later frame back until the buffer overflows, about 13 s of video at 300 kbit/s: after
    `give_up_s` with later packets waiting, the incomplete frame is dropped, the next whole frame goes on,
    and (video) a keyframe is asked of the publisher (PLI) so that the viewers' pictures heal."""

    def __init__(self, *args, give_up_s: float = GAP_GIVE_UP_S, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.give_up_s = give_up_s
        self._highest: int | None = None  # the highest sequence number received
        self._stalled_at: float | None = None
        self._want_keyframe = False
        self.skipped = 0  # frames given up

    def add(self, packet):  # (PLI wanted, complete frame), as aiortc's
        if self._highest is None or uint16_gt(packet.sequence_number, self._highest):
            self._highest = packet.sequence_number
        pli, frame = super().add(packet)
        if self._want_keyframe:
            self._want_keyframe, pli = False, True
        return pli, frame

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        frame, gap = self._head()
        if frame is not None or gap is None:
            self._stalled_at = None
            return frame
        # The head frame waits for a packet that is missing while later ones have arrived.
        now = time.monotonic()
        if self._stalled_at is None:
            self._stalled_at = now
            return None
        if now - self._stalled_at < self.give_up_s or not self._skip(gap):
            return None
        self._stalled_at = None
        self.skipped += 1
        self._want_keyframe = self._is_video
        return self._remove_frame(sequence_number)

    def _head(self) -> tuple[JitterFrame | None, int | None]:
        """(the head frame if complete, else None; where a missing packet blocks it, if later ones exist)."""
        assert self._origin is not None, "set by the first packet added, before any frame is looked for"
        packets: list[RtpPacket] = []
        timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                behind = self._highest is not None and uint16_add(self._highest, -self._origin) > count
                return None, count if behind else None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                break
            packets.append(packet)
            if not self._is_video or packet.marker:
                break
        else:
            return None, None
        self.remove(len(packets))
        # aiortc's receiver sets `_data` (the depayloaded payload) on each packet, outside RtpPacket's type.
        data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]  # see the line above
        assert timestamp is not None, "a frame has at least one packet"
        return JitterFrame(data=data, timestamp=timestamp), None

    def _skip(self, gap: int) -> bool:
        """Drop what precedes the first whole frame after the gap at `gap`; False if none has begun yet."""
        assert self._highest is not None and self._origin is not None, "a gap is found after packets were added"
        last = uint16_add(self._highest, -self._origin)
        broken = None  # the timestamp of the packets right after the gap: maybe the rest of the broken frame
        for count in range(gap + 1, min(last, self.capacity - 1) + 1):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                continue
            if broken is None and self._is_video:
                broken = packet.timestamp
                continue
            if packet.timestamp != broken:
                self.remove(count)
                return True
        return False


class BoundedNacks:
    """Stands in for aiortc's NACK generator in the relay's video receivers. aiortc's asks again for every
    packet still missing at each new gap: on a lossy uplink the retransmissions then fill the camera's link
    (measured: 3,723 packets dropped by its queue at 5 % loss, 3 Mbit/s). This one asks for each missing packet
    once, only while its retransmission can still be of use (`useful_s`, after which the jitter buffer has given
    up on its frame), and at most `share` of the packets received (a token bucket, `burst` deep): retransmissions
    never take more than that of the uplink.

    aiortc's receiver calls `add(packet)` for every packet (retransmissions unwrapped) and, when it returns
    True, sends one NACK for the sequence numbers in `missing`: here, those to ask for now."""

    def __init__(
        self,
        useful_s: float = GAP_GIVE_UP_S,
        share: float = NACK_SHARE,
        burst: int = NACK_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.useful_s, self.share, self.burst, self.clock = useful_s, share, burst, clock
        self.max_seq: int | None = None
        self.missing: set[int] = set()  # to ask for in the NACK being sent
        self._waiting: dict[int, float] = {}  # missing, not asked for yet (rate cap): seq -> when found missing
        self._asked: dict[int, float] = {}  # asked for once, retransmission awaited: seq -> when found missing
        self._tokens = float(burst)
        self.requested = 0  # sequence numbers asked for, in all
        self.abandoned = 0  # missing packets never asked for: no budget left within their useful life

    def add(self, packet) -> bool:  # an aiortc RtpPacket
        now = self.clock()
        seq = packet.sequence_number
        self._tokens = min(float(self.burst), self._tokens + self.share)
        if self.max_seq is None:
            self.max_seq = seq
        elif uint16_gt(seq, self.max_seq):
            gap = uint16_add(seq, -self.max_seq) - 1
            room = max(0, 4 * self.burst - len(self._waiting))  # a huge gap: the rest is past saving anyway
            for n in range(1, min(gap, room) + 1):
                self._waiting[uint16_add(self.max_seq, n)] = now
            self.abandoned += gap - min(gap, room)
            self.max_seq = seq
        else:  # late, or retransmitted: no longer missing
            self._waiting.pop(seq, None)
            self._asked.pop(seq, None)
        for pending in (self._waiting, self._asked):
            for old in [s for s, at in pending.items() if now - at > self.useful_s]:
                del pending[old]
                self.abandoned += pending is self._waiting
        self.missing = set()
        for missing in sorted(self._waiting, key=self._waiting.__getitem__):
            if self._tokens < 1:
                break
            self._tokens -= 1
            self._asked[missing] = self._waiting.pop(missing)
            self.missing.add(missing)
        self.requested += len(self.missing)
        return bool(self.missing)


class ThrottledRemb:
    """Stands in front of aiortc's receive-side bandwidth estimator in the relay's video receivers. aiortc sends
    the camera a REMB (its estimate of the uplink) after every packet for as long as its overuse detector says
    "overusing", which a loaded server or a jittery link makes it say often: hundreds of RTCP packets a second
    per stream, each encrypted and sent, for the same figure. This passes on one estimate per `interval_s`, and
    one that falls by more than `drop` at once (a congested uplink must slow the camera's encoder down now).

    aiortc's receiver calls `add(...)` for every video packet and sends a REMB when it returns one."""

    def __init__(
        self,
        inner,  # aiortc's RemoteBitrateEstimator
        interval_s: float = REMB_INTERVAL_S,
        drop: float = REMB_DROP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner, self.interval_s, self.drop, self.clock = inner, interval_s, drop, clock
        self._sent: tuple[float, int] | None = None  # (when, bitrate) of the last estimate passed on

    def add(self, **packet):  # aiortc's keyword arguments; returns its (bitrate, ssrcs) or None
        estimate = self.inner.add(**packet)
        if estimate is None:
            return None
        now, bitrate = self.clock(), estimate[0]
        if self._sent is not None:
            at, last = self._sent
            if now - at < self.interval_s and bitrate >= last * (1 - self.drop):
                return None
        self._sent = (now, bitrate)
        return estimate


class _Tap(queue.Queue):
    """Stands in for a receiver's decoder queue: encoded frames go to `on_frame`, only the end-of-stream
    marker (None) reaches the decoder thread, which then stops. After each frame it drains the frames the
    jitter buffer already holds complete (aiortc hands over one frame per packet received, so a burst
    completed by a retransmission would otherwise stay one frame behind for good)."""

    def __init__(self, receiver: RTCRtpReceiver, on_frame: Callable[[str, bytes, int], None]) -> None:
        super().__init__()
        self._receiver = receiver
        self._on_frame = on_frame

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None, block, timeout)
            return
        codec, frame = item
        mime = codec.mimeType.lower()
        try:
            self._on_frame(mime, frame.data, frame.timestamp)
            buffer = getattr(self._receiver, _JITTER_ATTR)
            mapper = getattr(self._receiver, _MAPPER_ATTR)
            while (extra := buffer._remove_frame(0)) is not None:
                self._on_frame(mime, extra.data, mapper.map(extra.timestamp))
        except Exception:  # never let a relay bug kill aiortc's RTP handling
            log.exception("live relay: dropping a frame")


def tap_receiver(receiver: RTCRtpReceiver, on_frame: Callable[[str, bytes, int], None]) -> None:
    """Divert a receiver's encoded frames to `on_frame(mime, data, timestamp)`. Call before the connection
    starts receiving (right after setRemoteDescription)."""
    for attr, kind in ((_QUEUE_ATTR, queue.Queue), (_JITTER_ATTR, JitterBuffer), (_MAPPER_ATTR, object)):
        if not isinstance(getattr(receiver, attr, None), kind):
            raise UnsupportedAiortc(
                f"this aiortc version has no RTCRtpReceiver.{attr}: encoded forwarding must "
                "be adapted to it (temoin.live.forwarding); refusing to fall back to a "
                "silent transcode"
            )
    old = getattr(receiver, _JITTER_ATTR)
    setattr(receiver, _JITTER_ATTR, EagerJitterBuffer(capacity=old.capacity, prefetch=0, is_video=old._is_video))
    setattr(receiver, _QUEUE_ATTR, _Tap(receiver, on_frame))
    # Video receivers only (aiortc gives audio ones neither): bounded NACKs, paced bandwidth estimates.
    for attr, what, stand_in in (
        (_NACK_ATTR, "bounded NACKs", lambda _aiortcs: BoundedNacks()),
        (_REMB_ATTR, "paced bandwidth estimates", ThrottledRemb),
    ):
        if not hasattr(receiver, attr):
            raise UnsupportedAiortc(
                f"this aiortc version has no RTCRtpReceiver.{attr}: the relay's {what} must be adapted to it "
                "(temoin.live.forwarding)"
            )
        if getattr(receiver, attr) is not None:
            setattr(receiver, attr, stand_in(getattr(receiver, attr)))


# aiortc's DTLS offers ECDHE-ECDSA suites only. A peer with an RSA certificate (GStreamer's webrtcbin: its
# whipsink, Meetecho's simple-whip-client, most encoders built on GStreamer) then fails the handshake with
# "no shared cipher" whenever the relay is the DTLS client, which it always is as the answerer (setup:active).
# The relay also offers the ECDHE-RSA suites (AEAD first); its own certificate stays ECDSA.
DTLS_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
    b"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
    b"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)


def accept_rsa_dtls_peers() -> None:
    """Let aiortc's DTLS (in this process) negotiate with peers whose certificate is RSA. Idempotent."""
    from aiortc.rtcdtlstransport import RTCCertificate

    original = getattr(RTCCertificate, "_create_ssl_context", None)
    if original is None:
        raise UnsupportedAiortc(
            "this aiortc version has no RTCCertificate._create_ssl_context: the relay's DTLS cipher list "
            "(temoin.live.forwarding.accept_rsa_dtls_peers) must be adapted to it"
        )
    if getattr(original, "temoin_rsa", False):
        return

    def create(self, srtp_profiles):
        context = original(self, srtp_profiles)
        context.set_cipher_list(DTLS_CIPHERS)
        return context

    create.temoin_rsa = True  # type: ignore[attr-defined]  # a marker: patched once only
    RTCCertificate._create_ssl_context = create  # type: ignore[method-assign]  # on purpose: see DTLS_CIPHERS


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI (RFC 4585) to the publisher for every video source it sends."""
    sources = receiver.getSynchronizationSources()
    for source in sources:
        await receiver._send_rtcp_pli(source.source)
    return bool(sources)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """A viewer's PLI/FIR reaches `callback` (forwarded to the publisher) instead of a local encoder."""
    sender._send_keyframe = callback  # type: ignore[method-assign]  # on purpose: the publisher makes the keyframes


class Continuity:
    """Timestamps that keep going forward when a new publisher (starting again from 0) takes over."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._generation: int | None = None
        self._offset = 0
        self._last: int | None = None

    def map(self, frame: EncodedFrame) -> int:
        if frame.generation != self._generation:
            self._generation = frame.generation
            following = 0 if self._last is None else self._last + FRAME_STEP[self.kind]
            self._offset = following - frame.timestamp
        ts = frame.timestamp + self._offset
        if self._last is not None and ts < self._last:
            ts = self._last  # never backwards
        self._last = ts
        return ts


class ForwardTrack(MediaStreamTrack):
    """The outgoing track of one viewer: yields encoded packets that its sender only re-packetizes.

    Video starts at a keyframe (asked for as long as pictures arrive without one); output timestamps stay
    monotonic across publisher reconnections; when the viewer cannot keep up the backlog is dropped and video
    waits for the next keyframe (asking for one).
    """

    def __init__(self, kind: str, need_keyframe: Callable[[], None], max_queue: int = 120) -> None:
        super().__init__()
        self.kind = kind
        self._need_keyframe = need_keyframe
        self._queue: asyncio.Queue[EncodedFrame | None] = asyncio.Queue(maxsize=max_queue)
        self._waiting_key = kind == "video"
        self._clock = Continuity(kind)
        self._time_base = Fraction(1, CLOCK[kind])
        self.sent = 0

    def restart(self) -> None:
        """A new publisher took over: video waits for its first keyframe."""
        self._waiting_key = self.kind == "video"

    def push(self, frame: EncodedFrame) -> None:
        if self.readyState != "live":
            return
        if self._waiting_key:
            if not frame.keyframe:
                # Ask again while pictures flow without one (the stream caps PLIs at one per 300 ms): the
                # request made when this viewer joined may have reached no publisher yet (a viewer joining on
                # the alert, before the camera's media), or its keyframe may have been lost on the uplink.
                # Without this, the viewer would wait for the camera's next periodic keyframe (measured: 4-6 s
                # at 5 % loss, bench/live/impaired.py).
                self._need_keyframe()
                return
            self._waiting_key = False
        if self._queue.full():
            while not self._queue.empty():
                self._queue.get_nowait()
            if self.kind == "video":
                self._waiting_key = True
                self._need_keyframe()
                if not frame.keyframe:
                    return
                self._waiting_key = False
        self._queue.put_nowait(frame)

    def finish(self) -> None:
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = self._clock.map(frame)
        packet.time_base = self._time_base
        self.sent += 1
        return packet
