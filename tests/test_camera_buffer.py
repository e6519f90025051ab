"""The pre-event buffer on the camera's storage (issue #20: the camera agent under 150 MB with a full 120 s
buffer): a preallocated, nameless ring file, each segment sealed under a key that never leaves the process. What a
recording gets of it must be what was captured, whole and in order; what lies in the file must never be footage
anyone can read, nor altered footage that passes for the camera's."""

from __future__ import annotations

import errno
import os
import random
from datetime import timedelta
from pathlib import Path

import pytest

from temoin.camera import buffer_ring
from temoin.camera.agent import CameraAgent
from temoin.camera.agent_config import AgentConfig
from temoin.camera.buffer import RING_FOLDER, PreEventBuffer
from temoin.camera.buffer_ring import RingDamaged
from temoin.camera.clock import SimulatedClock
from temoin.camera.device_store import KEY_FILE, DeviceStore, _open, segment_file
from temoin.camera.keys import DeviceKeys
from temoin.camera.media import EncodedSegment, SyntheticScene
from temoin.camera.signals import TerminalSignals
from temoin.camera.sources import SyntheticVideo
from temoin.db import utcnow
from temoin.evidence.crypto import unwrap_key

SEGMENT_S = 2.0


def _camera(root: Path, pre_event_s: float = 8) -> tuple[CameraAgent, DeviceKeys]:
    clock = SimulatedClock(utcnow())
    keys = DeviceKeys.load_or_create(root / "keys")
    store = DeviceStore(root, keys, None, clock)
    agent = CameraAgent(
        AgentConfig(camera_id="cam-ring", agent_id="PM-0001", segment_s=SEGMENT_S, pre_event_s=pre_event_s),
        store=store,
        video=SyntheticVideo(SyntheticScene(160, 120, fps=10, seed=5), clock),
        signals=TerminalSignals(),
        clock=clock,
    )
    return agent, keys


def _recorded(agent: CameraAgent, keys: DeviceKeys, rid: str, index: int) -> bytes:
    folder = agent.store.folder(rid)
    key = unwrap_key(keys.storage_key, (folder / KEY_FILE).read_bytes(), rid)
    return _open(key, (folder / segment_file(index)).read_bytes())


def _ring_bytes(buffer: PreEventBuffer) -> bytes:
    ring = buffer._ring
    assert ring is not None, "the buffer should have made its ring file"
    return os.pread(ring._fd, ring.capacity, 0)


def test_the_recording_starts_with_the_buffered_footage_byte_for_byte_and_in_order(tmp_path: Path) -> None:
    agent, keys = _camera(tmp_path)
    pushed: list[EncodedSegment] = []
    push = agent.buffer.push
    agent.buffer.push = (  # type: ignore[method-assign]  # a spy on push
        lambda segment, now: (pushed.append(segment), push(segment, now))[1]
    )
    agent.run_for(31)  # the 8 s buffer goes round its file several times
    assert agent.buffer.in_memory_bytes == 0 and agent.buffer.bytes > 0  # held on the storage, not in memory
    pressed = agent.clock()
    rid = agent.press_record()
    agent.run_for(3)
    manifest = agent.press_record().manifest
    pre = [s for s in manifest.segments if s.started_at < pressed]
    assert 8 - SEGMENT_S < (pressed - pre[0].started_at).total_seconds() <= 8  # the full pre-event seconds
    assert [s.started_at for s in pre] == [s.started_at for s in pushed][-len(pre) :]  # the newest, in order
    originals = {s.started_at: s.data for s in pushed}
    for entry in pre:
        assert _recorded(agent, keys, rid, entry.index) == originals[entry.started_at]
    assert not agent.errors


def test_the_ring_file_has_no_name_is_private_and_holds_no_plaintext(tmp_path: Path) -> None:
    agent, _ = _camera(tmp_path)
    pushed: list[EncodedSegment] = []
    push = agent.buffer.push
    agent.buffer.push = (  # type: ignore[method-assign]  # a spy on push
        lambda segment, now: (pushed.append(segment), push(segment, now))[1]
    )
    agent.run_for(12)
    ring = agent.buffer._ring
    assert ring is not None
    info = os.fstat(ring._fd)
    assert info.st_nlink == 0, "the ring file must have no name: nothing else can open it, the system frees it"
    assert info.st_mode & 0o777 == 0o600
    assert info.st_size == ring.capacity  # preallocated: standby never asks the storage for more
    assert not [p for p in (tmp_path / RING_FOLDER).iterdir()], "a buffer file left with a name"
    on_disk = _ring_bytes(agent.buffer)
    for segment in pushed:
        data = segment.data
        for at in range(0, len(data) - 64, max(1, len(data) // 8)):  # the H.264 stream's bytes, anywhere
            assert data[at : at + 64] not in on_disk, "standby footage in the clear on the camera's storage"


def test_an_altered_ring_loses_that_segment_only_and_says_so(tmp_path: Path) -> None:
    agent, _ = _camera(tmp_path)
    agent.run_for(9)
    held = list(agent.buffer)
    assert len(held) >= 3
    ring = agent.buffer._ring
    assert ring is not None
    victim = held[-2]
    # Its place in the file: the ring's head less its and the newer segments' sealed bytes (no wrap yet at 9 s).
    offset = ring.head - victim.sealed_size - held[-1].sealed_size
    byte = os.pread(ring._fd, 1, offset + 10)
    os.pwrite(ring._fd, bytes([byte[0] ^ 0x01]), offset + 10)
    pressed = agent.clock()
    agent.press_record()
    agent.run_for(2)
    manifest = agent.press_record().manifest
    starts = [s.started_at for s in manifest.segments]
    assert victim.started_at not in starts  # altered footage never enters a recording
    assert held[-3].started_at in starts and held[-1].started_at in starts  # the rest of the buffer does
    assert starts == sorted(starts) and starts[-1] >= pressed
    assert any("lost" in e for e in agent.errors)
    assert [e["event"] for e in agent.store.events()].count("buffer.unreadable") == 1


def test_an_emptied_buffer_cannot_be_read_back_even_by_the_camera(tmp_path: Path) -> None:
    buffer = PreEventBuffer(60, folder=tmp_path)
    now = utcnow()
    buffer.push(EncodedSegment(0, os.urandom(5000), now, SEGMENT_S), now)
    ring = buffer._ring
    assert ring is not None
    aead_before = ring._aead
    buffer.clear()  # a wearer changed, the clock jumped: what was buffered is gone for good
    assert ring._aead is not aead_before
    with pytest.raises(RingDamaged):
        ring.read(ring._aead, 0, 0, 5000)


def test_the_ring_never_overwrites_a_segment_it_holds(tmp_path: Path) -> None:
    # Tiny segments: their tags fill the file's slack, so the file's room binds before the byte bound does.
    rng = random.Random(7)
    buffer = PreEventBuffer(120, max_bytes=100_000, folder=tmp_path)
    start = utcnow()
    originals: dict[int, bytes] = {}
    for i in range(12_000):
        at = start + timedelta(milliseconds=i)
        data = rng.randbytes(rng.randint(1, 20))
        originals[i] = data
        buffer.push(EncodedSegment(i, data, at, 0.001), at)
        assert buffer.bytes <= buffer.max_bytes
        if i % 2_000 == 1_999:
            held = list(buffer)
            assert [h.index for h in held] == list(range(held[0].index, i + 1))  # the newest, in order
            assert all(h.read().data == originals[h.index] for h in held)
    assert buffer.bytes < 80_000, "the file's room should have bound here (the test would not test the wrap)"
    buffer.close()


def test_without_storage_for_its_file_the_buffer_keeps_working_in_memory(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_bytes(b"")
    buffer = PreEventBuffer(10, folder=blocked)
    now = utcnow()
    buffer.push(EncodedSegment(0, b"x" * 1000, now, SEGMENT_S), now)
    assert buffer.in_memory_bytes == 1000
    assert [s.read().data for s in buffer.take(now)] == [b"x" * 1000]


def test_a_failing_storage_moves_the_buffer_to_memory_and_standby_goes_on(tmp_path: Path, monkeypatch) -> None:
    agent, _ = _camera(tmp_path)
    agent.run_for(5)
    on_file = list(agent.buffer)
    assert on_file and agent.buffer.in_memory_bytes == 0

    def eio(*_args: object) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(buffer_ring.os, "pwrite", eio)  # the flash fails under the ring file
    agent.run_for(4)  # standby does not stop
    monkeypatch.undo()
    assert agent.buffer.in_memory_bytes > 0
    pressed = agent.clock()
    agent.press_record()
    agent.run_for(2)
    starts = [s.started_at for s in agent.press_record().manifest.segments]
    pre = [at for at in starts if at < pressed]
    assert on_file[-1].started_at in pre and len(pre) >= 3  # what the file held and what memory took since
    assert not agent.errors
