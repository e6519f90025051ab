"""The relay's own RTP sending (live.forwarding.ForwardTrack): each frame's packets written straight to the viewer's
SRTP session, packetized once per stream, instead of aiortc's sender loop. The packets must read back with aiortc's
own parser as aiortc would have written them; a viewer's NACKs must be answered from the track's history, on the RTX
stream; and a viewer on a lossy link must still get its pictures."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx

from temoin.law.access import Role
from temoin.live import forwarding
from temoin.live.plane import EncodedFrame
from temoin.platform import Platform
from tests.helpers import make_commune
from tests.live_helpers import (
    Viewer,
    _cheap_password_hashes,  # noqa: F401 - a fixture
    on_shift,
    publisher,
    server,  # noqa: F401 - a fixture
    settings,  # noqa: F401 - a fixture
    token_for,
)

MID, ABS_SEND_TIME = 4, 2


def extensions_map() -> HeaderExtensionsMap:
    mapping = HeaderExtensionsMap()
    mapping.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=MID, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=ABS_SEND_TIME, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
            ]
        )
    )
    return mapping


def test_the_relays_packets_read_back_with_aiortcs_parser_and_its_retransmissions_unwrap():
    ntp = forwarding.ntp_now()
    extension = forwarding.header_extension((MID, b"0"), ABS_SEND_TIME, ntp)
    payloads = forwarding.packetize("video", b"\x00\x00\x00\x01\x67" + b"s" * 20 + b"\x00\x00\x01\x65" + b"i" * 3000)
    assert len(payloads) >= 3  # a STAP-A or single NAL for the SPS, FU-A fragments for the picture
    packets = [
        forwarding.rtp_packet(102, i == len(payloads) - 1, 65534 + i & 0xFFFF, 4_000_000_000, 0xCAFE, extension, p)
        for i, p in enumerate(payloads)
    ]
    mapping = extensions_map()
    parsed = [RtpPacket.parse(p, mapping) for p in packets]
    assert [p.sequence_number for p in parsed] == [(65534 + i) & 0xFFFF for i in range(len(payloads))]
    assert [p.marker for p in parsed] == [0] * (len(payloads) - 1) + [1]
    assert {(p.payload_type, p.timestamp, p.ssrc) for p in parsed} == {(102, 4_000_000_000, 0xCAFE)}
    assert [p.payload for p in parsed] == payloads
    assert parsed[0].extensions.mid == "0"
    assert parsed[0].extensions.abs_send_time == (ntp >> 14) & 0xFFFFFF

    rtx = forwarding.rtx_packet(packets[-1], 12 + len(extension), 103, 7, 0xBEEF)
    wrapped = RtpPacket.parse(rtx, mapping)
    assert (wrapped.payload_type, wrapped.sequence_number, wrapped.ssrc, wrapped.marker) == (103, 7, 0xBEEF, 1)
    assert wrapped.extensions.mid == "0"
    original = unwrap_rtx(wrapped, payload_type=102, ssrc=0xCAFE)
    assert (original.sequence_number, original.timestamp, original.payload) == (
        parsed[-1].sequence_number,
        parsed[-1].timestamp,
        payloads[-1],
    )
    # No extension negotiated: a plain 12-byte header.
    bare = forwarding.rtp_packet(111, True, 1, 960, 5, forwarding.header_extension(None, None, ntp), b"opus")
    assert len(bare) == 12 + 4 and RtpPacket.parse(bare).payload == b"opus"


@pytest.mark.slow
def test_a_viewer_losing_packets_gets_them_again_and_keeps_its_pictures(
    platform: Platform, server: str, monkeypatch: pytest.MonkeyPatch
):
    """One video packet in 6 sent to the viewer is lost (the relay's write is dropped): the viewer's NACKs reach
    the relay, which sends them again from its history on the RTX stream, and the viewer's pictures keep coming."""
    lost: list[int] = []
    again: list[int] = []
    init, writer, retransmit = forwarding._RtpOut.__init__, forwarding._RtpOut._writer, forwarding._RtpOut.retransmit

    def video_lossy(self, sender, codec) -> None:
        init(self, sender, codec)
        if sender.kind == "video":
            self._writer = lossy

    def lossy(pair):
        write = writer(pair)

        def maybe(data: bytes) -> None:
            lost.append(len(lost) % 6 == 5)  # the retransmissions too
            if not lost[-1]:
                write(data)

        return maybe

    async def counted(self, sequence_number: int) -> None:
        again.append(sequence_number)
        await retransmit(self, sequence_number)

    monkeypatch.setattr(forwarding._RtpOut, "__init__", video_lossy)
    monkeypatch.setattr(forwarding._RtpOut, "retransmit", counted)
    commune = make_commune(platform)
    on_shift(platform, commune)
    token = token_for(platform, commune.users[Role.CSU_OPERATOR])

    async def story() -> None:
        camera = publisher(server, commune)
        start = await camera.start()
        viewer = Viewer(server, token)
        try:
            r = await viewer.watch(start.session_id)
            assert r.status_code == 201, r.text
            await viewer.wait_frames(video=5, audio=0)
            shown = len(viewer.frames["video"])
            await asyncio.sleep(4.0)
            pictures = len(viewer.frames["video"]) - shown
            times = [t for t, _ in viewer.frames["video"]]
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        finally:
            await viewer.close()
            await camera.stop()
            await camera.aclose()
        dropped = sum(lost)
        assert dropped > 8, dropped
        assert len(again) >= dropped * 0.8, f"{len(again)} retransmissions for {dropped} packets lost"
        assert pictures >= 4 * 15 * 0.8, f"{pictures} pictures in 4 s at 15 fps"
        assert max(gaps) < 0.5, f"frozen for {max(gaps):.2f} s"

    t0 = time.monotonic()
    asyncio.run(story())
    assert time.monotonic() - t0 < 60


def test_the_relays_jitter_buffer_releases_every_frame_in_order_whatever_the_arrival_order():
    """The relay's jitter buffer skips its look through the buffer for a packet that only continues the frame in
    progress. Whatever the order packets arrive in (reordered within and across frames, a late packet filling a
    gap, frames of one to twelve packets), every frame must still come out whole and in order, as soon as the
    packets for it and those before it are in."""
    rng = random.Random(7)
    for _ in range(200):
        frames = [[bytes([f, i]) for i in range(rng.randint(1, 12))] for f in range(30)]
        packets, seq = [], rng.randint(0, 65535)
        for f, parts in enumerate(frames):
            for i, part in enumerate(parts):
                packet = RtpPacket(
                    payload_type=96, marker=int(i == len(parts) - 1), sequence_number=seq, timestamp=f * 3000
                )
                packet._data = part
                packets.append(packet)
                seq = (seq + 1) & 0xFFFF
        for _ in range(rng.randint(0, 6)):  # a few packets late, by up to 20 places (not the first: aiortc's
            i = rng.randrange(1, len(packets))  # buffer starts at the first packet it gets, and drops older ones)
            packets.insert(min(len(packets), i + rng.randint(1, 20)), packets.pop(i))
        buffer = forwarding.EagerJitterBuffer(capacity=128, is_video=True)
        out: list = []
        missing = [len(parts) for parts in frames]  # packets not yet arrived, per frame
        for packet in packets:
            missing[packet.timestamp // 3000] -= 1
            frame = buffer.add(packet)[1]
            while frame is not None:  # as `_Tap` drains what is complete behind it
                out.append(frame)
                frame = buffer._remove_frame(0)
            whole = next((f for f, left in enumerate(missing) if left), len(frames))
            assert len(out) == whole, "a frame whole, and all before it, must leave at once"
        assert [f.data for f in out] == [b"".join(parts) for parts in frames]
        assert [f.timestamp for f in out] == [f * 3000 for f in range(30)]


def test_a_viewer_whose_socket_is_full_gets_nothing_more_then_resumes_at_a_keyframe():
    """When asyncio's buffer for the viewer's socket is over its bound (a viewer on a link slower than the
    stream), no frame is added to it, sound included; video then resumes at a keyframe, which is asked for."""

    class Out:  # the viewer's RTP stream, as `_RtpOut` (congested, send)
        def __init__(self) -> None:
            self.full, self.sent = False, []

        def congested(self) -> bool:
            return self.full

        def send(self, timestamp: int, payloads: list[bytes]) -> None:
            self.sent.append(payloads)

    asked: list[int] = []
    video = forwarding.ForwardTrack("video", lambda: asked.append(1))
    audio = forwarding.ForwardTrack("audio", lambda: None)
    out_video, out_audio = Out(), Out()
    video._out, audio._out = out_video, out_audio

    def frame(kind: str, keyframe: bool = False) -> EncodedFrame:
        data = b"\x00\x00\x00\x01\x65key" if keyframe else b"\x00\x00\x00\x01\x41delta"
        return EncodedFrame(kind, data if kind == "video" else b"opus", 0, keyframe, 1, time.time())

    video.push(frame("video", keyframe=True))
    video.push(frame("video"))
    audio.push(frame("audio"))
    assert len(out_video.sent) == 2 and len(out_audio.sent) == 1
    out_video.full = out_audio.full = True
    video.push(frame("video"))
    video.push(frame("video", keyframe=True))  # not even a keyframe goes into a full socket
    audio.push(frame("audio"))
    assert len(out_video.sent) == 2 and len(out_audio.sent) == 1 and asked
    out_video.full = out_audio.full = False
    video.push(frame("video"))  # drained: pictures that need the ones dropped are of no use
    audio.push(frame("audio"))
    assert len(out_video.sent) == 2 and len(out_audio.sent) == 2
    video.push(frame("video", keyframe=True))
    video.push(frame("video"))
    assert len(out_video.sent) == 4 and video.dropped == 2
