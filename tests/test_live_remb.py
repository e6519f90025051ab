"""Paced bandwidth estimates in the relay's receiver (issue 16): aiortc sends the camera a REMB after every video
packet while its overuse detector says "overusing" (a loaded server, a jittery 4G link), hundreds of RTCP packets
a second per stream for the same figure. The relay passes on one estimate per 200 ms, and a falling one at once.
Checked on the estimator the relay really installs in an aiortc receiver (`tap_receiver`), fed as aiortc feeds it."""

from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.rate import RemoteBitrateEstimator

from temoin.live import forwarding

PACKET_MS = 5.0  # 200 packets a second: a 720p stream at 2 Mbit/s


def abs_send_time(seconds: float) -> int:
    """RFC 5450's 6.18 fixed-point seconds, 24 bits: what the camera stamps in each packet's header extension."""
    return int(seconds * (1 << 18)) & 0xFFFFFF


def feed(estimator, clock: list[float], seconds: float, queue_growth_ms: float) -> list[tuple[float, int]]:
    """The estimates the receiver would send while packets arrive for `seconds`, the link's queue growing by
    `queue_growth_ms` per packet after the first two seconds (a congested uplink). (arrival ms, bitrate) each."""
    sent, send_s, arrival_ms = [], 0.0, 1000.0
    for n in range(int(seconds * 1000 / PACKET_MS)):
        send_s += PACKET_MS / 1000
        arrival_ms += PACKET_MS + (queue_growth_ms if n * PACKET_MS > 2000 else 0.0)
        clock[0] = arrival_ms / 1000
        estimate = estimator.add(
            abs_send_time=abs_send_time(send_s), arrival_time_ms=int(arrival_ms), payload_size=1200, ssrc=1
        )
        if estimate is not None:
            sent.append((arrival_ms, estimate[0]))
    return sent


def relay_estimator(clock: list[float]):
    receiver = RTCRtpReceiver("video", type("Transport", (), {"state": "new"})())
    forwarding.tap_receiver(receiver, lambda *frame: None)
    estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator  # what aiortc calls for every video packet
    assert isinstance(estimator, forwarding.ThrottledRemb)
    estimator.clock = lambda: clock[0]
    return estimator


def test_a_congested_uplink_gets_a_few_estimates_a_second_not_one_per_packet():
    unpaced = feed(RemoteBitrateEstimator(), [0.0], 10, queue_growth_ms=0.3)
    assert len(unpaced) > 300, "aiortc alone: an estimate after (nearly) every packet once it detects overuse"
    clock = [0.0]
    paced = feed(relay_estimator(clock), clock, 10, queue_growth_ms=0.3)
    gaps = [b[0] - a[0] for a, b in zip(paced, paced[1:], strict=False)]
    falling = [b[1] < a[1] * (1 - forwarding.REMB_DROP) for a, b in zip(paced, paced[1:], strict=False)]
    # One per 200 ms at most, unless the estimate fell by more than 3 %: then the camera hears it at once.
    assert all(gap >= 200 or fell for gap, fell in zip(gaps, falling, strict=True)), list(zip(gaps, falling))
    assert len(paced) <= 10 * 1000 / 200 + sum(falling) + 1, len(paced)
    # The camera still hears the congestion: the last estimate is as low as aiortc's own.
    assert paced[-1][1] <= unpaced[-1][1] * 1.03, (paced[-1], unpaced[-1])


def test_a_clear_link_gets_the_same_estimates_as_from_aiortc_a_packet_group_later():
    """The relay hands aiortc's estimator each group of packets as one, when the next group begins: the same
    figures within 0.5 % (the incoming rate counts a group's bytes at its last packet), a group later (here
    10 ms; a frame, 40 ms at 25 fps, for a camera sending each frame in a burst)."""
    clock = [0.0]
    relay = feed(relay_estimator(clock), clock, 10, queue_growth_ms=0.0)
    alone = feed(RemoteBitrateEstimator(), [0.0], 10, queue_growth_ms=0.0)
    assert len(relay) == len(alone)
    assert all(abs(got - then) <= then * 0.005 for (_, got), (_, then) in zip(relay, alone, strict=True))
    assert all(0 <= at - then <= 50 for (at, _), (then, _) in zip(relay, alone, strict=True)), (relay, alone)


def test_a_frame_sent_in_one_burst_reaches_the_estimator_once():
    """A camera sends each 720p frame as a burst of about nine packets: aiortc's estimator groups them anyway, but
    updated its bitrate window and its rate control at each packet (12 % of the relay's media thread)."""
    clock = [0.0]
    estimator = relay_estimator(clock)
    calls = []
    inner_add = estimator.inner.add
    estimator.inner.add = lambda **packet: calls.append(packet) or inner_add(**packet)
    frames, arrival_ms = 250, 1000.0  # 10 s at 25 fps
    for frame in range(frames):
        for n in range(9):  # sent within 0.2 ms, arriving 0.1 ms apart
            clock[0] = (arrival_ms + frame * 40 + n * 0.1) / 1000
            estimator.add(
                abs_send_time=abs_send_time(frame * 0.04 + n * 0.00002),
                arrival_time_ms=int(arrival_ms + frame * 40 + n * 0.1),
                payload_size=1200,
                ssrc=1,
            )
    assert len(calls) == frames - 1  # each frame once, when the next one begins
    assert {c["payload_size"] for c in calls} == {9 * 1200}
