"""Ingest: a camera's signed recording reaches the vault intact, or is refused and quarantined."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from temoin.camera.offload import OffloadError
from temoin.db import utcnow
from temoin.demo.samples import sample_recording
from temoin.identity import devices
from temoin.journal.models import JournalEntry
from temoin.vault.models import Quarantine, Recording, RecordingState
from tests.helpers import agent_number, make_commune, upload, vault_client
from tests.s3_helpers import BOTH_STORES, all_blobs, read_raw


@BOTH_STORES
def test_recording_reaches_the_vault_and_the_receipt_proves_it(platform, client):
    commune = make_commune(platform)
    rid, receipt = upload(platform, client, commune, duration_s=5, segment_s=2)
    assert receipt.verify(platform.keyring.public_key)
    assert receipt.receipt.segment_count == 3
    with platform.session() as db:
        rec = db.get(Recording, rid)
        assert rec.state == RecordingState.STORED
        assert rec.agent_user_id is not None  # the agent's identity came from the manifest
        entry = db.scalar(select(JournalEntry).where(JournalEntry.event == "recording.ingested"))
        assert rid in entry.body and entry.action == "collection"
    # Encrypted at rest: no stored byte sequence of the original appears in the vault.
    blobs = [read_raw(platform.store, key) for key in all_blobs(platform.store)]
    assert len(blobs) == 3
    assert all(b"ftyp" not in b and b"mdat" not in b for b in blobs)


@BOTH_STORES
def test_not_visible_before_complete_and_cut_upload_resumes(platform, client):
    commune = make_commune(platform)
    cam = commune.cameras[0]
    signed, segments = sample_recording(
        cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=3, segment_s=3
    )
    vc = vault_client(platform, client, cam)
    status = vc.send_manifest(signed)
    rid = status["recording_id"]
    data = segments[0]
    cut = len(data) // 3 + 7  # an arbitrary byte, not a record boundary
    url = f"/api/v1/ingest/recordings/{rid}/segments/0"
    r = client.put(url, content=data[:cut], headers={"Content-Range": f"bytes 0-{cut - 1}/{len(data)}"})
    assert r.status_code == 200 and r.json()["complete"] is False
    assert vc.received(rid, 0) == cut
    # Resuming from the wrong place is refused with where to resume.
    r = client.put(url, content=data[5:], headers={"Content-Range": f"bytes 5-{len(data) - 1}/{len(data)}"})
    assert r.status_code == 409 and r.headers["Upload-Offset"] == str(cut)
    with platform.session() as db:
        assert db.get(Recording, rid).state == RecordingState.RECEIVING
    client.auth = None
    assert rid not in client.get("/api/v1/recordings").text  # anonymous anyway; visibility tested in access
    vc = vault_client(platform, client, cam)
    vc.upload_segment(rid, 0, data, start=vc.received(rid, 0))
    receipt = vc.complete(rid)
    assert receipt.matches(signed.manifest)
    with platform.session() as db:
        assert db.get(Recording, rid).state == RecordingState.STORED


def test_a_segment_piece_spends_its_nonce_whether_it_is_stored_or_refused(platform, client):
    # The piece's nonce is committed while its body arrives (web.routes.ingest): a replay is still refused after a
    # piece that was stored, one refused for its Content-Range, and one refused for its offset.
    commune = make_commune(platform)
    cam = commune.cameras[0]
    signed, segments = sample_recording(
        cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=2, segment_s=2
    )
    rid = vault_client(platform, client, cam).send_manifest(signed)["recording_id"]
    client.auth = None
    data, url = segments[0], f"/api/v1/ingest/recordings/{rid}/segments/0"
    cut = len(data) // 2
    pieces = [
        ({"Content-Range": "bytes 0-oops"}, data[:cut], 400),
        ({"Content-Range": f"bytes 0-{cut - 1}/{len(data)}"}, data[:cut], 200),
        ({"Content-Range": f"bytes 1-{cut}/{len(data)}"}, data[1 : cut + 1], 409),
    ]
    for extra, body, status in pieces:
        headers = {**devices.signed_headers(cam[0], cam[1], "PUT", url, unsigned_payload=True), **extra}
        assert client.put(url, content=body, headers=headers).status_code == status
        r = client.put(url, content=body, headers=headers)
        assert r.status_code == 401 and "replayed" in r.json()["detail"]
    with platform.session() as db:
        assert db.get(Recording, rid).state == RecordingState.RECEIVING
    vc = vault_client(platform, client, cam)
    assert vc.received(rid, 0) == cut  # the replays changed nothing: the upload resumes where the piece ended
    vc.upload_segment(rid, 0, data, start=cut)
    assert vc.complete(rid).matches(signed.manifest)


def test_forged_manifest_signature_is_quarantined_and_journaled(platform, client):
    commune = make_commune(platform)
    cam = commune.cameras[0]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signed, segments = sample_recording(
        Ed25519PrivateKey.generate(),
        camera_id=cam[0],
        agent_id=agent_number(commune),
        started_at=utcnow(),
        duration_s=2,
        segment_s=2,
    )
    with pytest.raises(OffloadError, match=r"403.*signature"):
        vault_client(platform, client, cam).offload(signed, segments)
    with platform.session() as db:
        q = db.scalar(select(Quarantine))
        assert "signature" in q.reason
        assert db.scalar(select(JournalEntry).where(JournalEntry.event == "ingest.quarantined")) is not None
        assert db.get(Recording, signed.manifest.recording_id) is None


def test_segment_not_matching_its_hash_quarantines_the_recording(platform, client):
    commune = make_commune(platform)
    cam = commune.cameras[0]
    signed, segments = sample_recording(
        cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=2, segment_s=2
    )
    tampered = bytearray(segments[0])
    tampered[len(tampered) // 2] ^= 0xFF
    with pytest.raises(OffloadError, match=r"422.*hash"):
        vault_client(platform, client, cam).offload(signed, [bytes(tampered)])
    with platform.session() as db:
        rec = db.get(Recording, signed.manifest.recording_id)
        assert rec.state == RecordingState.QUARANTINED and "SHA-256" in rec.state_reason


def test_segment_replayed_from_another_recording_is_refused(platform, client):
    commune = make_commune(platform)
    cam = commune.cameras[0]
    a, seg_a = sample_recording(
        cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=2, segment_s=2, seed=1
    )
    b, _seg_b = sample_recording(
        cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=2, segment_s=2, seed=2
    )
    vault_client(platform, client, cam).offload(a, seg_a)
    vc = vault_client(platform, client, cam)
    vc.send_manifest(b)
    rid = b.manifest.recording_id
    size = b.manifest.segments[0].size
    replayed = seg_a[0][:size].ljust(size, b"\0")  # A's genuine bytes, fitted to B's declared size
    r = vc.http.put(
        f"/api/v1/ingest/recordings/{rid}/segments/0",
        content=replayed,
        headers={"Content-Range": f"bytes 0-{size - 1}/{size}"},
    )
    assert r.status_code == 422 and "hash" in r.json()["detail"]
    with platform.session() as db:
        assert db.get(Recording, rid).state == RecordingState.QUARANTINED
    # Nor can A's segment hashes be grafted into B's manifest: the chain binds the recording id.
    forged = b.manifest.model_copy(update={"segments": a.manifest.segments})
    with pytest.raises(ValueError, match="chain"):
        type(b.manifest).model_validate(forged.model_dump())


@pytest.mark.parametrize(
    "body,status,needle",
    [
        (b"{not json", 422, "malformed"),
        (b'{"manifest": {}, "signature": "x"}', 422, "malformed"),
        (b"x" * 2_000_000, 413, "larger"),
    ],
)
def test_malformed_or_oversized_manifest_is_refused_clearly(platform, client, body, status, needle):
    commune = make_commune(platform)
    vc = vault_client(platform, client, commune.cameras[0])
    r = vc.http.post("/api/v1/ingest/recordings", content=body)
    assert r.status_code == status and needle in r.json()["detail"]


def test_path_traversal_in_any_name_is_refused(platform, client):
    commune = make_commune(platform)
    cam = commune.cameras[0]
    signed, _ = sample_recording(
        cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=2, segment_s=2
    )
    payload = signed.model_dump(mode="json", by_alias=True)
    payload["manifest"]["recording_id"] = "../../etc/passwd"
    vc = vault_client(platform, client, cam)
    r = vc.http.post("/api/v1/ingest/recordings", json=payload)
    assert r.status_code == 422 and "recording_id" in r.json()["detail"]
    r = vc.http.put("/api/v1/ingest/recordings/..%2F..%2Fx/segments/0", content=b"abc")
    assert r.status_code == 404
    assert not any(p.name == "passwd" for p in platform.settings.home.rglob("*"))


def test_disk_full_during_a_write_keeps_no_partial_blob(platform, client, monkeypatch):
    import errno
    from pathlib import Path

    commune = make_commune(platform)
    cam = commune.cameras[0]
    signed, segments = sample_recording(
        cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=2, segment_s=2
    )
    vc = vault_client(platform, client, cam)
    vc.send_manifest(signed)
    real_open = Path.open

    class FullDisk:  # the OS boundary: every write finds no space left
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

    def opener(self, mode="r", *args, **kwargs):
        fh = real_open(self, mode, *args, **kwargs)
        return FullDisk(fh) if "a" in mode else fh

    monkeypatch.setattr(Path, "open", opener)
    rid = signed.manifest.recording_id
    with pytest.raises(OffloadError, match=r"507.*disk full"):
        vc.upload_segment(rid, 0, segments[0])
    monkeypatch.setattr(Path, "open", real_open)
    assert not list((platform.settings.vault_dir / "blobs").rglob("*.seg"))
    # Once space is back, the same upload goes through.
    receipt = vault_client(platform, client, cam).offload(signed, segments)
    assert receipt.verify(platform.keyring.public_key)


def test_more_bytes_than_the_manifest_declares_are_refused_and_the_upload_resumes(platform, client):
    commune = make_commune(platform)
    cam = commune.cameras[0]
    signed, segments = sample_recording(
        cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=2, segment_s=2
    )
    vc = vault_client(platform, client, cam)
    rid = vc.send_manifest(signed)["recording_id"]
    data = segments[0]
    # The sealing thread refuses the excess; the socket reader stops and the answer says so.
    r = vc.http.put(f"/api/v1/ingest/recordings/{rid}/segments/0", content=data + b"\x00" * (3 * 1024 * 1024))
    assert r.status_code == 413 and "more bytes than" in r.json()["detail"]
    held = vc.received(rid, 0)
    assert held <= len(data)
    vc.upload_segment(rid, 0, data, start=held)  # what the vault holds is the segment's own bytes: it resumes
    receipt = vc.offload(signed, segments)
    assert receipt.verify(platform.keyring.public_key) and receipt.matches(signed.manifest)


def test_a_record_refused_by_a_full_disk_is_sealed_once_when_retried(platform, client, monkeypatch):
    """The disk is full for one write, in the middle of a segment: the upload answers 507 and, when the camera
    resumes, the segment is stored and matches its hash (the refused record was neither hashed twice nor sealed
    at the next record's place), not quarantined."""
    import errno
    import os
    import uuid
    from pathlib import Path

    from temoin.camera.offload import SegmentFile, build_manifest
    from temoin.evidence import crypto
    from temoin.evidence.manifest import SignedManifest, Trigger

    commune = make_commune(platform, cameras=1)
    cam = commune.cameras[0]
    data = os.urandom(3 * crypto.RECORD_BYTES + 1000)
    manifest = build_manifest(
        recording_id=f"rec-full-{uuid.uuid4().hex[:12]}",
        camera_id=cam[0],
        agent_id=agent_number(commune),
        segments=[SegmentFile(data, utcnow(), 60.0)],
        trigger=Trigger.INCIDENT,
        persons_informed=True,
    )
    signed = SignedManifest.sign(manifest, cam[1])
    vc = vault_client(platform, client, cam)
    rid = vc.send_manifest(signed)["recording_id"]
    real_open = Path.open
    writes = {"n": 0}

    def opener(self, mode="r", *args, **kwargs):
        fh = real_open(self, mode, *args, **kwargs)
        if "a" not in mode:
            return fh

        class OnceFull:  # the OS boundary: the second record's first write finds no space, once
            def write(self, chunk):
                writes["n"] += 1
                if writes["n"] == 4:  # header, prefix, record 0; then record 1's prefix
                    raise OSError(errno.ENOSPC, "No space left on device")
                return fh.write(chunk)

            def __getattr__(self, name):
                return getattr(fh, name)

        return OnceFull()

    monkeypatch.setattr(Path, "open", opener)
    r = vc.http.put(f"/api/v1/ingest/recordings/{rid}/segments/0", content=data)
    assert r.status_code == 507, r.text
    monkeypatch.setattr(Path, "open", real_open)
    vc.upload_segment(rid, 0, data, start=vc.received(rid, 0))
    assert vc.complete(rid).matches(signed.manifest)
    with platform.session() as db:
        assert db.get(Recording, rid).state == RecordingState.STORED


@BOTH_STORES
def test_a_record_damaged_by_a_machine_crash_is_cut_and_resent(platform, client):
    """Pieces are answered before their fsync (one per segment): a machine crash may leave a staged record whose
    pages did not all reach the disk (written back out of order). The resumed upload cuts the staged blob at that
    record and the camera resends from there (409 with the offset), instead of failing on it at every resume."""
    import os
    import uuid

    from temoin.camera.offload import SegmentFile, build_manifest
    from temoin.evidence import crypto
    from temoin.evidence.manifest import SignedManifest, Trigger
    from temoin.vault import ingest
    from temoin.vault.storage import blob_key

    commune = make_commune(platform, cameras=1)
    cam = commune.cameras[0]
    data = os.urandom(3 * crypto.RECORD_BYTES + 1000)
    manifest = build_manifest(
        recording_id=f"rec-torn-{uuid.uuid4().hex[:12]}",
        camera_id=cam[0],
        agent_id=agent_number(commune),
        segments=[SegmentFile(data, utcnow(), 60.0)],
        trigger=Trigger.INCIDENT,
        persons_informed=True,
    )
    signed = SignedManifest.sign(manifest, cam[1])
    vc = vault_client(platform, client, cam)
    rid = vc.send_manifest(signed)["recording_id"]
    first = 2 * crypto.RECORD_BYTES
    r = vc.http.put(
        f"/api/v1/ingest/recordings/{rid}/segments/0",
        content=data[:first],
        headers={"Content-Range": f"bytes 0-{first - 1}/{len(data)}"},
    )
    assert r.status_code == 200 and r.json()["received"] == first, r.text
    # The machine crashed: the process's state is gone, and a page inside the second record never reached the disk.
    ingest._progress.clear()
    store, key = platform.store, blob_key(commune.slug, rid, 0)
    at = crypto.HEADER_BYTES + 2 * crypto.PREFIX_BYTES + crypto.RECORD_BYTES + crypto.TAG_BYTES + 4096
    if hasattr(store, "bucket"):  # an object store writes whole chunks: one damaged behind the vault's back
        name = store._chunk(key, 0)
        body = bytearray(store._client.get_object(Bucket=store.bucket, Key=name)["Body"].read())
        body[at : at + 4096] = bytes(4096)
        store._client.put_object(Bucket=store.bucket, Key=name, Body=bytes(body))
    else:
        with (store.staging / key).open("r+b") as fh:
            fh.seek(at)
            fh.write(bytes(4096))
    vc.upload_segment(rid, 0, data, start=vc.received(rid, 0))
    assert vc.complete(rid).matches(signed.manifest)
    with platform.session() as db:
        assert db.get(Recording, rid).state == RecordingState.STORED


def test_uploads_in_progress_are_forgotten_when_idle_too_many_or_quarantined(monkeypatch):
    """Each upload in progress keeps its unwrapped data key between pieces: bounded in number and idle time, and
    dropped when its recording is quarantined, so an abandoned upload never keeps a key for the process's life."""
    from temoin.vault import ingest

    clock = [1000.0]
    monkeypatch.setattr(ingest.time, "monotonic", lambda: clock[0])
    cache = ingest._ProgressCache(limit=2, idle_s=60)
    entry = object()
    for key in ("t/r1/00000.seg", "t/r2/00000.seg", "t/r3/00000.seg"):
        cache[key] = entry  # type: ignore[assignment]  # a stand-in: the cache never looks inside
    assert cache.get("t/r1/00000.seg") is None and cache.get("t/r3/00000.seg") is entry  # the oldest went
    clock[0] += 61
    assert cache.get("t/r3/00000.seg") is None and len(cache) == 0  # idle for a minute: forgotten
    cache["t/r4/00000.seg"] = entry  # type: ignore[assignment]  # the same stand-in
    cache["t/r5/00001.seg"] = entry  # type: ignore[assignment]  # the same stand-in
    cache.drop_recording("t", "r4")
    assert cache.get("t/r4/00000.seg") is None and cache.get("t/r5/00001.seg") is entry
