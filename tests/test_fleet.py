"""The demo fleet: simulated cameras, each the real camera agent, checked out to demo agents,
patrolling, recording with realistic triggers and offloading through the real HTTP ingest.

Two cameras, three simulated minutes each, small pictures (160x120, 5 fps) on a simulated clock:
every segment is real H.264/AAC, every upload goes over HTTP to a real server.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from temoin.camera.runner import CameraHome
from temoin.db import utcnow
from temoin.demo.fleet import SCENARIOS, Fleet, FleetSettings
from temoin.demo.run import ensure_cameras, ensure_shifts, ensure_tenant
from temoin.demo.server import BackgroundServer
from temoin.evidence.manifest import NotInformedReason, Trigger
from temoin.vault.models import Recording, RecordingState
from temoin.web.app import create_app

SETTINGS = FleetSettings(
    width=160,
    height=120,
    fps=5,
    segment_s=4,
    shift_s=180,
    stagger=False,
    first_delay_s=(5, 15),
    gap_s=(10, 20),
    duration_s=(12, 25),
)


# One database: the fleet exercises the cameras; the ingest path runs on both databases elsewhere.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_fleet_records_with_the_right_agents_and_triggers(platform) -> None:
    ensure_tenant(platform)
    events: list[tuple[str, str]] = []
    with BackgroundServer(create_app(platform, scheduler=False)) as server:
        cameras = ensure_cameras(platform, server.url, 2)
        assigned = ensure_shifts(platform, cameras)
        assert sorted(assigned.values()) == ["PM-0101", "PM-0102"]
        fleet = Fleet.build(
            [c.home for c in cameras],
            server.url,
            start=utcnow(),
            settings=SETTINGS,
            report=lambda label, what: events.append((label, what)),
        )
        fleet.run(SETTINGS.shift_s, realtime=False)

    records = fleet.records
    per_camera = Counter(r.camera_id for r in records)
    assert set(per_camera) == set(assigned) and min(per_camera.values()) >= 2, per_camera
    assert {r.scenario for r in records} == set(SCENARIOS)  # incident, request, flagrant offence, Taser
    with platform.session() as db:
        stored = {r.id: r for r in db.scalars(select(Recording).where(Recording.device_id.in_(list(assigned))))}
        assert set(stored) == {r.recording_id for r in records}  # every recording made it, nothing else
        for r in records:
            rec = stored[r.recording_id]
            assert rec.state == RecordingState.STORED
            assert rec.agent_ref == assigned[r.camera_id] == r.agent_id and rec.agent_user_id is not None
            assert rec.trigger == r.trigger
            assert not rec.clock_drift_flag and not rec.outside_territory
            if r.trigger is Trigger.AUTOMATIC:
                assert rec.persons_informed  # the wearer confirmed after the automatic start
            if not rec.persons_informed:
                assert rec.not_informed_reason == NotInformedReason.FLAGRANT_OFFENCE
    for camera in cameras:  # docked at the end of the shift: nothing left on the cameras
        store = CameraHome(camera.home).store()
        assert store.recording_ids() == [] and store.pending() == []
    assert any("docked: " in what and "offloaded, receipts verified" in what for _, what in events)
