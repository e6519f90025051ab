"""Retention (R241-13): a recording is deleted when its tenant's legal period is over, never before, unless
a hold for a procedure keeps it; deletion destroys the data key, leaves a signed certificate and an
erasure entry in the journal, and removes the blobs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from temoin.db import utcnow
from temoin.demo.commune import territory
from temoin.evidence import crypto
from temoin.evidence.canonical import b64d
from temoin.evidence.signing import verify as verify_signature
from temoin.identity import service
from temoin.identity.models import User
from temoin.journal.entry import Actor
from temoin.journal.models import JournalEntry
from temoin.journal.verify import verify_all
from temoin.law.profiles import get_profile
from temoin.vault.holds import HoldError, ProcedureType, lift_hold, place_hold
from temoin.vault.models import DeletionCertificate, PendingBlobDeletion, Recording, RecordingState
from temoin.vault.retention import HoldForbidsDeletion, delete_recording, sweep
from tests.helpers import Commune, enrol_camera, make_commune, sign_in, upload
from tests.s3_helpers import BOTH_STORES, blob_names, read_raw, staged_anything, write_raw

SECOND = timedelta(seconds=1)
TEMOIN = Path(sys.executable).with_name("temoin")


def days_ago(n: float) -> datetime:
    return utcnow() - timedelta(days=n)


def recording(platform, rid: str) -> Recording:
    with platform.session() as db:
        return db.get(Recording, rid)


def run_sweep(platform, now: datetime | None = None):
    with platform.session() as db:
        return sweep(platform, db, now=now)


def chief(db, slug: str) -> User:
    return db.scalar(select(User).where(User.username == f"{slug}-chief"))


def erasures(platform, rid: str) -> list[JournalEntry]:
    with platform.session() as db:
        return [
            e
            for e in db.scalars(select(JournalEntry).where(JournalEntry.action == "erasure"))
            if rid in orjson.loads(e.body)["recordings"]
        ]


def cli(platform, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        TEMOIN_HOME=str(platform.settings.home),
        TEMOIN_DATABASE_URL=platform.settings.database_url,
        COLUMNS="250",
        NO_COLOR="1",
    )
    env.pop("TEMOIN_MASTER_KEY", None)
    env.pop("TEMOIN_MASTER_KEY_FILE", None)
    return subprocess.run([str(TEMOIN), *args], env=env, capture_output=True, text=True, timeout=120)


def assert_deleted(platform, slug: str, rid: str) -> None:
    rec = recording(platform, rid)
    assert rec.state == RecordingState.DELETED and rec.wrapped_key is None and rec.deleted_at is not None
    assert blob_names(platform.store, f"{slug}/{rid}") == []
    assert platform.store.staged_keys(f"{slug}/{rid}") == []


def assert_kept(platform, slug: str, rid: str, segments: int) -> None:
    rec = recording(platform, rid)
    assert rec.state == RecordingState.STORED and rec.wrapped_key is not None and rec.deleted_at is None
    assert len(blob_names(platform.store, f"{slug}/{rid}")) == segments


# --- the deadline -----------------------------------------------------------------------------------


@BOTH_STORES
def test_deleted_once_the_deadline_passed_and_not_a_second_before(platform, client):
    commune = make_commune(platform)
    started = days_ago(70)
    rid, _ = upload(platform, client, commune, started_at=started, duration_s=4, segment_s=2)
    young, _ = upload(platform, client, commune, started_at=days_ago(2), duration_s=2, segment_s=2)
    rec = recording(platform, rid)
    assert rec.retention_until == get_profile("fr-police-municipale").retention.deadline(started)
    assert rec.retention_until < utcnow()
    assert_kept(platform, commune.slug, rid, 2)

    result = run_sweep(platform, now=rec.retention_until - SECOND)
    assert result.deleted == []
    assert_kept(platform, commune.slug, rid, 2)

    result = run_sweep(platform, now=rec.retention_until + SECOND)
    assert result.deleted == [rid] and result.blobs_removed == 2
    assert_deleted(platform, commune.slug, rid)
    assert_kept(platform, commune.slug, young, 1)  # its period runs on

    assert run_sweep(platform).deleted == []  # nothing is deleted twice
    with platform.session() as db:
        assert verify_all(db, platform.journal.sink, platform.keyring.public_key).ok


def test_deletion_leaves_a_signed_certificate_and_an_erasure_entry(platform, client):
    commune = make_commune(platform)
    rid, _receipt = upload(platform, client, commune, started_at=days_ago(45))
    before = recording(platform, rid)
    now = utcnow()
    assert run_sweep(platform, now=now).deleted == [rid]

    with platform.session() as db:
        cert = db.scalar(select(DeletionCertificate).where(DeletionCertificate.recording_id == rid))
    assert cert is not None and cert.deleted_at == now
    assert verify_signature(platform.keyring.public_key, b64d(cert.signature), cert.body.encode())
    forged = cert.body.replace(rid, rid[:-1] + ("0" if rid[-1] != "0" else "1"))
    assert not verify_signature(platform.keyring.public_key, b64d(cert.signature), forged.encode())
    body = orjson.loads(cert.body)
    assert body["recording_id"] == rid and body["tenant"] == commune.slug and body["reason"] == "retention"
    assert body["camera_id"] == commune.cameras[0][0]
    assert body["manifest_sha256"] == before.manifest_sha256 and body["chain_head"] == before.chain_head
    assert datetime.fromisoformat(body["retention_until"]) == before.retention_until
    assert datetime.fromisoformat(body["deleted_at"]) == now
    assert "fr-police-municipale" in body["rule"] and "1 month" in body["rule"]
    assert body["platform_key_id"] == platform.keyring.public_key_id

    (entry,) = erasures(platform, rid)
    assert entry.event == "recording.deleted.retention" and entry.chain == commune.slug
    details = orjson.loads(entry.body)
    assert details["actor"]["kind"] == "system" and details["cameras"] == [commune.cameras[0][0]]
    assert datetime.fromisoformat(details["details"]["retention_until"]) == before.retention_until
    # The entry reached the append-only file too.
    assert any(entry.hash.encode() in p.read_bytes() for p in platform.journal.sink.files(commune.slug))


def test_the_data_key_is_destroyed_so_leftover_bytes_are_unreadable(platform, client):
    commune = make_commune(platform)
    rid, _ = upload(platform, client, commune, started_at=days_ago(45), duration_s=2, segment_s=2)
    wrapped = recording(platform, rid).wrapped_key
    assert crypto.unwrap_key(platform.keyring.master_key, wrapped, rid)  # readable while kept
    run_sweep(platform)
    with platform.session() as db:
        stored = db.execute(select(Recording.wrapped_key).where(Recording.id == rid)).scalar_one()
    assert stored is None  # nothing left to unwrap: crypto-shredding


# --- holds ------------------------------------------------------------------------------------------


def test_a_hold_keeps_the_recording_until_it_is_lifted(platform, client):
    commune = make_commune(platform)
    rid, _ = upload(platform, client, commune, started_at=days_ago(60))
    with platform.session() as db:
        place_hold(
            platform,
            db,
            chief(db, commune.slug),
            db.get(Recording, rid),
            ProcedureType.JUDICIAL,
            "Parquet de Port-Témoin 26/123",
        )
        with pytest.raises(HoldError, match="already on hold"):
            place_hold(
                platform, db, chief(db, commune.slug), db.get(Recording, rid), ProcedureType.JUDICIAL, "Parquet 26/124"
            )

    result = run_sweep(platform)
    assert result.deleted == [] and result.held == 1
    assert_kept(platform, commune.slug, rid, 2)
    with platform.session() as db, pytest.raises(HoldForbidsDeletion):
        delete_recording(
            platform, db, db.get(Recording, rid), reason="request", actor=Actor.system("test"), rule="test"
        )
    assert erasures(platform, rid) == []

    with platform.session() as db:
        lift_hold(platform, db, chief(db, commune.slug), db.get(Recording, rid), "procedure closed")
    result = run_sweep(platform)
    assert result.deleted == [rid] and result.held == 0
    assert_deleted(platform, commune.slug, rid)
    with platform.session() as db:
        events = [
            e.event
            for e in db.scalars(
                select(JournalEntry).where(JournalEntry.chain == commune.slug).order_by(JournalEntry.seq)
            )
        ]
    assert events[-3:] == ["hold.placed", "hold.lifted", "recording.deleted.retention"]


# --- other profiles ---------------------------------------------------------------------------------


def test_a_tenant_under_the_2019_rules_keeps_six_months(platform, client):
    municipal = make_commune(platform, "port-temoin", cameras=1)
    with platform.session() as db:
        service.create_tenant(
            platform,
            db,
            slug="vieux-bourg",
            name="Vieux-Bourg",
            profile="fr-police-municipale-2019",
            authorised_cameras=1,
            territory=territory(),
        )
        db.commit()
    old_rules = Commune("vieux-bourg", cameras=[enrol_camera(platform, "vieux-bourg", "vieux-bourg-cam-0")])
    started = days_ago(95)
    short, _ = upload(platform, client, municipal, started_at=started)
    long, _ = upload(platform, client, old_rules, started_at=started)
    kept = recording(platform, long)
    assert kept.retention_until == get_profile("fr-police-municipale-2019").retention.deadline(started)
    assert kept.retention_until - started > timedelta(days=180)

    assert run_sweep(platform).deleted == [short]
    assert_deleted(platform, "port-temoin", short)
    assert_kept(platform, "vieux-bourg", long, 2)

    assert run_sweep(platform, now=kept.retention_until - SECOND).deleted == []
    assert run_sweep(platform, now=kept.retention_until).deleted == [long]  # at the stroke of the deadline
    assert_deleted(platform, "vieux-bourg", long)
    with platform.session() as db:
        cert = db.scalar(select(DeletionCertificate).where(DeletionCertificate.recording_id == long))
    rule = orjson.loads(cert.body)["rule"]
    assert "fr-police-municipale-2019" in rule and "6 months" in rule
    (entry,) = erasures(platform, long)
    assert entry.chain == "vieux-bourg"


# --- crash safety -----------------------------------------------------------------------------------


@BOTH_STORES
def test_blobs_left_by_a_sweep_killed_after_its_commit_are_removed_next_time(platform, client, monkeypatch):
    commune = make_commune(platform)
    rid, _ = upload(platform, client, commune, started_at=days_ago(50))
    other, _ = upload(platform, client, commune, started_at=days_ago(1))

    def killed(prefixes: list[str]) -> int:
        raise SystemExit("killed")

    monkeypatch.setattr(platform.store, "delete_prefixes", killed)
    with platform.session() as db, pytest.raises(SystemExit):
        sweep(platform, db)
    monkeypatch.undo()
    rec = recording(platform, rid)
    assert rec.state == RecordingState.DELETED and rec.wrapped_key is None  # the commit happened
    assert len(blob_names(platform.store, f"{commune.slug}/{rid}")) == 2  # the blobs did not go

    result = run_sweep(platform)
    assert result.deleted == [] and result.orphans_removed == 2
    assert_deleted(platform, commune.slug, rid)
    assert_kept(platform, commune.slug, other, 2)  # a live recording's blobs are never orphans
    assert len(erasures(platform, rid)) == 1


def test_a_killed_sweep_is_finished_by_the_next_pass_without_the_store_audit(platform, client, monkeypatch):
    """The blobs a killed sweep left are recorded as pending: the next hourly pass (no whole-store audit)
    removes them, and the record with them."""
    commune = make_commune(platform)
    rid, _ = upload(platform, client, commune, started_at=days_ago(50))
    other, _ = upload(platform, client, commune, started_at=days_ago(1))

    def killed(prefixes: list[str]) -> int:
        raise SystemExit("killed")

    monkeypatch.setattr(platform.store, "delete_prefixes", killed)
    with platform.session() as db, pytest.raises(SystemExit):
        sweep(platform, db, orphans=False)
    monkeypatch.undo()
    with platform.session() as db:
        assert db.scalars(select(PendingBlobDeletion.prefix)).all() == [f"{commune.slug}/{rid}"]

    with platform.session() as db:
        result = sweep(platform, db, orphans=False)
    assert result.deleted == [] and result.orphans_removed == 2
    assert_deleted(platform, commune.slug, rid)
    assert_kept(platform, commune.slug, other, 2)
    with platform.session() as db:
        assert db.scalars(select(PendingBlobDeletion.prefix)).all() == []


def test_a_pending_deletion_never_removes_a_kept_recordings_blobs(platform, client):
    """Whatever a pending row says, only the blobs of a recording deleted in the catalogue go."""
    commune = make_commune(platform)
    kept, _ = upload(platform, client, commune, started_at=days_ago(1))
    with platform.session() as db:
        db.add(PendingBlobDeletion(prefix=f"{commune.slug}/{kept}", recorded_at=utcnow()))
        db.commit()
    with platform.session() as db:
        assert sweep(platform, db, orphans=False).orphans_removed == 0
        assert db.scalars(select(PendingBlobDeletion.prefix)).all() == []
    assert_kept(platform, commune.slug, kept, 2)


@BOTH_STORES
def test_blob_folder_reappearing_for_a_deleted_recording_is_removed(platform, client):
    commune = make_commune(platform)
    rid, _ = upload(platform, client, commune, started_at=days_ago(50))
    prefix = f"{commune.slug}/{rid}"
    saved = {name: read_raw(platform.store, f"{prefix}/{name}") for name in blob_names(platform.store, prefix)}
    run_sweep(platform)
    assert blob_names(platform.store, prefix) == []
    for name, data in saved.items():  # restored from an old backup of the folder, or of the bucket
        write_raw(platform.store, f"{prefix}/{name}", data)
    assert run_sweep(platform).orphans_removed == len(saved) == 2
    assert blob_names(platform.store, prefix) == []


# --- what users see ---------------------------------------------------------------------------------


def test_deleted_recording_is_no_longer_listed(platform, client):
    commune = make_commune(platform)
    old, _ = upload(platform, client, commune, started_at=days_ago(40))
    young, _ = upload(platform, client, commune, started_at=days_ago(3))
    sign_in(platform, client, f"{commune.slug}-chief")
    listed = {r["id"]: r for r in client.get("/api/v1/recordings").json()}
    assert set(listed) == {old, young}
    assert datetime.fromisoformat(listed[old]["retention_until"]) == recording(platform, old).retention_until

    run_sweep(platform)
    r = client.get("/api/v1/recordings")
    assert r.status_code == 200
    assert [x["id"] for x in r.json()] == [young]
    assert client.get(f"/api/v1/recordings/{old}").status_code == 404


def test_cli_retention_run_prints_the_count(platform, client):
    commune = make_commune(platform)
    a, _ = upload(platform, client, commune, started_at=days_ago(40), duration_s=2, segment_s=2)
    b, _ = upload(platform, client, commune, started_at=days_ago(35), duration_s=2, segment_s=2)
    c, _ = upload(platform, client, commune, started_at=days_ago(1), duration_s=2, segment_s=2)
    run = cli(platform, "retention", "run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 recordings deleted (2 blobs), 0 kept by a hold, 0 orphan blobs removed" in run.stdout
    assert_deleted(platform, commune.slug, a)
    assert_deleted(platform, commune.slug, b)
    assert_kept(platform, commune.slug, c, 1)
    again = cli(platform, "retention", "run")
    assert again.returncode == 0 and "0 recordings deleted" in again.stdout


@BOTH_STORES
def test_quarantined_and_abandoned_uploads_are_deleted_on_time_too(platform, client):
    """A forged or never-finished upload still holds images of people: the same period applies."""
    from datetime import timedelta

    from temoin.db import utcnow
    from temoin.demo.samples import sample_recording
    from temoin.vault.models import Recording, RecordingState
    from temoin.vault.retention import sweep
    from tests.helpers import agent_number, make_commune, vault_client

    commune = make_commune(platform)
    cam = commune.cameras[0]
    long_ago = utcnow() - timedelta(days=70)
    signed, segments = sample_recording(
        cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=long_ago, duration_s=2, segment_s=2
    )
    vc = vault_client(platform, client, cam)
    vc.send_manifest(signed)
    half, size = len(segments[0]) // 2, len(segments[0])
    r = vc.http.put(
        f"/api/v1/ingest/recordings/{signed.manifest.recording_id}/segments/0",
        content=segments[0][:half],
        headers={"Content-Range": f"bytes 0-{half - 1}/{size}"},
    )
    assert r.status_code == 200  # then the camera never came back
    with platform.session() as db:
        assert db.get(Recording, signed.manifest.recording_id).state == RecordingState.RECEIVING
        result = sweep(platform, db)
        assert signed.manifest.recording_id in result.deleted
        rec = db.get(Recording, signed.manifest.recording_id)
        assert rec.state == RecordingState.DELETED and rec.wrapped_key is None
    assert not staged_anything(platform.store)
