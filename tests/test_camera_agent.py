"""The camera agent: pre-event buffer, encrypted and checkpointed device storage, triggers, offload;
its settings from the platform (wearer, clock, territory), the live button, local trigger inputs,
and its picture sources (a video file, a V4L2 camera that is not there).

Simulated clock and small synthetic pictures (160x120, 10 fps) so that a minute of camera life
takes about a second, but every segment is real H.264 encoded by PyAV.
"""

from __future__ import annotations

import io
import shutil
import stat
import threading
import time
from datetime import timedelta
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from temoin.camera import device_sealing, device_verify, device_writer
from temoin.camera.agent import CameraAgent
from temoin.camera.agent_config import AgentConfig, AgentState
from temoin.camera.buffer import PreEventBuffer, byte_budget
from temoin.camera.clock import SimulatedClock
from temoin.camera.device_store import (
    KEY_FILE,
    DeviceStore,
    Notice,
    ReceiptRejected,
    _open,
    checkpoint_file,
    segment_file,
    verify_prefix,
)
from temoin.camera.gps import SimulatedWalk
from temoin.camera.inputs import InputQueue, InputServer, flag
from temoin.camera.keys import DeviceKeys
from temoin.camera.media import SyntheticScene, encode_recording
from temoin.camera.offload import SegmentFile, VaultClient, build_manifest
from temoin.camera.platform_link import DRIFT_FLAG_MS, UNASSIGNED, CameraSettings, PlatformLink
from temoin.camera.signals import RED_DOT, GpioSignals, Led, TerminalSignals, Vibration
from temoin.camera.sources import (
    DeviceAudio,
    FileVideo,
    SourceError,
    SourceSpec,
    SyntheticAudio,
    SyntheticVideo,
    open_sources,
    parse_source,
)
from temoin.db import utcnow
from temoin.demo.commune import territory
from temoin.evidence.canonical import b64e
from temoin.evidence.crypto import new_data_key, unwrap_key
from temoin.evidence.manifest import GpsFix, NotInformedReason, SignedReceipt, Trigger
from temoin.geo.territory import contains
from temoin.identity import shifts
from temoin.identity.models import Device, User
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.vault.ingest import CLOCK_DRIFT_FLAG_MS
from temoin.vault.models import Recording, RecordingState
from tests.helpers import agent_number, make_commune, vault_client

SEGMENT_S = 2.0


class Camera:
    """One simulated camera: keys and store under `root`, a synthetic scene, a walk, text signals."""

    def __init__(
        self,
        root: Path,
        *,
        keys: DeviceKeys | None = None,
        platform_key: bytes | None = None,
        clock: SimulatedClock | None = None,
        camera_id: str = "cam-test",
        agent_id: str = "PM-0001",
        settings: CameraSettings | None = None,
        **config,
    ) -> None:
        self.root = root
        self.clock = clock or SimulatedClock(utcnow())
        self.keys = keys or DeviceKeys.load_or_create(root / "keys")
        self.store = DeviceStore(root, self.keys, platform_key, self.clock)
        self.signals = TerminalSignals()
        scene = SyntheticScene(160, 120, fps=10, seed=3)
        start = self.clock()
        self.agent = CameraAgent(
            AgentConfig(camera_id=camera_id, agent_id=agent_id, segment_s=SEGMENT_S, **config),
            store=self.store,
            video=SyntheticVideo(scene, self.clock),
            audio=SyntheticAudio(scene, start),
            gps=SimulatedWalk(start, "Rue du Port"),
            signals=self.signals,
            clock=self.clock,
            settings=settings,
        )

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
    for _ in range(20 * 10):  # 20 s at 10 fps
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
    cam = Camera(
        tmp_path / "camera",
        keys=keys,
        platform_key=platform.keyring.public_key,
        camera_id=device_id,
        agent_id=agent_number(commune),
        pre_event_s=2,
    )
    cam.agent.run_for(3)
    done = cam.agent.press_record()
    cam.agent.run_for(3)
    cam.agent.stop_recording()
    cut = cam.agent.trigger_input("taser", active=True)
    cam.agent.run_for(5)
    del cam.agent  # this one is cut short by a crash, then recovered at restart
    cam = Camera(
        tmp_path / "camera",
        keys=keys,
        platform_key=platform.keyring.public_key,
        camera_id=device_id,
        agent_id=agent_number(commune),
        clock=cam.clock,
    )
    assert sorted(cam.store.pending()) == sorted([done, cut])

    def kept(outcome) -> None:
        assert set(outcome.kept) == {done, cut} and not outcome.sent
        assert all(cam.store.folder(r).exists() and cam.store.receipt(r) is None for r in (done, cut))

    # The upload fails: everything stays.
    unreachable = httpx.Client(base_url="http://vault.invalid", transport=httpx.MockTransport(_unreachable))
    offline = VaultClient("http://vault.invalid", device_id, device_key, platform.keyring.public_key, http=unreachable)
    kept(cam.agent.offload(offline))
    assert cam.signals.current_led is Led.ATTENTION
    # The receipt is signed by another key than the pinned platform key: everything stays.
    impostor = VaultClient(
        str(client.base_url),
        device_id,
        device_key,
        Ed25519PrivateKey.generate().public_key().public_bytes_raw(),
        http=client,
    )
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


# --- issue 3: manifest details, platform settings, inputs, sources ---------------------------------


def test_manifest_carries_the_details_without_decrypting_again(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="either"):
        build_manifest(
            recording_id="rec-x", camera_id="c", agent_id="a", trigger=Trigger.INCIDENT, persons_informed=True
        )
    cam = Camera(tmp_path, pre_event_s=0)
    cam.agent.start_recording(
        Trigger.FLAGRANT_OFFENCE,
        detail="theft in progress",
        notice=Notice.not_told(NotInformedReason.FLAGRANT_OFFENCE, "suspect running"),
    )
    cam.agent.run_for(3)

    def no_decryption(*_args):
        raise AssertionError("finalising must not decrypt the segments again")

    for module in (device_sealing, device_verify, device_writer):  # each calls `_open` by its own name
        monkeypatch.setattr(module, "_open", no_decryption)
    m = cam.agent.stop_recording().manifest
    assert m.trigger_detail == "theft in progress" and m.not_informed_detail == "suspect running"
    monkeypatch.undo()
    again = build_manifest(
        recording_id=m.recording_id,
        camera_id=m.camera_id,
        agent_id=m.agent_id,
        segments=[SegmentFile(cam.plaintext(m.recording_id, s.index), s.started_at, s.duration_s) for s in m.segments],
        trigger=m.trigger,
        persons_informed=False,
        not_informed_reason=NotInformedReason.FLAGRANT_OFFENCE,
    )
    assert again.segments == m.segments  # the checkpointed entries are what the bytes give


class FixedGps:
    """A receiver that always answers the same place (here: Paris, outside the demo commune)."""

    def __init__(self, lat: float, lon: float) -> None:
        self.lat, self.lon = lat, lon

    def fix(self, at):
        return GpsFix(t=at, lat=self.lat, lon=self.lon, accuracy_m=5.0)


def test_wearer_clock_and_territory_come_from_the_platform(platform, client, tmp_path: Path) -> None:
    commune = make_commune(platform, cameras=1)
    device_id, device_key = commune.cameras[0]
    keys = DeviceKeys(signing_key=device_key, storage_key=new_data_key())
    clock = SimulatedClock(utcnow() + timedelta(seconds=5))  # this camera's clock is 5 s fast
    link = PlatformLink(
        str(client.base_url), device_id, device_key, clock=clock, cache_dir=tmp_path / "camera", http=client
    )
    settings = link.fetch()
    assert DRIFT_FLAG_MS == CLOCK_DRIFT_FLAG_MS  # the camera warns from where the vault flags
    assert settings.assignment is None and settings.agent_id == UNASSIGNED
    # RTT/2-corrected: the error is at most half the round trip (long on a loaded machine), plus the clock's tick.
    assert abs(settings.clock_offset_ms - 5000) <= settings.rtt_ms / 2 + 500, settings
    assert settings.clock_drift  # > 2 s
    assert settings.pre_event_buffer_s == 30 and settings.territory == territory()

    cam = Camera(
        tmp_path / "camera",
        keys=keys,
        platform_key=platform.keyring.public_key,
        camera_id=device_id,
        clock=clock,
        settings=settings,
    )
    assert cam.agent.buffer.seconds == 30  # the tenant's profile
    assert any("UNASSIGNED" in w for w in cam.signals.warnings)  # no shift: records anyway, and says so
    assert any(w.startswith("camera clock off by +") for w in cam.signals.warnings)
    cam.agent.run_for(2)
    unassigned = cam.agent.press_record()
    cam.agent.run_for(2)
    # Checked out while recording: the recording keeps one wearer; the next one gets the new one.
    with platform.session() as db:
        agent = db.scalar(select(User).where(User.username == commune.users[Role.AGENT]))
        shifts.check_out(platform, db, db.get(Device, device_id), agent, Actor.system("test"))
    cam.agent.apply(link.fetch())
    first = cam.agent.press_record().manifest
    assert first.recording_id == unassigned and first.agent_id == UNASSIGNED
    # The latest measure goes into the manifest (the simulated clock ran 4 s ahead of the real one since).
    assert first.clock_offset_ms == cam.agent.clock_offset_ms > 2000 and not first.outside_territory
    assert cam.agent.agent_id == agent_number(commune)
    assert any(agent_number(commune) in w for w in cam.signals.warnings)

    cam.agent.gps = FixedGps(48.8566, 2.3522)  # the wearer strays out of the commune
    second_id = cam.agent.press_record()
    cam.agent.run_for(3)
    assert cam.agent.state is AgentState.RECORDING  # never refused
    second = cam.agent.press_record().manifest
    assert second.agent_id == agent_number(commune) and second.outside_territory
    assert any("outside the authorised territory" in w for w in cam.signals.warnings)

    outcome = cam.agent.offload(vault_client(platform, client, commune.cameras[0]))
    assert set(outcome.sent) == {unassigned, second_id} and not outcome.kept
    with platform.session() as db:
        a, b = db.get(Recording, unassigned), db.get(Recording, second_id)
        assert a.agent_ref == UNASSIGNED and a.agent_user_id is None and a.clock_drift_flag
        assert b.agent_ref == agent_number(commune) and b.agent_user_id == agent.id and b.outside_territory

    # Offline: the cached settings serve, but an assignment older than a shift is not trusted.
    offline = PlatformLink(
        "http://vault.invalid",
        device_id,
        device_key,
        clock=clock,
        cache_dir=tmp_path / "camera",
        http=httpx.Client(base_url="http://vault.invalid", transport=httpx.MockTransport(_unreachable)),
    )
    cached, why = offline.current()
    assert why and "unreachable" in why and cached.agent_id == agent_number(commune)
    clock.advance(13 * 3600)
    assert offline.cached().agent_id == UNASSIGNED and offline.cached().territory == territory()

    # A camera whose signatures carry a badly wrong time measures the skew on the public endpoint.
    link.auth.clock_skew_s = 1000
    assert link.fetch().agent_id == agent_number(commune) and abs(link.auth.clock_skew_s) < 5


def test_live_button_needs_a_double_press_and_starts_recording(tmp_path: Path) -> None:
    cam = Camera(tmp_path, pre_event_s=2)
    cam.agent.run_for(3)
    assert cam.agent.press_live() is None
    cam.clock.advance(0.8)
    assert cam.agent.press_live() is None  # too slow: a new first press
    cam.clock.advance(0.3)
    rid = cam.agent.press_live()
    assert rid and cam.agent.state is AgentState.RECORDING and cam.agent.live_requested_at is not None
    assert any("live transmission" in w and "not available" in w for w in cam.signals.warnings)  # honest
    cam.agent.run_for(2)
    m = cam.agent.stop_recording().manifest
    assert m.trigger is Trigger.LIVE_REQUEST and not m.persons_informed
    assert m.not_informed_reason is NotInformedReason.CIRCUMSTANCES


def test_trigger_inputs_over_local_http_reach_the_capture_loop(tmp_path: Path) -> None:
    cam = Camera(tmp_path, pre_event_s=2)
    inputs = InputQueue()
    routes = {
        ("POST", "/trigger/"): lambda name, body: {
            "recording_id": cam.agent.trigger_input(name, flag(body, "armed", "active"))
        }
    }
    with InputServer(inputs, routes, 0) as server:
        assert server.httpd.server_address[0] == "127.0.0.1"  # loopback only
        answers: dict[str, httpx.Response] = {}

        def post(path: str, body: dict) -> None:
            answers[path] = httpx.post(f"{server.url}{path}", json=body, timeout=10)

        for path, body in (
            ("/trigger/taser", {"armed": True}),
            ("/trigger/siren", {"armed": True}),
            ("/trigger/taser", {"armed": "yes"}),
            ("/nothing", {}),
        ):
            worker = threading.Thread(target=post, args=(path, body))
            worker.start()
            while worker.is_alive():  # the capture loop runs the commands between frames
                cam.agent.step()
                inputs.run_pending()
            if path == "/trigger/taser" and body["armed"] is True:
                assert answers[path].status_code == 200, answers[path].text
                assert answers[path].json()["recording_id"] == cam.agent.recording_id
                assert cam.agent.state is AgentState.RECORDING
            elif path == "/trigger/siren":
                assert answers[path].status_code == 422 and "taser" in answers[path].json()["detail"]
            elif path == "/trigger/taser":
                assert answers[path].status_code == 422 and "true or false" in answers[path].json()["detail"]
            else:
                assert answers[path].status_code == 404 and "/trigger/" in answers[path].json()["detail"]
    assert cam.agent.stop_recording().manifest.trigger is Trigger.AUTOMATIC


def test_source_specs() -> None:
    assert parse_source("synthetic") == SourceSpec("synthetic", None, "synthetic")
    assert parse_source("file:/tmp/a+b.mp4") == SourceSpec("file", "/tmp/a+b.mp4", "none")
    assert parse_source("file:clip.mp4+synthetic") == SourceSpec("file", "clip.mp4", "synthetic")
    assert parse_source("v4l2:/dev/video0+alsa:default") == SourceSpec("v4l2", "/dev/video0", "alsa", "default")
    assert parse_source("v4l2+pulse") == SourceSpec("v4l2", "/dev/video0", "pulse", "default")
    assert parse_source("synthetic+none").audio == "none"
    for bad in ("webcam", "file:", "v4l2:video0", "synthetic+speaker"):
        with pytest.raises(ValueError):
            parse_source(bad)


def test_a_missing_device_is_named_in_the_error(tmp_path: Path) -> None:
    clock = SimulatedClock(utcnow())
    with pytest.raises(SourceError, match="no V4L2 camera at /dev/video9"):
        open_sources(parse_source("v4l2:/dev/video9"), clock)
    with pytest.raises(SourceError, match="no video file at"):
        open_sources(parse_source(f"file:{tmp_path / 'missing.mp4'}"), clock)
    with pytest.raises(SourceError, match="'no-such-mic'"):
        DeviceAudio("alsa", "no-such-mic")
    try:
        av.format.ContainerFormat("pulse")
    except ValueError:
        with pytest.raises(SourceError, match="no pulse input"):
            DeviceAudio("pulse")


def test_a_video_file_loops_as_a_source_and_records(tmp_path: Path) -> None:
    scene = SyntheticScene(160, 120, fps=10, seed=7)
    [segment] = encode_recording(scene, utcnow(), 2, segment_s=2, audio=False)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(segment.data)
    clock = SimulatedClock(utcnow())
    video = FileVideo(clip, clock)
    assert (video.width, video.height, video.fps) == (160, 120, 10)
    frames = [video.read() for _ in range(25)]
    assert video.loops == 1  # 20 frames in the file: it started again
    assert all(f.shape == (120, 160, 3) for f, _ in frames)
    assert all(abs((b - a).total_seconds() - 0.1) < 1e-6 for (_, a), (_, b) in zip(frames, frames[1:]))
    assert np.abs(frames[20][0].astype(int) - frames[0][0].astype(int)).mean() < 1  # the loop is the same clip

    store = DeviceStore(tmp_path / "camera", DeviceKeys.load_or_create(tmp_path / "keys"), None, clock)
    agent = CameraAgent(
        AgentConfig(camera_id="cam-file", agent_id="PM-0001", pre_event_s=0),
        store=store,
        video=video,
        signals=TerminalSignals(),
        clock=clock,
    )
    agent.press_record()
    agent.run_for(3)
    m = agent.press_record().manifest
    assert 2.5 <= (m.ended_at - m.started_at).total_seconds() <= 3.5 and len(m.segments) == 2


def test_a_microphone_is_read_in_the_background_and_resampled() -> None:
    # FFmpeg's generated input, paced in real time, stands in for an ALSA or PulseAudio microphone.
    mic = DeviceAudio(
        "lavfi",  # type: ignore[arg-type]  # stands in for alsa or pulse
        "sine=frequency=440:sample_rate=44100,arealtime",
    )
    mic.start(utcnow())
    try:
        time.sleep(0.4)
        frame = mic.read(utcnow())
        assert frame is not None and frame.sample_rate == 48_000 and frame.layout.name == "mono"
        assert 0.2 * 48_000 <= frame.samples <= 0.8 * 48_000
    finally:
        mic.stop()
    assert mic.error is None
