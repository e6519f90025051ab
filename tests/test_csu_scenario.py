"""The CSU's whole loop in a real browser (Debian's Chromium through Playwright), against a real server, real camera
agents (`CameraRuntime`, their capture loops in real time) and the simulated CCTV network of the demo (RTSP
streams, ONVIF PTZ cameras driven by the real ONVIF client library):

an agent standing in front of two CCTV cameras presses the live button -> the alert opens on the operator's
dashboard by itself (sound, map centred, the agent's feed playing) -> exactly the CCTV cameras that can see the
agent come up beside it, nearest first, and play -> nobody acknowledges: the alert escalates -> the operator aims
the PTZ cameras (the simulated camera's pose matches the computed bearing) -> acknowledges (the wearer's camera
signals it) -> picks the nearest available agent and sends them -> that agent's camera signals the order and
acknowledges it -> the dashboard shows it; the incident record (the journal) has every step.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from temoin.camera.clock import system_clock
from temoin.camera.media import SyntheticScene
from temoin.camera.runner import CameraHome, CameraRuntime
from temoin.camera.signals import TerminalSignals, Vibration
from temoin.camera.sources import SyntheticAudio, SyntheticVideo
from temoin.db import utcnow
from temoin.demo.cctv.network import CctvNetwork
from temoin.evidence.manifest import GpsFix
from temoin.geo import geometry
from temoin.identity import devices, service, shifts
from temoin.identity.models import Device, Tenant, User
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.platform import Platform
from tests.helpers import PASSWORD, agent_number, make_commune
from tests.live_helpers import press_live_twice, sign_in_context

pytestmark = pytest.mark.slow

WIDTH, HEIGHT, FPS = 160, 120, 10
# Rue du Port, 100 m north of the harbour master's camera (cctv-05, looking north) and about 210 m south of the
# PTZ camera at the crossing with the Avenue de la Mer (cctv-02, range 250 m). Every other camera of the demo
# network is more than 300 m away or looks elsewhere.
DANGER = (43.555390, 4.079400)
EXPECTED_WALL = ["cctv-05", "cctv-02"]  # nearest first
HELPER = (43.558300, 4.081200)  # a patrol about 350 m away, on the Avenue de la Mer


class Standing:
    """A wearer standing still (a GPS source): the test knows exactly where the agent is."""

    def __init__(self, lat: float, lon: float) -> None:
        self.lat, self.lon = lat, lon

    def fix(self, at: datetime) -> GpsFix:
        return GpsFix(t=at, lat=self.lat, lon=self.lon, accuracy_m=4.0)


def runtime_for(
    platform: Platform,
    url: str,
    slug: str,
    username: str,
    root: Path,
    serial: str,
    where: tuple[float, float],
    seed: int,
) -> tuple[CameraRuntime, TerminalSignals]:
    with platform.session() as db:
        code = devices.create_enrolment_code(
            platform, db, platform.tenant(db, slug), label=serial, by=Actor.system("test")
        )
    home = CameraHome(root)
    identity = home.enrol(url, code, serial)
    with platform.session() as db:
        agent = db.scalar(select(User).where(User.username == username))
        shifts.check_out(platform, db, db.get(Device, identity.device_id), agent, Actor.system("test"))
    scene = SyntheticScene(WIDTH, HEIGHT, fps=FPS, seed=seed)
    signals = TerminalSignals()
    start = utcnow()
    runtime = CameraRuntime(
        home,
        video=SyntheticVideo(scene, system_clock, start),
        audio=SyntheticAudio(scene, start),
        gps=Standing(*where),
        signals=signals,
        segment_s=2.0,
    )
    return runtime, signals


def until(fn, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def test_alert_to_reinforcements_in_the_browser(platform: Platform, server_url: str, browser, tmp_path: Path):
    commune = make_commune(platform, cameras=0)
    with platform.session() as db:
        tenant = platform.tenant(db, commune.slug)
        tenant.settings = {
            "alert_escalation_s": 2.0,  # the default is 10 s; the test need not wait that long
            "cctv_networks": ["127.0.0.0/8"],
        }  # the simulated CCTV network listens on loopback
        service.create_user(
            platform,
            db,
            tenant,
            username=f"{commune.slug}-agent2",
            display_name="Agent Renfort",
            role=Role.AGENT,
            password=PASSWORD,
            agent_number="POR-0002",
        )
        db.commit()
        tenant_id = tenant.id
    network = CctvNetwork().start()
    threads: list[threading.Thread] = []
    runtimes: list[CameraRuntime] = []
    try:
        with platform.session() as db:
            network.register(platform, db.get(Tenant, tenant_id))
        danger, danger_signals = runtime_for(
            platform,
            server_url,
            commune.slug,
            commune.users[Role.AGENT],
            tmp_path / "danger",
            "cam-danger",
            DANGER,
            seed=5,
        )
        helper, helper_signals = runtime_for(
            platform,
            server_url,
            commune.slug,
            f"{commune.slug}-agent2",
            tmp_path / "helper",
            "cam-helper",
            HELPER,
            seed=9,
        )
        runtimes += [danger, helper]
        for r in runtimes:
            threads.append(threading.Thread(target=r.run, daemon=True, name=f"capture-{r.identity.serial}"))
            threads[-1].start()

        context = browser.new_context(base_url=server_url, locale="fr-FR", viewport={"width": 1500, "height": 950})
        sign_in_context(platform, context, commune.users[Role.CSU_OPERATOR])
        page = context.new_page()
        page.goto("/live")
        page.wait_for_function("() => window.temoinCsu && window.temoinCsu.cameras.size === 12", timeout=15_000)
        # Both agents are on the map before anything happens (their cameras report their positions).
        helper_id = helper.identity.device_id
        page.wait_for_function(f"() => window.temoinCsu.agents.has('{helper_id}')", timeout=20_000)

        # --- the press: the alert comes up by itself ---------------------------------------------------
        press_live_twice(danger)
        alert = page.locator("#csu-alert")
        expect(alert).to_be_visible(timeout=10_000)
        expect(page.locator("#csu-alert-agent")).to_have_text(agent_number(commune))
        assert page.evaluate("window.temoinCsu.beeps") >= 1, "the alert sounds"
        center = page.evaluate("(() => { const c = window.temoinCsu.map.getCenter(); return [c.lat, c.lng]; })()")
        assert center == pytest.approx(DANGER, abs=1e-4), "the map centres on the agent"
        sid = page.evaluate("window.temoinCsu.focus")

        # The agent's feed plays.
        page.wait_for_function(
            f"() => {{ const t = window.temoinCsu.tiles.get('session:{sid}');"
            " return t && t.player && t.player.stats.framesDecoded > 10; }",
            timeout=20_000,
        )

        # Exactly the CCTV cameras that can see the agent, nearest first, and they play.
        page.wait_for_function(
            "(want) => JSON.stringify(window.temoinCsu.nearby) === JSON.stringify(want)",
            arg=EXPECTED_WALL,
            timeout=10_000,
        )
        shown = page.evaluate("[...window.temoinCsu.tiles.values()].filter(t => t.kind === 'cctv').map(t => t.camera)")
        assert sorted(shown) == sorted(EXPECTED_WALL)
        for camera in EXPECTED_WALL:
            page.wait_for_function(
                f"() => {{ const t = window.temoinCsu.tiles.get('cctv:{camera}');"
                " return t && t.player && t.player.stats.framesDecoded > 5; }",
                timeout=20_000,
            )

        # Nobody acknowledges within the tenant's escalation delay: the alert escalates (highlight, repeated sound).
        expect(alert).to_have_class("csu-alert escalated", timeout=10_000)
        page.wait_for_function("() => window.temoinCsu.beeps >= 2", timeout=10_000)

        # --- PTZ: the camera in range turns to the agent -----------------------------------------------
        page.click("#csu-ptz")
        page.wait_for_function("() => window.temoinCsu.aims.length > 0", timeout=15_000)
        aims = page.evaluate("window.temoinCsu.aims")
        ptz = next(a for a in aims if a["camera_id"] == "cctv-02")
        assert not ptz.get("error"), ptz
        cam = next(
            f["properties"] | {"lat": f["geometry"]["coordinates"][1], "lon": f["geometry"]["coordinates"][0]}
            for f in network.features
            if f["properties"]["id"] == "cctv-02"
        )
        bearing = geometry.bearing_deg(cam["lat"], cam["lon"], *DANGER)
        pan, tilt, _ = network.poses["cctv-02"].snapshot()
        assert abs(geometry.angle_diff_deg(pan, bearing)) < 0.5, (pan, bearing)
        assert tilt < 0, "a camera 8 m up looks down at the agent"
        assert abs(geometry.angle_diff_deg(ptz["reported"]["pan_deg"], bearing)) < 0.5, ptz

        # --- the acknowledgement reaches the wearer ----------------------------------------------------
        page.click("#csu-ack")
        expect(alert).to_have_class("csu-alert acknowledged", timeout=10_000)
        until(lambda: danger.agent.live_acknowledged_at is not None, 10, "the acknowledgement at the camera")
        assert f"vibrate {Vibration.ACKNOWLEDGED.value}" in danger_signals.events

        # --- reinforcements: the nearest available agent, sent, acknowledged by their camera ------------
        candidate = page.locator(f"#csu-candidates input[value='{helper_id}']")
        expect(candidate).to_be_visible(timeout=10_000)
        label = page.locator("#csu-candidates li").first.inner_text()
        assert " m · " in label and "min" in label, label  # distance and arrival estimate
        candidate.check()
        page.click("#csu-send")
        until(lambda: any("Renfort" in e for e in helper_signals.events), 20, "the order at the helper's camera")
        expect(page.locator("#csu-orders li[data-state='acknowledged']")).to_have_count(1, timeout=20_000)
        expect(page.locator("#csu-alert-state")).to_have_text("Renforts envoyés")

        # --- the incident record -----------------------------------------------------------------------
        page.wait_for_function(
            "() => window.temoinCsu.timeline.some(e => e.event.startsWith('dispatch.'))", timeout=10_000
        )
        events = page.evaluate("window.temoinCsu.timeline.map(e => e.event)")
        for expected in (
            "live.requested",
            "live.acknowledged",
            "ptz.aimed",
            "cctv.viewing_started",
            "live.viewing_started",
        ):
            assert expected in events, (expected, events)
        context.close()
    finally:
        for r in runtimes:
            r.stop_requested.set()
        for t in threads:
            t.join(20)
        for r in runtimes:
            r.close()
        network.stop()
