"""Reinforcements reach a real camera agent: a `CameraRuntime` (the agent's capture loop in real time, its
dispatch link in threads of its own) enrolled over HTTP against a real server, checked out to an agent,
patrolling. Its position reaches the CSU's map; the CSU sends it to another agent's live alert; the camera
signals the order to its wearer (vibration, LED, the French text) and acknowledges it; the order is
acknowledged on the platform. The end of the live session cancels the order, and the wearer is told.
And a camera whose platform is out of reach records all the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from temoin.camera.clock import system_clock
from temoin.camera.dispatch import COMPASS_FR
from temoin.camera.gps import SimulatedWalk
from temoin.camera.media import SyntheticScene
from temoin.camera.offload import DeviceAuth
from temoin.camera.runner import CameraHome, CameraRuntime
from temoin.camera.signals import Led, TerminalSignals, Vibration
from temoin.camera.sources import SyntheticVideo
from temoin.db import utcnow
from temoin.identity import devices, service, shifts
from temoin.identity.models import Device, User
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.supervision.dispatch_models import ReinforcementOrder
from tests.helpers import agent_number, enrol_camera, make_commune
from tests.live_helpers import entries, server, token_for

WIDTH, HEIGHT, FPS = 160, 120, 10


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def patrolling_camera(
    platform: Platform, url: str, slug: str, root: Path, **kw
) -> tuple[CameraRuntime, TerminalSignals]:
    """A camera enrolled with a one-time code, checked out to the commune's agent, walking Rue du Port."""
    with platform.session() as db:
        code = devices.create_enrolment_code(
            platform, db, platform.tenant(db, slug), label="patrol cam", by=Actor.system("test")
        )
    home = CameraHome(root)
    identity = home.enrol(url, code, "patrol-cam-1")
    with platform.session() as db:
        agent = db.scalar(select(User).where(User.username == f"{slug}-agent"))
        shifts.check_out(platform, db, db.get(Device, identity.device_id), agent, Actor.system("test"))
    scene = SyntheticScene(WIDTH, HEIGHT, fps=FPS, seed=7)
    signals = TerminalSignals()
    start = utcnow()
    runtime = CameraRuntime(
        home,
        video=SyntheticVideo(scene, system_clock, start),
        gps=SimulatedWalk(start, "Rue du Port"),
        signals=signals,
        segment_s=2.0,
        live=False,
        **kw,
    )
    return runtime, signals


@pytest.mark.slow
def test_a_camera_agent_receives_signals_and_acknowledges_an_order(platform: Platform, server: str, tmp_path: Path):
    commune = make_commune(platform, cameras=0, authorised=3)
    runtime, signals = patrolling_camera(platform, server, commune.slug, tmp_path / "camera")
    device_id = runtime.identity.device_id
    # Another agent, another camera: the one who will need help.
    danger_id, danger_key = enrol_camera(platform, commune.slug, "danger-cam")
    with platform.session() as db:
        service.create_user(
            platform,
            db,
            platform.tenant(db, commune.slug),
            username="agent-en-danger",
            display_name="Julie Danger",
            role=Role.AGENT,
            agent_number="POR-0099",
        )
        db.commit()
        agent = db.scalar(select(User).where(User.username == "agent-en-danger"))
        shifts.check_out(platform, db, db.get(Device, danger_id), agent, Actor.system("test"))
    csu = {"Authorization": f"Bearer {token_for(platform, commune.users[Role.CSU_OPERATOR])}"}

    runtime_thread = threading.Thread(target=runtime.run, daemon=True, name="capture-loop")
    runtime_thread.start()
    try:
        with httpx.Client(base_url=server, headers=csu, timeout=30) as http:
            # The patrolling agent shows up on the CSU's map, available.
            def on_map() -> dict | None:
                mine = [a for a in http.get("/api/v1/dispatch/agents").json() if a["device_id"] == device_id]
                return mine[0] if mine and mine[0]["available"] else None

            seen = wait_until(on_map, 20, "the camera's position on the CSU's map")
            assert seen["agent"] == agent_number(commune) and seen["status"] == "patrol"

            # The other agent presses the live button a few hundred metres away; the CSU acknowledges.
            here = seen["position"]
            target = {
                "t": utcnow().isoformat(),
                "lat": here["lat"] + 0.002,
                "lon": here["lon"] + 0.002,
                "accuracy_m": 5,
            }
            path = "/api/v1/live/sessions"
            r = httpx.post(
                f"{server}{path}", json={"reason": "threat", "position": target}, auth=DeviceAuth(danger_id, danger_key)
            )
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            assert http.post(f"/api/v1/live/sessions/{sid}/ack").status_code == 200

            # The camera is the nearest candidate; the CSU sends it.
            found = http.get(f"/api/v1/dispatch/sessions/{sid}/candidates").json()["candidates"]
            assert [c["device_id"] for c in found] == [device_id]
            sent = time.monotonic()
            r = http.post(
                f"/api/v1/dispatch/sessions/{sid}/reinforcements",
                json={"device_ids": [device_id], "note": "angle rue du Port"},
            )
            assert r.status_code == 201, r.text
            oid = r.json()["orders"][0]["order_id"]

            # The wearer feels, sees and reads it; the platform has the acknowledgement.
            def acknowledged() -> bool:
                orders = http.get(f"/api/v1/dispatch/sessions/{sid}/orders").json()
                return orders[0]["state"] == "acknowledged"

            wait_until(acknowledged, 20, "the camera's acknowledgement on the platform")
            ack_s = time.monotonic() - sent
            told = [e for e in signals.events if e.startswith("Renfort demandé : ")]
            assert len(told) == 1, signals.events
            assert "Julie Danger (POR-0099)" in told[0] and "angle rue du Port" in told[0]
            # Northeast of the wearer, some 250 to 300 m away.
            direction = told[0].split(" m, ")[1].split(" (")[0]
            assert direction in COMPASS_FR and direction == "nord-est", told[0]
            metres = int(told[0].split(" à ")[1].split(" m,")[0])
            assert 200 <= metres <= 320, told[0]
            assert f"vibrate {Vibration.REINFORCEMENT.value}" in signals.events
            assert f"led {Led.REINFORCEMENT.value}" in signals.events  # on patrol: the LED too
            with platform.session() as db:
                order = db.get(ReinforcementOrder, oid)
                assert order.state == "acknowledged" and order.acknowledged_at is not None

            # The CSU's events channel says so too (published just after the commit: a loaded machine may lag).
            def reinforcement_states() -> list[str]:
                events = http.get("/api/v1/live/events").json()["events"]
                return [e["data"]["state"] for e in events if e["type"] == "reinforcement"]

            wait_until(lambda: len(reinforcement_states()) >= 2, 10, "the acknowledgement on the events channel")
            assert reinforcement_states() == ["sent", "acknowledged"]

            # The operator closes the incident: the order is recalled, and the wearer told.
            assert http.post(f"/api/v1/live/sessions/{sid}/close").status_code == 200
            wait_until(
                lambda: any("renfort annulé" in w for w in signals.warnings), 20, "the cancellation at the camera"
            )
            assert runtime.agent.errors == []
    finally:
        runtime.stop_requested.set()
        runtime_thread.join(20)
        runtime.close()
    assert not runtime_thread.is_alive()
    log = entries(platform, commune.slug, "dispatch.")
    assert [e["event"] for e in log] == [
        "dispatch.order_sent",
        "dispatch.order_acknowledged",
        "dispatch.order_cancelled",
    ]
    assert log[1]["actor"] == {"kind": "device", "id": device_id, "name": "patrol cam", "function": "camera"}
    print(f"\nCSU sends -> acknowledged on the platform: {ack_s * 1000:.0f} ms")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_camera_out_of_reach_of_the_platform_records_all_the_same(platform: Platform, server: str, tmp_path: Path):
    commune = make_commune(platform, cameras=0)
    # Enrolled, checked out and told so by the platform while the network was up...
    runtime, _ = patrolling_camera(platform, server, commune.slug, tmp_path / "camera")
    assert runtime.agent.settings.assignment is not None
    runtime.close()
    # ... now the platform is out of reach (a closed port): the camera goes on its cached settings.
    runtime = CameraRuntime(
        CameraHome(tmp_path / "camera"),
        url="http://127.0.0.1:9",
        live=False,
        segment_s=2.0,
        video=SyntheticVideo(SyntheticScene(WIDTH, HEIGHT, fps=FPS, seed=7), system_clock, utcnow()),
        gps=SimulatedWalk(utcnow(), "Rue du Port"),
    )
    try:
        assert runtime.agent.agent_id == agent_number(commune)
        runtime.agent.run_for(0.5)
        rid = runtime.agent.start_recording()
        runtime.agent.run_for(2.5)
        manifest = runtime.agent.stop_recording()
        assert manifest.manifest.recording_id == rid and len(manifest.manifest.segments) >= 1
        wait_until(lambda: runtime.dispatch.last_error, 10, "the dispatch link noticing the platform is out of reach")
        assert runtime.dispatch.sent_positions == 0
    finally:
        runtime.close()


# --- the demo: the fleet's agents follow the CSU's orders --------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_demo_agents_converge_on_the_live_alert(platform: Platform, server: str):
    from temoin.demo.fleet import Fleet, FleetSettings
    from temoin.demo.run import TENANT, ensure_cameras, ensure_shifts, ensure_tenant

    ensure_tenant(platform)
    with platform.session() as db:  # brisk agents: the test need not last minutes
        tenant = platform.tenant(db, TENANT)
        tenant.settings = {**(tenant.settings or {}), "patrol_speed_m_s": 40.0}
        db.commit()
    cameras = ensure_cameras(platform, server, 3)
    ensure_shifts(platform, cameras)
    lines: list[str] = []
    settings = FleetSettings(
        width=WIDTH,
        height=HEIGHT,
        fps=5,
        segment_s=2,
        shift_s=600,
        stagger=False,
        first_delay_s=(500, 550),
        on_scene_s=3,
        position_every_s=1.5,
    )
    fleet = Fleet.build(
        [c.home for c in cameras],
        server,
        start=utcnow(),
        settings=settings,
        report=lambda label, what: lines.append(f"{label} {what}"),
    )
    stop = threading.Event()
    runner = threading.Thread(target=fleet.run, kwargs={"seconds": 60, "realtime": True, "stop": stop}, daemon=True)
    runner.start()
    csu = {"Authorization": f"Bearer {token_for(platform, 'csu')}"}
    try:
        with httpx.Client(base_url=server, headers=csu, timeout=30) as http:

            def everyone_on_the_map() -> list[dict] | None:
                agents = http.get("/api/v1/dispatch/agents").json()
                return agents if len(agents) == 3 and all(a["available"] for a in agents) else None

            agents = wait_until(everyone_on_the_map, 20, "the fleet on the CSU's map")
            # The first camera's wearer is in danger, 250 m north of the second agent (its live request,
            # without media, is enough here).
            danger, near, far = cameras
            there = next(a["position"] for a in agents if a["device_id"] == near.device_id)
            path = "/api/v1/live/sessions"
            fix = {"t": utcnow().isoformat(), "lat": there["lat"] + 250 / 111_195, "lon": there["lon"], "accuracy_m": 5}
            r = httpx.post(
                f"{server}{path}",
                json={"reason": "threat", "position": fix},
                auth=DeviceAuth(danger.device_id, danger.key),
            )
            sid = r.json()["id"]
            assert http.post(f"/api/v1/live/sessions/{sid}/ack").status_code == 200
            found = http.get(f"/api/v1/dispatch/sessions/{sid}/candidates").json()["candidates"]
            assert [c["device_id"] for c in found] == [near.device_id, far.device_id]  # nearest first
            r = http.post(f"/api/v1/dispatch/sessions/{sid}/reinforcements", json={"device_ids": [near.device_id]})
            assert r.status_code == 201, r.text

            # The agent sent walks there, their position on the map closing in, and arrives.
            def arrived() -> bool:
                return http.get(f"/api/v1/dispatch/sessions/{sid}/orders").json()[0]["state"] == "arrived"

            wait_until(arrived, 30, "the agent arriving")
            events = [
                e["data"]
                for e in http.get("/api/v1/live/events", params={"after": 0}).json()["events"]
                if e["type"] == "agent"
            ]
            remaining = [e["order"]["remaining_m"] for e in events if e["device_id"] == near.device_id and e["order"]]
            assert len(remaining) >= 2 and remaining == sorted(remaining, reverse=True), remaining
            # The other agent patrols on, never sent anywhere.
            assert not any(e["order"] for e in events if e["device_id"] == far.device_id)
            # Once the minute on the scene is over (3 s here), the agent walks back to their street.
            wait_until(
                lambda: any("patrols" in line and "again" in line for line in lines), 30, "the agent back on patrol"
            )
    finally:
        stop.set()
        runner.join(30)
    assert sum("ORDER from the CSU" in line and "Renfort demandé : " in line for line in lines) == 1, lines
    assert any(line.startswith(f"{near.serial} ") and "arrived on the scene" in line for line in lines), lines
