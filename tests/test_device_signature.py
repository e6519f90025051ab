"""A camera's signature covers its request's body (Content-Digest, RFC 9530), its query string, and nothing
can be swapped under it: each altered request is refused 401, journaled, and changes nothing."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from temoin.camera.offload import DeviceAuth
from temoin.db import utcnow
from temoin.demo.samples import sample_recording
from temoin.evidence.canonical import b64e
from temoin.identity import devices
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.live.models import LiveSession
from temoin.vault.models import Quarantine, Recording
from tests.helpers import agent_number, make_commune, vault_client

MANIFESTS = "/api/v1/ingest/recordings"
JSON = {"Content-Type": "application/json"}


def refusals(platform, client) -> list[dict]:
    client.app.state.refusals.flush(platform, every=True)  # journaled by the minute (web.refusals)
    with platform.session() as db:
        return [
            parse_body(e.body)["details"]
            for e in db.scalars(
                select(JournalEntry).where(JournalEntry.event == "device.auth_refused").order_by(JournalEntry.seq)
            )
        ]


def old_style(device_id: str, key, method: str, path: str) -> str:
    """The signature cameras sent before the body was covered: method, path, time and nonce only."""
    ts, nonce = int(time.time()), "0123456789abcdef"
    sig = b64e(key.sign(f"{method}\n{path}\n{ts}\n{nonce}".encode()))
    return f'{devices.AUTH_SCHEME} id="{device_id}", ts="{ts}", nonce="{nonce}", sig="{sig}"'


@pytest.fixture
def camera_scene(platform, client):
    commune = make_commune(platform, cameras=1)
    cam_id, key = commune.cameras[0]
    signed, segments = sample_recording(
        key, camera_id=cam_id, agent_id=agent_number(commune), started_at=utcnow(), duration_s=1, segment_s=1
    )
    return commune, signed, segments


def stored(platform, recording_id: str) -> tuple[Recording | None, int]:
    with platform.session() as db:
        return db.get(Recording, recording_id), db.scalar(select(func.count()).select_from(Quarantine))


def test_a_manifest_changed_after_signing_is_refused_and_changes_nothing(platform, client, camera_scene):
    commune, signed, _ = camera_scene
    cam_id, key = commune.cameras[0]
    body = signed.model_dump_json(by_alias=True).encode()
    document = json.loads(body)
    document["manifest"]["persons_informed"] = not document["manifest"]["persons_informed"]
    tampered = json.dumps(document).encode()
    rid = signed.manifest.recording_id

    # The body swapped under the camera's headers: its digest no longer matches.
    headers = devices.signed_headers(cam_id, key, "POST", MANIFESTS, body)
    r = client.post(MANIFESTS, content=tampered, headers={**headers, **JSON})
    assert r.status_code == 401 and "does not match the body" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith(devices.AUTH_SCHEME)
    # The digest replaced as well: the signature no longer matches.
    r = client.post(
        MANIFESTS, content=tampered, headers={**headers, **JSON, "Content-Digest": devices.content_digest(tampered)}
    )
    assert r.status_code == 401 and "signature invalid" in r.json()["detail"]
    # Nothing was received, not even quarantined: the manifest never reached the vault.
    assert stored(platform, rid) == (None, 0)
    reasons = " | ".join(reason for d in refusals(platform, client) for reason in d["reasons"])
    assert "does not match the body" in reasons and "signature invalid" in reasons

    # The same request untouched is accepted (its nonce was not spent by the refusals).
    r = client.post(MANIFESTS, content=body, headers={**headers, **JSON})
    assert r.status_code == 201, r.text
    assert stored(platform, rid)[0].state == "receiving"


def test_missing_wrong_or_foreign_digests_and_old_signatures_are_refused(platform, client, camera_scene):
    commune, signed, _ = camera_scene
    cam_id, key = commune.cameras[0]
    body = signed.model_dump_json(by_alias=True).encode()
    other_body = body.replace(b'"persons_informed":true', b'"persons_informed":false')
    assert other_body != body
    headers = devices.signed_headers(cam_id, key, "POST", MANIFESTS, body)

    without = {k: v for k, v in headers.items() if k != "Content-Digest"}
    r = client.post(MANIFESTS, content=body, headers={**without, **JSON})
    assert r.status_code == 401 and "missing Content-Digest" in r.json()["detail"]
    for malformed in ("sha-256=:not base64!:", "sha-256=:" + b64e(b"short") + ":", "sha-512=:AAAA:", "md5=abc"):
        r = client.post(MANIFESTS, content=body, headers={**headers, **JSON, "Content-Digest": malformed})
        assert r.status_code == 401 and "malformed Content-Digest" in r.json()["detail"], malformed
    # A well-formed digest, of another body, signed for the one sent: refused all the same.
    foreign = devices.signed_headers(cam_id, key, "POST", MANIFESTS, other_body)
    r = client.post(MANIFESTS, content=body, headers={**headers, **JSON, "Content-Digest": foreign["Content-Digest"]})
    assert r.status_code == 401 and "does not match the body" in r.json()["detail"]
    # An old-style signature (no digest in the signed string): refused, even with a digest added.
    r = client.post(
        MANIFESTS, content=body, headers={"Authorization": old_style(cam_id, key, "POST", MANIFESTS), **JSON}
    )
    assert r.status_code == 401 and "update the camera" in r.json()["detail"]
    r = client.post(
        MANIFESTS,
        content=body,
        headers={
            "Authorization": old_style(cam_id, key, "POST", MANIFESTS),
            "Content-Digest": devices.content_digest(body),
            **JSON,
        },
    )
    assert r.status_code == 401 and "signature invalid" in r.json()["detail"]
    # The unsigned-payload marker is for segment uploads only.
    unsigned = devices.signed_headers(cam_id, key, "POST", MANIFESTS, unsigned_payload=True)
    r = client.post(MANIFESTS, content=body, headers={**unsigned, **JSON})
    assert r.status_code == 401 and "segment uploads only" in r.json()["detail"]
    assert stored(platform, signed.manifest.recording_id) == (None, 0)
    assert sum(d["count"] for d in refusals(platform, client)) == 9

    # Replayed with another body after the camera's own request went through: refused, nothing changes.
    assert client.post(MANIFESTS, content=body, headers={**headers, **JSON}).status_code == 201
    r = client.post(MANIFESTS, content=other_body, headers={**headers, **JSON})
    assert r.status_code == 401 and "does not match the body" in r.json()["detail"]
    r = client.post(
        MANIFESTS, content=other_body, headers={**headers, **JSON, "Content-Digest": devices.content_digest(other_body)}
    )
    assert r.status_code == 401 and "signature invalid" in r.json()["detail"]
    with platform.session() as db:
        assert db.get(Recording, signed.manifest.recording_id).manifest == body.decode()
    # And the very same request again is a replay.
    r = client.post(MANIFESTS, content=body, headers={**headers, **JSON})
    assert r.status_code == 401 and "replayed" in r.json()["detail"]


def test_segment_uploads_sign_an_unsigned_payload_and_the_manifest_binds_their_bytes(platform, client, camera_scene):
    commune, signed, segments = camera_scene
    cam_id, key = commune.cameras[0]
    vc = vault_client(platform, client, commune.cameras[0])
    vc.send_manifest(signed)
    client.auth = None
    rid = signed.manifest.recording_id
    path = f"{MANIFESTS}/{rid}/segments/0"
    octets = {"Content-Type": "application/octet-stream"}
    # A body digest is not taken there (the segment is streamed, never held whole to be digested first).
    digested = devices.signed_headers(cam_id, key, "PUT", path, segments[0])
    r = client.put(path, content=segments[0], headers={**digested, **octets})
    assert r.status_code == 401 and "unsigned-payload" in r.json()["detail"]
    unsigned = devices.signed_headers(cam_id, key, "PUT", path, unsigned_payload=True)
    # Bytes swapped under the marker reach the segment's hash in the signed manifest: quarantined, never stored.
    forged = bytes(b ^ 0xFF for b in segments[0])
    r = client.put(path, content=forged, headers={**unsigned, **octets})
    assert r.status_code == 422 and "does not match its hash" in r.json()["detail"]
    with platform.session() as db:
        assert db.scalar(select(func.count()).select_from(Quarantine)) == 1
        assert not any(s.complete for s in db.get(Recording, rid).segments)


def test_a_complete_call_changed_after_signing_is_refused(platform, client, camera_scene):
    commune, signed, segments = camera_scene
    cam_id, key = commune.cameras[0]
    vc = vault_client(platform, client, commune.cameras[0])
    vc.send_manifest(signed)
    vc.upload_segment(signed.manifest.recording_id, 0, segments[0])
    client.auth = None
    rid = signed.manifest.recording_id
    path = f"{MANIFESTS}/{rid}/complete"
    # The camera closes with nothing lost; someone on the path declares its only segment lost.
    headers = devices.signed_headers(cam_id, key, "POST", path)
    r = client.post(path, content=b'{"lost_segments": [0]}', headers={**headers, **JSON})
    assert r.status_code == 401 and "does not match the body" in r.json()["detail"]
    assert stored(platform, rid)[0].state == "receiving"
    r = client.post(path, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["receipt"]["lost_segments"] == []
    assert stored(platform, rid)[0].state == "stored"


def test_a_live_position_changed_after_signing_is_refused(platform, client):
    commune = make_commune(platform, cameras=1)
    cam_id, key = commune.cameras[0]
    at = {"t": utcnow().isoformat(), "lat": 43.5585, "lon": 4.0845, "accuracy_m": 5}
    r = client.post("/api/v1/live/sessions", json={"reason": "threat", "position": at}, auth=DeviceAuth(cam_id, key))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    path = f"/api/v1/live/camera/sessions/{sid}/position"
    sent = json.dumps(at | {"lat": 43.5600}).encode()
    moved = json.dumps(at | {"lat": 43.7000}).encode()  # the agent placed elsewhere
    headers = devices.signed_headers(cam_id, key, "POST", path, sent)
    r = client.post(path, content=moved, headers={**headers, **JSON})
    assert r.status_code == 401 and "does not match the body" in r.json()["detail"]
    with platform.session() as db:
        assert db.get(LiveSession, sid).position["lat"] == pytest.approx(43.5585)
    assert client.post(path, content=sent, headers={**headers, **JSON}).status_code == 204
    with platform.session() as db:
        assert db.get(LiveSession, sid).position["lat"] == pytest.approx(43.5600)


def test_the_query_string_is_signed(platform, client):
    commune = make_commune(platform, cameras=1)
    cam_id, key = commune.cameras[0]
    signed_for = "/api/v1/camera/config?known=1"
    headers = devices.signed_headers(cam_id, key, "GET", signed_for)
    r = client.get("/api/v1/camera/config?known=2", headers=headers)
    assert r.status_code == 401 and "signature invalid" in r.json()["detail"]
    assert client.get(signed_for, headers=headers).status_code == 200
