"""Bounded NACKs in the relay's receiver (issue 16, item 4): on a lossy uplink aiortc's receiver asked again for
every packet still missing at each new gap, and the retransmissions filled the camera's uplink. The relay asks
for each lost packet once, only while a retransmission can still be of use, and at most a tenth of the packets
received. Checked on the generator the relay really installs in an aiortc receiver (`tap_receiver`)."""

from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from temoin.live import forwarding


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def relay_nacks(clock: Clock):
    receiver = RTCRtpReceiver("video", type("Transport", (), {"state": "new"})())
    forwarding.tap_receiver(receiver, lambda *frame: None)
    nacks = receiver._RTCRtpReceiver__nack_generator  # what aiortc calls for every packet
    nacks.clock = clock
    return nacks


def rtp(seq: int) -> RtpPacket:
    return RtpPacket(payload_type=96, sequence_number=seq % 65536, timestamp=seq * 3000)


def feed(nacks, seqs, clock: Clock, step_s: float = 0.002) -> list[list[int]]:
    """The NACKs the receiver would send (one list of sequence numbers each) while `seqs` arrive."""
    sent = []
    for seq in seqs:
        clock.t += step_s
        if nacks.add(rtp(seq)):
            sent.append(sorted(nacks.missing))
    return sent


def test_each_lost_packet_is_asked_for_once():
    clock = Clock()
    nacks = relay_nacks(clock)
    assert feed(nacks, range(0, 10), clock) == []
    assert feed(nacks, [12], clock) == [[10, 11]]
    # A later gap asks for its own packet only, not again for 10 and 11 (aiortc's asked for all three).
    assert feed(nacks, [*range(13, 20), 21], clock) == [[20]]
    # 10's retransmission arrives; a new gap: still only the new packet.
    assert feed(nacks, [10, 22, 24], clock) == [[23]]


def test_a_packet_past_its_useful_life_is_never_asked_for():
    clock = Clock()
    nacks = relay_nacks(clock)
    nacks._tokens = 0  # no budget left: 5 waits
    feed(nacks, [1, 2, 3, 4, 6], clock)
    assert nacks.requested == 0
    clock.t += forwarding.GAP_GIVE_UP_S + 0.05  # the relay has given its frame up by now
    nacks._tokens = nacks.burst
    assert feed(nacks, [7, 8, 10], clock) == [[9]]  # 9 is asked for; 5 no longer
    assert nacks.abandoned == 1


def test_retransmissions_asked_for_stay_within_a_tenth_of_the_stream():
    clock = Clock()
    nacks = relay_nacks(clock)
    # 3,000 packets (a few seconds at 3 Mbit/s), one in five lost: far more than the uplink could resend.
    arrived = [seq for seq in range(3000) if seq % 5]
    sent = feed(nacks, arrived, clock)
    asked = sum(len(batch) for batch in sent)
    assert asked <= len(arrived) * forwarding.NACK_SHARE + forwarding.NACK_BURST, asked
    assert len({seq for batch in sent for seq in batch}) == asked  # and never twice the same
    # With little loss, every lost packet is asked for.
    clock = Clock()
    nacks = relay_nacks(clock)
    sent = feed(nacks, [seq for seq in range(3000) if seq % 100], clock)
    assert sorted(seq for batch in sent for seq in batch) == list(range(100, 3000, 100))
