"""The camera agent: pre-event buffer, encrypted and checkpointed device storage, triggers, offload.

Simulated clock and small synthetic pictures (160x120, 10 fps) so that a minute of camera life
takes about a second, but every segment is real H.264 encoded by PyAV.
"""

from __future__ import annotations

import io
import shutil
import stat
from datetime import timedelta
from pathlib import Path

import av
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin.camera.agent import AgentConfig, AgentState, CameraAgent
from temoin.camera.buffer import PreEventBuffer, byte_budget
from temoin.camera.clock import SimulatedClock
from temoin.camera.device_store import (KEY_FILE, DeviceStore, Notice, ReceiptRejected, _open, checkpoint_file,
                                        segment_file, verify_prefix)
from temoin.camera.gps import SimulatedWalk
from temoin.camera.keys import DeviceKeys
from temoin.camera.media import SyntheticScene
from temoin.camera.offload import VaultClient
from temoin.camera.signals import RED_DOT, GpioSignals, Led, TerminalSignals, Vibration
from temoin.camera.sources import SyntheticAudio, SyntheticVideo
from temoin.db import utcnow
from temoin.demo.commune import territory
from temoin.evidence.canonical import b64e
from temoin.evidence.manifest import NotInformedReason, SignedReceipt, Trigger
from temoin.geo.territory import contains
from temoin.vault.crypto import new_data_key, unwrap_key
from temoin.vault.models import Recording, RecordingState
from tests.helpers import agent_number, make_commune, vault_client

SEGMENT_S = 2.0


class Camera:
    """One simulated camera: keys and store under `root`, a synthetic scene, a walk, text signals."""

    def __init__(self, root: Path, *, keys: DeviceKeys | None = None, platform_key: bytes | None = None,
                 clock: SimulatedClock | None = None, camera_id: str = "cam-test", agent_id: str = "PM-0001",
                 **config) -> None:
        self.root = root
        self.clock = clock or SimulatedClock(utcnow())
        self.keys = keys or DeviceKeys.load_or_create(root / "keys")
        self.store = DeviceStore(root, self.keys, platform_key, self.clock)
        self.signals = TerminalSignals()
        scene = SyntheticScene(160, 120, fps=10, seed=3)
        start = self.clock()
        self.agent = CameraAgent(
            AgentConfig(camera_id=camera_id, agent_id=agent_id, segment_s=SEGMENT_S, **config), store=self.store,
            video=SyntheticVideo(scene, self.clock), audio=SyntheticAudio(scene, start),
            gps=SimulatedWalk(start, "Rue du Port"), signals=self.signals, clock=self.clock)

    def plaintext(self, recording_id: str, index: int) -> bytes:
        """Test-only decryption with the device's storage key (the agent has no such API)."""
        folder = self.store.folder(recording_id)
        key = unwrap_key(self.keys.storage_key, (folder / KEY_FILE).read_bytes(), recording_id)
        return _open(key, (folder / segment_file(index)).read_bytes())


def has_audio(data: bytes) -> bool:
    with av.open(io.BytesIO(data)) as container:
        return bool(container.streams.audio)


def test_pre_event_buffer_becomes_the_start_of_the_recording(tmp_path: Path) -> None:
    cam = Camera(tmp_path, pre_event_s=6, beep_interval_s=2)
    agent = cam.agent
    agent.run_for(13)
    assert agent.state is AgentState.STANDBY
    assert not any(cam.store.recordings_dir.iterdir())  # standby leaves nothing on disk
    assert f"{RED_DOT}" not in cam.signals.status_line(cam.clock())
    pressed = cam.clock()
    rid = agent.press_record()
    assert agent.state is AgentState.RECORDING and cam.signals.current_led is Led.RECORDING
    agent.run_for(5)
    assert cam.signals.status_line(cam.clock()).startswith(f"{RED_DOT} REC 00:00:05")
    signed = agent.press_record()
    assert agent.state is AgentState.STANDBY
    m = signed.manifest
    assert m.recording_id == rid and signed.verify(cam.keys.public_key)
    # The first segment starts (about) the buffer's length before the press, never earlier.
    lead = (pressed - m.started_at).total_seconds()
    assert 6 - SEGMENT_S < lead <= 6
    assert m.pre_event_buffer_s == pytest.approx(lead, abs=1e-3)
    # No gap: each segment starts where the previous one ended, through the press.
    for a, b in zip(m.segments, m.segments[1:]):
        assert abs((b.started_at - (a.started_at + timedelta(seconds=a.duration_s))).total_seconds()) < 1e-3
    assert m.ended_at >= pressed + timedelta(seconds=5)
    # The buffered segments are video only (default); from the press on there is sound.
    pre = [s.index for s in m.segments if s.started_at < pressed]
    post = [s.index for s in m.segments if s.started_at >= pressed]
    assert pre and post
    assert not any(has_audio(cam.plaintext(rid, i)) for i in pre)
    assert all(has_audio(cam.plaintext(rid, i)) for i in post)
    assert m.trigger is Trigger.INCIDENT and m.persons_informed
    # GPS: a fix per second while recording, inside the commune's territory.
    recorded = [f.t for f in m.gps_track if f.t >= pressed]
    assert len(recorded) >= 5
    assert all(0.9 <= (b - a).total_seconds() <= 1.1 for a, b in zip(recorded, recorded[1:]))
    assert all(contains(territory(), f.lat, f.lon) for f in m.gps_track)
    # Steady red light and a beep at start, then every beep interval (2 s here).
    assert cam.signals.beeps == 3
    assert "led red-steady" in cam.signals.events and f"vibrate {Vibration.RECORDING_STARTED}" in cam.signals.events
    assert cam.signals.current_led is Led.STANDBY
    assert cam.store.pending() == [rid]


def test_pre_event_buffer_memory_is_bounded(tmp_path: Path) -> None:
    # A tight budget: the buffer gives up its oldest segments rather than exceed bitrate x duration.
    tight = Camera(tmp_path / "tight", pre_event_s=10, buffer_bitrate_bps=24_000)
    assert tight.agent.buffer.max_bytes == byte_budget(10, 24_000) == 30_000
    roomy = Camera(tmp_path / "roomy", pre_event_s=10)
    for _ in range(int(20 * 10)):  # 20 s at 10 fps
        tight.agent.step()
        roomy.agent.step()
        assert tight.agent.buffer.bytes <= tight.agent.buffer.max_bytes
        assert roomy.agent.buffer.duration_s <= 10
    assert tight.agent.buffer.evicted > 0 and tight.agent.buffer.duration_s < 10
    assert 10 - SEGMENT_S <= roomy.agent.buffer.duration_s <= 10
    # Without a buffer nothing is encoded in standby.
    off = Camera(tmp_path / "off", pre_event_s=0)
    off.agent.run_for(5)
    assert len(off.agent.buffer) == 0 and off.agent._writer is None
    with pytest.raises(ValueError, match="0 to 120"):
        PreEventBuffer(121)


def test_segments_are_encrypted_and_a_destroyed_camera_leaves_a_verifiable_prefix(tmp_path: Path) -> None:
    cam = Camera(tmp_path / "camera", pre_event_s=2)
    cam.agent.run_for(3)
    pressed = cam.clock()
    rid = cam.agent.press_record(notice=Notice.not_told(NotInformedReason.CIRCUMSTANCES, "fight in progress"))
    cam.agent.run_for(7)
    folder = cam.store.folder(rid)
    del cam.agent  # destroyed mid-recording: never stopped, never finalised

    for path in folder.iterdir():
        content = path.read_bytes()
        assert b"ftyp" not in content and b"mdat" not in content and b"moof" not in content, path.name
        assert b'"lat"' not in content, path.name  # the GPS fixes are sealed too
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for key_file in (cam.root / "keys").iterdir():
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    prefix = verify_prefix(folder, cam.keys.public_key)  # the public key alone
    assert prefix.ok and not prefix.finalised, prefix.problems
    # Only the segment being encoded when it was destroyed (at most SEGMENT_S) is lost.
    end = prefix.segments[-1].started_at + timedelta(seconds=prefix.segments[-1].duration_s)
    assert len(prefix.segments) >= 4 and end >= pressed + timedelta(seconds=7 - SEGMENT_S)
    assert prefix.header.trigger is Trigger.INCIDENT and prefix.header.agent_id == "PM-0001"
    assert prefix.notice.not_informed_detail == "fight in progress"
    assert verify_prefix(folder, cam.keys.public_key, cam.keys.storage_key).ok  # and decrypted
    assert not verify_prefix(folder, Ed25519PrivateKey.generate().public_key().public_bytes_raw()).ok

    def damaged(name: str) -> Path:
        copy = tmp_path / name / rid
        shutil.copytree(folder, copy)
        return copy

    gap = damaged("gap")
    (gap / segment_file(1)).unlink()
    (gap / checkpoint_file(1)).unlink()
    broken = verify_prefix(gap, cam.keys.public_key)
    assert not broken.ok and len(broken.segments) == 1 and "after the verified prefix" in broken.problems[0]

    altered = damaged("altered")
    blob = bytearray((altered / segment_file(2)).read_bytes())
    blob[-5] ^= 1
    (altered / segment_file(2)).write_bytes(bytes(blob))
    broken = verify_prefix(altered, cam.keys.public_key)
    assert not broken.ok and len(broken.segments) == 2 and "altered" in broken.problems[0]

    # Power cut between a segment and its checkpoint: an interruption, not tampering.
    last = len(prefix.segments) - 1
    (folder / checkpoint_file(last)).unlink()
    cut = verify_prefix(folder, cam.keys.public_key)
    assert cut.ok and len(cut.segments) == last and cut.interrupted

    # The camera restarts: what it kept is finalised (the cut segment adopted) and ready to offload.
    reborn = Camera(tmp_path / "camera", keys=cam.keys, clock=cam.clock)
    [manifest] = reborn.agent.recovered
    assert manifest.manifest.recording_id == rid and len(manifest.manifest.segments) == last + 1
    assert manifest.manifest.segments[:last] == cut.segments
    assert not manifest.manifest.persons_informed
    assert reborn.store.pending() == [rid] and verify_prefix(folder, cam.keys.public_key).finalised


def test_taser_armed_starts_an_automatic_recording(tmp_path: Path) -> None:
    cam = Camera(tmp_path, pre_event_s=2)
    cam.agent.run_for(3)
    rid = cam.agent.trigger_input("taser", active=True)
    assert cam.agent.state is AgentState.RECORDING and rid
    assert f"vibrate {Vibration.AUTOMATIC_TRIGGER}" in cam.signals.events
    cam.agent.run_for(2)
    assert cam.agent.trigger_input("taser", active=False) is None
    assert cam.agent.state is AgentState.RECORDING  # disarming does not stop it: only the wearer does
    signed = cam.agent.stop_recording()
    m = signed.manifest
    assert m.trigger is Trigger.AUTOMATIC and "R511-28" in m.trigger_detail
    assert not m.persons_informed and m.not_informed_reason is NotInformedReason.CIRCUMSTANCES
    # The wearer then says the people were told: the next recording keeps that.
    cam.agent.trigger_input("taser", active=True)
    cam.agent.run_for(1)
    cam.agent.inform(Notice.told())
    assert cam.agent.stop_recording().manifest.persons_informed
    with pytest.raises(ValueError, match="unknown input"):
        cam.agent.trigger_input("siren", active=True)


def test_gpio_signals_say_what_to_wire() -> None:
    with pytest.raises(NotImplementedError, match="red LED"):
        GpioSignals()


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("vault unreachable", request=request)


def test_offload_deletes_the_local_copy_only_after_a_valid_receipt(platform, client, tmp_path: Path) -> None:
    commune = make_commune(platform, cameras=1)
    device_id, device_key = commune.cameras[0]
    keys = DeviceKeys(signing_key=device_key, storage_key=new_data_key())
    cam = Camera(tmp_path / "camera", keys=keys, platform_key=platform.keyring.public_key, camera_id=device_id,
                 agent_id=agent_number(commune), pre_event_s=2)
    cam.agent.run_for(3)
    done = cam.agent.press_record()
    cam.agent.run_for(3)
    cam.agent.stop_recording()
    cut = cam.agent.trigger_input("taser", active=True)
    cam.agent.run_for(5)
    del cam.agent  # this one is cut short by a crash, then recovered at restart
    cam = Camera(tmp_path / "camera", keys=keys, platform_key=platform.keyring.public_key, camera_id=device_id,
                 agent_id=agent_number(commune), clock=cam.clock)
    assert sorted(cam.store.pending()) == sorted([done, cut])

    def kept(outcome) -> None:  # noqa: ANN001
        assert set(outcome.kept) == {done, cut} and not outcome.sent
        assert all(cam.store.folder(r).exists() and cam.store.receipt(r) is None for r in (done, cut))

    # The upload fails: everything stays.
    unreachable = httpx.Client(base_url="http://vault.invalid", transport=httpx.MockTransport(_unreachable))
    offline = VaultClient("http://vault.invalid", device_id, device_key, platform.keyring.public_key,
                          http=unreachable)
    kept(cam.agent.offload(offline))
    assert cam.signals.current_led is Led.ATTENTION
    # The receipt is signed by another key than the pinned platform key: everything stays.
    impostor = VaultClient(str(client.base_url), device_id, device_key,
                           Ed25519PrivateKey.generate().public_key().public_bytes_raw(), http=client)
    kept(cam.agent.offload(impostor))

    # The store checks the receipt itself, whatever the sender claims.
    vc = vault_client(platform, client, commune.cameras[0])
    genuine = vc.complete(cut)
    forger = Ed25519PrivateKey.generate()
    forged = SignedReceipt(receipt=genuine.receipt, signature=b64e(forger.sign(genuine.receipt.signing_bytes())))
    with pytest.raises(ReceiptRejected, match="not signed by the platform"):
        cam.store.hand_over(cut, lambda signed, segments: forged)
    with pytest.raises(ReceiptRejected, match="another recording"):
        cam.store.hand_over(done, lambda signed, segments: genuine)  # valid, but for the other recording
    assert cam.store.folder(cut).exists() and cam.store.folder(done).exists()

    outcome = cam.agent.offload(vc)
    assert set(outcome.sent) == {done, cut} and not outcome.kept
    assert cam.store.pending() == [] and not any(cam.store.recordings_dir.iterdir())
    for rid in (done, cut):
        receipt = cam.store.receipt(rid)
        assert receipt is not None and receipt.verify(platform.keyring.public_key)
    with platform.session() as db:
        first, second = db.get(Recording, done), db.get(Recording, cut)
        assert first.state == second.state == RecordingState.STORED
        assert first.trigger == Trigger.INCIDENT and second.trigger == Trigger.AUTOMATIC
        assert not second.persons_informed and second.not_informed_reason == NotInformedReason.CIRCUMSTANCES
        assert first.agent_user_id is not None
