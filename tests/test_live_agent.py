"""The live button on a real camera agent (`CameraRuntime`: the agent, its capture loop in real time, its
live link in a thread of its own) against a real server: a double press alerts the CSU on the events channel
and streams the agent's own pictures and sound; a WHEP viewer (aiortc) decodes them; the CSU's
acknowledgement reaches the wearer's signals; stopping the recording ends the live session; the CSU ending a
session leaves the camera recording.

Small media (160x120, 10 fps); the whole test stays within a few tens of seconds per database.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from temoin.camera.agent_config import AgentState
from temoin.camera.clock import system_clock
from temoin.camera.gps import SimulatedWalk
from temoin.camera.media import SyntheticScene
from temoin.camera.runner import CameraHome, CameraRuntime
from temoin.camera.signals import TerminalSignals, Vibration
from temoin.camera.sources import SyntheticAudio, SyntheticVideo
from temoin.db import utcnow
from temoin.evidence.manifest import Trigger
from temoin.identity import devices, shifts
from temoin.identity.models import Device, User
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.live.models import LiveSession
from temoin.platform import Platform
from tests.helpers import agent_number, make_commune
from tests.live_helpers import Events, Viewer, entries, press_live_twice, server, settings, token_for, until

WIDTH, HEIGHT, FPS = 160, 120, 10


def enrolled_runtime(
    platform: Platform, url: str, slug: str, root: Path
) -> tuple[CameraRuntime, SyntheticScene, TerminalSignals]:
    """A camera enrolled over HTTP with a one-time code, checked out to the commune's agent, running the
    synthetic scene in real time."""
    with platform.session() as db:
        code = devices.create_enrolment_code(
            platform, db, platform.tenant(db, slug), label="live cam", by=Actor.system("test")
        )
    home = CameraHome(root)
    identity = home.enrol(url, code, "live-cam-1")
    with platform.session() as db:
        agent = db.scalar(select(User).where(User.username == f"{slug}-agent"))
        shifts.check_out(platform, db, db.get(Device, identity.device_id), agent, Actor.system("test"))
    scene = SyntheticScene(WIDTH, HEIGHT, fps=FPS, seed=5)
    signals = TerminalSignals()
    start = utcnow()
    runtime = CameraRuntime(
        home,
        video=SyntheticVideo(scene, system_clock, start),
        audio=SyntheticAudio(scene, start),
        gps=SimulatedWalk(start, "Rue du Port"),
        signals=signals,
        segment_s=2.0,
    )
    return runtime, scene, signals


def dominant_hz(chunks: list[np.ndarray], rate: int) -> float:
    pcm = np.concatenate(chunks).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.argmax(spectrum[1:]) + 1) * rate / len(pcm)


@pytest.mark.slow
def test_live_button_on_a_camera_agent(platform: Platform, server: str, tmp_path: Path):
    commune = make_commune(platform, cameras=0)
    operator = commune.users[Role.CSU_OPERATOR]
    token = token_for(platform, operator)
    runtime, scene, signals = enrolled_runtime(platform, server, commune.slug, tmp_path / "camera")
    assert runtime.agent.agent_id == agent_number(commune)
    device_id = runtime.identity.device_id
    loop_thread = threading.Thread(target=runtime.run, daemon=True, name="capture-loop")
    loop_thread.start()
    try:
        asyncio.run(_story(platform, server, token, operator, runtime, scene, signals, device_id))
    finally:
        runtime.stop_requested.set()
        loop_thread.join(20)
        runtime.close()
    assert not loop_thread.is_alive()

    # The journal has the whole story: the camera's request, the stream, the operator's acknowledgement, the
    # end by the camera; then the second session, ended by the CSU.
    log = entries(platform, commune.slug)
    events = [e["event"] for e in log]
    for expected in (
        "live.requested",
        "live.streaming",
        "live.viewing_started",
        "live.acknowledged",
        "live.ended",
        "live.viewing_ended",
    ):
        assert expected in events, (expected, events)
    assert [e["details"]["agent"] for e in log if e["event"] == "live.requested"] == [agent_number(commune)] * 2
    with platform.session() as db:
        rows = db.scalars(
            select(LiveSession).where(LiveSession.device_id == device_id).order_by(LiveSession.requested_at)
        ).all()
        assert [(s.state, s.end_reason) for s in rows] == [("ended", "camera_ended"), ("ended", "ended_by_csu")]
        assert rows[0].acknowledged_by == operator and rows[0].streaming_at is not None


async def _story(
    platform: Platform,
    server: str,
    token: str,
    operator: str,
    runtime: CameraRuntime,
    scene: SyntheticScene,
    signals: TerminalSignals,
    device_id: str,
) -> None:
    agent = runtime.agent
    async with Events(server, token) as events:
        await asyncio.sleep(1.0)  # the camera patrols: pre-event buffer running
        assert agent.state is AgentState.STANDBY
        pressed = time.monotonic()
        rid = await asyncio.to_thread(press_live_twice, runtime)
        assert agent.state is AgentState.RECORDING and agent.recording_id == rid

        # The CSU is alerted at once, with the agent the shift names.
        alert = await events.wait_for("alert", device_id=device_id, timeout=10)
        alert_s = time.monotonic() - pressed
        sid = alert["id"]
        assert alert["agent"] == agent.agent_id and alert["reason"] == "threat"
        assert alert["position"]["lat"] == pytest.approx(agent.last_fix.lat, abs=1e-3)
        await events.wait_for("session", id=sid, state="streaming", timeout=10)

        # A WHEP viewer decodes the agent's own pictures and sound.
        viewer = Viewer(server, token)
        r = await viewer.watch(sid)
        assert r.status_code == 201, r.text
        await viewer.wait_frames(video=20, audio=50, timeout=15)
        first_picture_s = viewer.frames["video"][0][0] - pressed
        picture = viewer.frames["video"][-1][1]
        assert (picture.width, picture.height) == (WIDTH, HEIGHT)
        decoded = picture.to_ndarray(format="rgb24").astype(np.int16)
        # The camera's street scene (its background dominates the picture), not a black or foreign one.
        same = np.abs(decoded - scene.rgb(0).astype(np.int16)).mean()
        foreign = np.abs(decoded - SyntheticScene(WIDTH, HEIGHT, fps=FPS, seed=99).rgb(0).astype(np.int16)).mean()
        assert same < 25 and same < foreign / 2, (same, foreign)
        # And its sound: the scene's 440 Hz tone, as the microphone hands it to the recording.
        await viewer.wait_frames(video=20, audio=100, timeout=10)
        sound = [
            f.to_ndarray().reshape(-1)[:: f.layout.nb_channels if f.format.is_packed else 1]
            for _, f in viewer.frames["audio"][-50:]
        ]
        rate = viewer.frames["audio"][-1][1].sample_rate
        assert abs(dominant_hz(sound, rate) - 440) < 15
        assert runtime.status()["live"] == {"session": sid, "state": "streaming", "active": True, "acknowledged": False}

        # The operator acknowledges: the wearer feels it (vibration) and sees it (the acknowledgement signal).
        async with httpx.AsyncClient(base_url=server, headers=viewer.auth) as http:
            acked = time.monotonic()
            r = await http.post(f"/api/v1/live/sessions/{sid}/ack")
            assert r.status_code == 200, r.text
            await until(lambda: agent.live_acknowledged_at is not None, 10, "the acknowledgement at the camera")
            ack_s = time.monotonic() - acked
            assert any(e.startswith("acknowledged: ") and operator in e for e in signals.events)
            assert f"vibrate {Vibration.ACKNOWLEDGED.value}" in signals.events
            assert not any("not available" in w for w in signals.warnings)

            # The agent's position reaches the CSU's map while live.
            await events.wait_for("position", id=sid, timeout=10)

            # The wearer stops recording: the live session ends, the viewer's tracks end.
            manifest = await asyncio.to_thread(lambda: runtime.inputs.submit(agent.press_record).result(20))
            assert manifest.manifest.trigger is Trigger.LIVE_REQUEST
            ended = await events.wait_for("session", id=sid, state="ended", timeout=10)
            assert ended["end_reason"] == "camera_ended"
            await until(lambda: viewer.ended >= {"video", "audio"}, 10, "the viewer's tracks ending")
            await until(lambda: not runtime.live.active, 10, "the live link going idle")
            await viewer.close()

            # Live again; this time the CSU ends the session: the camera is told and goes on recording.
            await asyncio.to_thread(press_live_twice, runtime)
            await until(lambda: any(k == "alert" and d["id"] != sid for k, d in events.items), 10, "a second alert")
            second = next(d for k, d in events.items if k == "alert" and d["id"] != sid)
            assert second["device_id"] == device_id
            await events.wait_for("session", id=second["id"], state="streaming", timeout=10)
            r = await http.post(f"/api/v1/live/sessions/{second['id']}/end")
            assert r.status_code == 200, r.text
            await until(lambda: any("ended by the CSU" in w for w in signals.warnings), 10, "the end at the camera")
            assert agent.state is AgentState.RECORDING
            await until(lambda: not runtime.live.active, 10, "the live link going idle")
            await asyncio.to_thread(lambda: runtime.inputs.submit(agent.press_record).result(20))
    print(
        f"\npress -> alert {alert_s * 1000:.0f} ms, press -> first decoded picture {first_picture_s * 1000:.0f} ms "
        f"(viewer joined after the alert), ack -> wearer {ack_s * 1000:.0f} ms"
    )


# --- the demo: a simulated camera of the fleet presses the live button --------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_demo_fleet_camera_goes_live_and_hears_the_acknowledgement(platform: Platform, server: str):
    from temoin.demo.fleet import Fleet, FleetSettings
    from temoin.demo.run import ensure_cameras, ensure_shifts, ensure_tenant

    ensure_tenant(platform)
    cameras = ensure_cameras(platform, server, 1)
    ensure_shifts(platform, cameras)
    token = token_for(platform, "csu")
    lines: list[tuple[float, str]] = []
    # The demo presses where a PTZ camera reaches the agent: here the place is "good" from the 4th look on.
    looked: list[tuple[float, float]] = []

    def live_where(lat: float, lon: float) -> bool:
        looked.append((lat, lon))
        return len(looked) > 3

    fleet_settings = FleetSettings(
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        segment_s=2,
        shift_s=120,
        stagger=False,
        first_delay_s=(100, 110),
        live_every_s=60,
        live_first_s=2,
        live_duration_s=(9, 10),
        live_where=live_where,
    )
    fleet = Fleet.build(
        [c.home for c in cameras],
        server,
        start=utcnow(),
        settings=fleet_settings,
        report=lambda label, what: lines.append((time.monotonic(), what)),
    )
    stop = threading.Event()
    runner = threading.Thread(target=fleet.run, kwargs={"seconds": 14, "realtime": True, "stop": stop}, daemon=True)

    async def csu() -> None:
        async with Events(server, token) as events:
            runner.start()
            alert = await events.wait_for("alert", timeout=15)
            assert alert["agent"] == "PM-0101" and alert["detail"] == "live button (double press)"
            assert len(looked) == 4  # it waited for the good place, then pressed once
            assert all(abs(lat - 43.56) < 0.02 and abs(lon - 4.08) < 0.02 for lat, lon in looked)  # the commune
            viewer = Viewer(server, token)
            assert (await viewer.watch(alert["id"])).status_code == 201
            await viewer.wait_frames(video=15, audio=25, timeout=10)
            # A simulated camera delivers its frames in bursts (one per tick): the stream stays regular.
            times = [t for t, _ in viewer.frames["video"]]
            assert max(b - a for a, b in zip(times[5:], times[6:], strict=False)) < 0.5
            async with httpx.AsyncClient(base_url=server, headers=viewer.auth) as http:
                assert (await http.post(f"/api/v1/live/sessions/{alert['id']}/ack")).status_code == 200
            await until(
                lambda: any(what.startswith("LIVE acknowledged") for _, what in lines),
                10,
                "the acknowledgement reported by the camera",
            )
            # The wearer stops recording a few seconds later: the live session ends.
            await events.wait_for("session", id=alert["id"], state="ended", timeout=20)
            await viewer.close()

    try:
        asyncio.run(csu())
    finally:
        stop.set()
        runner.join(30)
    said = [what for _, what in lines]
    assert any(w.startswith("LIVE button pressed twice") for w in said), said
    assert any(w.startswith("LIVE alert received by the platform") for w in said), said
    assert [r.scenario for r in fleet.records] == ["live"] and fleet.records[0].trigger is Trigger.LIVE_REQUEST


def test_csu_operator_lands_on_the_live_dashboard(platform: Platform, client):
    from tests.helpers import sign_in

    commune = make_commune(platform, cameras=0)
    sign_in(platform, client, commune.users[Role.CSU_OPERATOR])
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/live"
    assert client.get("/live").status_code == 200
    sign_in(platform, client, commune.users[Role.CHIEF])  # LIVE_VIEW too, but the recordings come first
    assert client.get("/", follow_redirects=False).headers["location"] == "/recordings"


def test_the_relay_gives_up_a_packet_lost_for_good():
    """Over a lossy uplink a packet may be lost with its retransmission: the relay must not hold every later
    frame back (aiortc's buffer would, until it overflows, ~13 s of video): it drops the broken frame, goes
    on with the next whole one and asks the camera for a keyframe."""
    from aiortc.rtp import RtpPacket

    from temoin.live.forwarding import EagerJitterBuffer

    def rtp(seq: int, ts: int, marker: int, data: bytes) -> RtpPacket:
        packet = RtpPacket(payload_type=96, marker=marker, sequence_number=seq, timestamp=ts)
        packet._data = data
        return packet

    video = EagerJitterBuffer(capacity=128, is_video=True, give_up_s=0.05)
    pli, frame = video.add(rtp(10, 3000, 1, b"a"))
    assert not pli and frame.data == b"a"
    # 11 (the next frame) is lost for good; 12 and 13 are whole frames.
    assert video.add(rtp(12, 9000, 1, b"c"))[1] is None  # held: 11 may still come (NACK, retransmission)
    time.sleep(0.06)
    pli, frame = video.add(rtp(13, 12000, 1, b"d"))
    assert pli and frame.data == b"d" and video.skipped == 1  # given up: the next whole frame, and a keyframe asked
    pli, frame = video.add(rtp(14, 15000, 1, b"e"))
    assert not pli and frame.data == b"e"
    # A late retransmission of 11 is ignored; a short gap that fills in time loses nothing.
    assert video.add(rtp(11, 6000, 1, b"b"))[1] is None
    assert video.add(rtp(16, 21000, 1, b"g"))[1] is None
    assert video.add(rtp(15, 18000, 1, b"f"))[1].data == b"f" and video.skipped == 1
    audio = EagerJitterBuffer(capacity=16, give_up_s=0.05)
    assert audio.add(rtp(1, 960, 0, b"x"))[1].data == b"x"
    assert audio.add(rtp(3, 2880, 0, b"z"))[1] is None  # 2 lost
    time.sleep(0.06)
    pli, frame = audio.add(rtp(4, 3840, 0, b"w"))
    assert not pli and frame.data == b"z"  # no keyframe for sound; 4 follows at the next drain
    assert audio._remove_frame(0).data == b"w"
