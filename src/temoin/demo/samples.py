"""Signed sample recordings: real H.264/AAC segments from the synthetic scene (with `faces`, passers-by showing
real faces, for the redaction of a rights request), a GPS walk along a street of the demo commune, a manifest
signed by the camera's key. Used by the demo and the tests.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin.camera.media import SyntheticScene, encode_recording
from temoin.camera.offload import SegmentFile, build_manifest
from temoin.demo.commune import walk
from temoin.demo.passersby import PassersByScene
from temoin.evidence.manifest import GpsFix, NotInformedReason, SignedManifest, Trigger


def sample_recording(
    key: Ed25519PrivateKey,
    *,
    camera_id: str,
    agent_id: str,
    started_at: datetime,
    duration_s: float = 12,
    segment_s: float = 6,
    street: str = "Avenue de la Mer",
    trigger: Trigger = Trigger.INCIDENT,
    persons_informed: bool = True,
    seed: int = 0,
    recording_id: str | None = None,
    faces: bool = False,
    clock_offset_ms: int | None = 0,
) -> tuple[SignedManifest, list[bytes]]:
    scene = PassersByScene(seed=seed) if faces else SyntheticScene(seed=seed)
    encoded = encode_recording(scene, started_at, duration_s, segment_s, agent_id=agent_id, camera_id=camera_id)
    track = [
        GpsFix(t=started_at + timedelta(seconds=i), lat=lat, lon=lon, accuracy_m=5.0)
        for i, (lat, lon) in enumerate(walk(street, int(duration_s) + 1))
    ]
    manifest = build_manifest(
        recording_id=recording_id or f"rec-{uuid.uuid4().hex[:16]}",
        camera_id=camera_id,
        agent_id=agent_id,
        segments=[SegmentFile(s.data, s.started_at, s.duration_s) for s in encoded],
        trigger=trigger,
        persons_informed=persons_informed,
        not_informed_reason=None if persons_informed else NotInformedReason.CIRCUMSTANCES,
        gps_track=track,
        pre_event_buffer_s=0,
        clock_offset_ms=clock_offset_ms,
    )
    return SignedManifest.sign(manifest, key), [s.data for s in encoded]
