"""Forwarding encoded media with aiortc, without decoding or re-encoding it.

aiortc's public API decodes everything it receives (`RTCRtpReceiver` runs a decoder thread that turns
RTP into `av.VideoFrame`/`av.AudioFrame`), and `MediaRelay` fans out those *decoded* frames, which the
viewers' senders then re-encode: a full transcode per viewer. Real forwarding instead:

- `tap_receiver` replaces a receiver's decoder queue by one that passes the re-assembled encoded frames
  (depayloaded H.264 access units in Annex B, or Opus packets) to the relay and never to the decoder, which
  then idles, and its jitter buffer by one that releases a frame as soon as it is complete;
- `ForwardTrack.bind` replaces a viewer's sender loop by one that writes each frame's RTP packets (packetized
  once per stream, as aiortc's encoders pack them) straight to the viewer's SRTP session and ICE pair.

This uses private attributes of aiortc (checked when tapping and binding, and by the tests): pin aiortc,
and re-check on upgrade.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import time
from collections.abc import Callable
from struct import pack, unpack_from

from aioice.ice import StunProtocol
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rate import INTER_ARRIVAL_SHIFT, TIMESTAMP_GROUP_LENGTH_MS, TIMESTAMP_TO_MS, InterArrival
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RtpPacket, pack_header_extensions
from aiortc.utils import uint16_add, uint16_gt

from temoin import errors
from temoin.live.plane import NAL_IDR, NAL_PPS, NAL_SPS, EncodedFrame

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
GROUP_LENGTH = (TIMESTAMP_GROUP_LENGTH_MS << INTER_ARRIVAL_SHIFT) // 1000  # aiortc's, in its send-time units


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
        self._last: tuple[int, int] | None = None  # (sequence number, timestamp) of the last packet added
        self._scan = True  # whether a frame may have completed since the last look
        self.skipped = 0  # frames given up

    def add(self, packet):  # (PLI wanted, complete frame), as aiortc's
        seq = packet.sequence_number
        if self._highest is None or uint16_gt(seq, self._highest):
            self._highest = seq
        # A video packet that only continues the frame in progress (next in sequence, same timestamp, no marker)
        # completes nothing: the buffer is not looked through again (it was, for every packet: 30 % of the
        # relay's receive path at 720p).
        last, self._last = self._last, (seq, packet.timestamp)
        self._scan = (
            not self._is_video
            or packet.marker
            or last is None
            or packet.timestamp != last[1]
            or seq != uint16_add(last[0], 1)
        )
        pli, frame = super().add(packet)
        if self._want_keyframe:
            self._want_keyframe, pli = False, True
        return pli, frame

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if not self._scan and self._stalled_at is None:
            return None
        frame, gap = self._head()
        if frame is not None or gap is None:
            self._stalled_at = None
            self._scan = frame is not None  # another may be complete behind it (`_Tap` asks again)
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
        seq = packet.sequence_number
        if not self._waiting and not self._asked and self.max_seq is not None and seq == uint16_add(self.max_seq, 1):
            # The usual packet: the next one, nothing missing. The same as below, without the bookkeeping.
            self._tokens = min(float(self.burst), self._tokens + self.share)
            self.max_seq = seq
            if self.missing:
                self.missing = set()
            return False
        now = self.clock()
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

    It also hands the estimator each burst of packets (a frame, as a camera sends it) as one: aiortc's estimator
    groups them so anyway (`InterArrival`, the webrtc.org rule: sent within 5 ms, or arriving as a burst), and its
    delay filter sees only the groups, but it also updated its bitrate window and its rate control at every packet,
    12 % of the relay's media thread. A group reaches it when the next one begins: one frame later.

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
        # aiortc's own grouping (`InterArrival`, the webrtc.org rule: sent within 5 ms, or arriving as a burst), run
        # here to know when a burst is over; the estimator then gets it as one packet.
        self._groups = InterArrival(GROUP_LENGTH, TIMESTAMP_TO_MS)

    def add(self, *, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int):
        """aiortc's keyword arguments; returns its (bitrate, ssrcs) or None."""
        gathering = self._groups.current_group
        self._groups.compute_deltas(abs_send_time << 8, arrival_time_ms, payload_size)
        if gathering is None or self._groups.current_group is gathering:
            return None
        # `gathering` is over (this packet began the next): send times in aiortc's units (abs-send-time << 8).
        assert gathering.last_timestamp is not None and gathering.arrival_time is not None, "it had packets"
        estimate = self.inner.add(
            arrival_time_ms=gathering.arrival_time,
            abs_send_time=gathering.last_timestamp >> 8,
            payload_size=gathering.size,
            ssrc=ssrc,
        )
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
        self._mimes: dict[int, str] = {}  # aiortc builds `mimeType` anew at each call

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None, block, timeout)
            return
        codec, frame = item
        mime = self._mimes.get(codec.payloadType) or self._mimes.setdefault(codec.payloadType, codec.mimeType.lower())
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


def packetize(kind: str, data: bytes) -> list[bytes]:
    """RTP payloads of one encoded frame, as aiortc's encoders pack them (H.264: single NAL units, STAP-A and
    FU-A, RFC 6184; Opus: the packet as is). Done once per frame for all the viewers of a stream."""
    if kind == "video":
        return H264Encoder._packetize(H264Encoder._split_bitstream(data))
    return [data]


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (as aiortc's `clock.current_ntp_time`, without its datetimes)."""
    return int((time.time() + NTP_UNIX_OFFSET) * (1 << 32))


class ForwardTrack(MediaStreamTrack):
    """The outgoing track of one viewer: aiortc negotiates it like any track, then `bind` gives its sender a
    lighter loop. aiortc's own pulls each frame from `recv` through a queue and a task switch, packs it again for
    every viewer, builds a packet object per RTP packet and sends it down four coroutines: most of the relay's
    CPU (profiled, bench/live). Once bound, `push` writes the frame's RTP packets (packetized once per stream,
    `packetize`) straight to this viewer's SRTP session and ICE pair, from the relay's receive path. aiortc's
    sender still answers the viewer's RTCP: its NACKs from this track's history (RTX when negotiated), its
    PLI/FIR through `on_keyframe_request`, and its sender reports from the counts kept here.

    Video starts at a keyframe (asked for as long as pictures arrive without one); what arrives before the
    connection is up is held from the last keyframe on and sent at once when it is; output timestamps stay
    monotonic across publisher reconnections; when the viewer's socket cannot take more, video is dropped
    until the next keyframe (asked for) and audio until it drains.
    """

    def __init__(self, kind: str, need_keyframe: Callable[[], None], max_queue: int = 120) -> None:
        super().__init__()
        self.kind = kind
        self._need_keyframe = need_keyframe
        self._max_queue = max_queue
        self._held: list[EncodedFrame] = []  # before the connection is up
        self._waiting_key = kind == "video"
        self._clock = Continuity(kind)
        self._out: _RtpOut | None = None  # once the viewer's connection is up
        self.sent = 0  # frames sent
        self.dropped = 0  # frames dropped because the viewer's socket was full

    def bind(self, sender: RTCRtpSender) -> None:
        """Take over `sender`'s RTP loop (call after setRemoteDescription, before the connection starts)."""
        _RtpOut.check(sender)
        sender._run_rtp = lambda codec: self._run(sender, codec)  # type: ignore[method-assign]  # see the class

    @property
    def held(self) -> int:
        """Frames held until the viewer's connection is up."""
        return len(self._held)

    def restart(self) -> None:
        """A new publisher took over: video waits for its first keyframe."""
        self._waiting_key = self.kind == "video"

    def push(self, frame: EncodedFrame, payloads: list[bytes] | None = None) -> None:
        if self.readyState != "live":
            return
        if self._waiting_key:
            if not frame.keyframe:
                # Ask again while pictures flow without one (the stream caps PLIs at one per 300 ms): the
                # request made when this viewer joined may have reached no publisher yet (a viewer joining on
                # the alert, before the camera's media), or its keyframe may have been lost on the uplink.
                # Without this, the viewer would wait for the camera's next periodic one (measured: 4-6 s
                # at 5 % loss, bench/live/impaired.py).
                self._need_keyframe()
                return
            self._waiting_key = False
        out = self._out
        if out is None:  # not connected yet: keep from the last keyframe on, within bounds
            if len(self._held) >= self._max_queue:
                self._held.clear()
                if self.kind == "video" and not frame.keyframe:
                    self._waiting_key = True
                    self._need_keyframe()
                    return
            self._held.append(frame)
            return
        if out.congested():  # nothing more into a full socket: video then resumes at a keyframe (asked for)
            self.dropped += 1
            if self.kind == "video" and not self._waiting_key:
                self._waiting_key = True
                self._need_keyframe()
            return
        out.send(self._clock.map(frame), payloads if payloads is not None else packetize(self.kind, frame.data))
        self.sent += 1

    def finish(self) -> None:
        self.stop()

    async def recv(self):  # never called once bound: the sender's loop is `_run`
        raise MediaStreamError

    async def _run(self, sender: RTCRtpSender, codec) -> None:
        started, exited = getattr(sender, _RTP_STARTED), getattr(sender, _RTP_EXITED)
        started.set()
        try:
            self._out = _RtpOut(sender, codec)
            held, self._held = self._held, []
            for frame in held:
                self.push(frame)
            ended = asyncio.get_running_loop().create_future()

            def end() -> None:
                if not ended.done():
                    ended.set_result(None)

            self.on("ended", end)
            if self.readyState == "live":
                await ended
        except asyncio.CancelledError:
            pass
        except Exception:  # as aiortc's loop: `RTCRtpSender.stop` waits for the exit, so never skip it
            log.exception("live relay: a viewer's RTP sender")
        finally:
            self._out = None
            self.stop()
            exited.set()


_RTP_STARTED = "_RTCRtpSender__rtp_started"
_RTP_EXITED = "_RTCRtpSender__rtp_exited"
_SENDER_ATTRS = (
    _RTP_STARTED,
    _RTP_EXITED,
    "_RTCRtpSender__mid",
    "_RTCRtpSender__rtp_header_extensions_map",
    "_RTCRtpSender__rtx_payload_type",
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
    "_ssrc",
    "_rtx_ssrc",
    "_retransmit",
)
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)
CONGESTED_BYTES = 512 * 1024  # datagrams the viewer's socket could not take yet, waiting in asyncio's buffer
HISTORY = 256  # RTP packets kept per viewer for retransmission: about 1 s of 720p at 2 Mbit/s (4G: ~10 round trips)


def header_extension(mid: tuple[int, bytes] | None, abs_send_time_id: int | None, ntp: int) -> bytes:
    """The RTP header extension block (RFC 8285) aiortc's senders put on every packet: the MID (BUNDLE) and the
    abs-send-time (the viewer's bandwidth estimator reads it), whichever the viewer negotiated."""
    elements = [mid] if mid else []
    if abs_send_time_id:
        elements.append((abs_send_time_id, pack("!L", (ntp >> 14) & 0xFFFFFF)[1:]))
    profile, value = pack_header_extensions(elements)
    return pack("!HH", profile, len(value) // 4) + value if profile else b""


def rtp_packet(pt: int, marker: bool, seq: int, timestamp: int, ssrc: int, extension: bytes, payload: bytes) -> bytes:
    """One RTP packet (RFC 3550), unencrypted: version 2, no padding, no CSRC; X set when `extension` is given."""
    first = 0x90 if extension else 0x80
    return pack("!BBHII", first, (0x80 if marker else 0) | pt, seq, timestamp, ssrc) + extension + payload


def rtx_packet(packet: bytes, head: int, rtx_pt: int, rtx_seq: int, rtx_ssrc: int) -> bytes:
    """The retransmission of `packet` (whose header is `head` bytes long) on the RTX stream (RFC 4588): same
    timestamp, marker and extensions, then the original sequence number before the original payload."""
    seq, timestamp = unpack_from("!HI", packet, 2)
    return (
        pack("!BBHII", packet[0], (packet[1] & 0x80) | rtx_pt, rtx_seq, timestamp, rtx_ssrc)
        + packet[12:head]
        + pack("!H", seq)
        + packet[head:]
    )


class _RtpOut:
    """One viewer's RTP stream, written to its DTLS transport's SRTP session and its ICE pair directly."""

    @staticmethod
    def check(sender: RTCRtpSender) -> None:
        missing = [a for a in _SENDER_ATTRS if not hasattr(sender, a)]
        dtls = sender.transport
        missing += [f"transport.{a}" for a in ("_state", "_tx_srtp") if not hasattr(dtls, a)]
        if not hasattr(getattr(getattr(dtls, "transport", None), "_connection", None), "_nominated"):
            missing.append("transport.transport._connection._nominated")
        if missing:
            raise UnsupportedAiortc(
                f"this aiortc version has no RTCRtpSender.{', '.join(missing)}: the relay's RTP sending must be "
                "adapted to it (temoin.live.forwarding.ForwardTrack)"
            )

    def __init__(self, sender: RTCRtpSender, codec) -> None:
        self.sender = sender
        dtls = sender.transport
        self.dtls = dtls
        self.srtp = dtls._tx_srtp
        self.connection = dtls.transport._connection  # aioice's
        self.ssrc, self.rtx_ssrc = sender._ssrc, sender._rtx_ssrc
        self.pt = codec.payloadType
        self.rtx_pt = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]  # checked: `check`
        ids = sender._RTCRtpSender__rtp_header_extensions_map._HeaderExtensionsMap__ids  # type: ignore[attr-defined]  # `check`
        mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]  # private, checked by `check`
        self.mid = (ids.mid, mid.encode()) if ids.mid and mid else None
        self.abs_send_time_id = ids.abs_send_time
        self.seq = random.getrandbits(16)
        self.rtx_seq = random.getrandbits(16)
        self.ts_origin = random.getrandbits(32)
        self.history: list[tuple[int, bytes, int] | None] = [None] * HISTORY  # (seq, packet, its header's length)
        sender._retransmit = self.retransmit  # type: ignore[method-assign]  # the viewer's NACKs: from here

    def congested(self) -> bool:
        pair = self.connection._nominated.get(1)
        transport = getattr(pair.protocol, "transport", None) if pair else None
        return transport is not None and transport.get_write_buffer_size() > CONGESTED_BYTES

    def send(self, timestamp: int, payloads: list[bytes]) -> None:
        if self.dtls._state is not DtlsState.CONNECTED:  # not `.state`: it formats an enum at each call
            return
        pair = self.connection._nominated.get(1)
        if pair is None:
            return
        ntp = ntp_now()
        extension = header_extension(self.mid, self.abs_send_time_id, ntp)
        timestamp = (self.ts_origin + timestamp) & 0xFFFFFFFF
        seq, last, octets = self.seq, len(payloads) - 1, 0
        write = self._writer(pair)
        for i, payload in enumerate(payloads):
            packet = rtp_packet(self.pt, i == last, seq, timestamp, self.ssrc, extension, payload)
            self.history[seq % HISTORY] = (seq, packet, 12 + len(extension))
            write(self.srtp.protect(packet))
            seq = (seq + 1) & 0xFFFF
            octets += len(payload)
        self.seq = seq
        # What aiortc's sender reports in its RTCP sender reports (lip sync, statistics).
        s = self.sender
        s._RTCRtpSender__ntp_timestamp, s._RTCRtpSender__rtp_timestamp = ntp, timestamp  # type: ignore[attr-defined]  # `check`
        s._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]  # private, checked by `check`
        s._RTCRtpSender__packet_count += len(payloads)  # type: ignore[attr-defined]  # private, checked by `check`

    @staticmethod
    def _writer(pair) -> Callable[[bytes], None]:
        protocol, address = pair.protocol, pair.remote_addr
        if type(protocol) is StunProtocol:  # a UDP pair: aioice's `send_data` is this one call
            transport = protocol.transport
            return lambda data: transport.sendto(data, address)
        return lambda data: asyncio.ensure_future(protocol.send_data(data, address))  # TURN: let aioice wrap it

    async def retransmit(self, sequence_number: int) -> None:
        seq = sequence_number
        kept = self.history[seq % HISTORY]
        if kept is None or kept[0] != seq or self.dtls._state is not DtlsState.CONNECTED:
            return
        _, packet, head = kept
        if self.rtx_pt is not None:
            packet = rtx_packet(packet, head, self.rtx_pt, self.rtx_seq, self.rtx_ssrc)
            self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
        pair = self.connection._nominated.get(1)
        if pair is not None:
            self._writer(pair)(self.srtp.protect(packet))
