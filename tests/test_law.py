"""The law's rules enforced in the domain (CSI R241-8 to R241-17, loi 78-17): training sees anonymised
renditions only, every derived artefact is deleted with its recording, a procedure extraction places a hold,
the journal prune keeps the traces of recordings still stored, and nothing is handed to a person whose request
is restricted or whose recording a judicial procedure holds.

Each test here failed on the code before these rules were enforced."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select

from temoin.db import utcnow
from temoin.evidence import crypto
from temoin.identity.models import Tenant, User
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.rights import copy_storage
from temoin.rights.models import CopyState, RedactedCopy
from temoin.vault import artefact_blobs
from temoin.vault.models import Recording
from tests.artefact_helpers import artefact_keys
from tests.helpers import JUSTIFIED, Commune, approve_erasure, make_commune, sign_in, upload


def _h(csrf: str) -> dict:
    return {"X-CSRF-Token": csrf}


def _entries(platform: Platform, event: str) -> list[dict]:
    with platform.session() as db:
        return [
            parse_body(e.body)
            for e in db.scalars(select(JournalEntry).where(JournalEntry.event == event).order_by(JournalEntry.id))
        ]


def _user(db, commune: Commune, role: Role) -> User:
    return db.scalar(select(User).where(User.username == commune.users[role]))


def _access_request(client, csrf: str, kind: str = "access") -> dict:
    r = client.post(
        "/api/v1/rights/requests",
        headers=_h(csrf),
        json={"kind": kind, "person_description": "veste rouge, devant la mairie", "contact": "dupont@example.org"},
    )
    assert r.status_code == 201, r.text
    return r.json()


def make_copy(
    platform: Platform, commune: Commune, rid: str, request_id: int, state: CopyState = CopyState.APPROVED
) -> int:
    """An access copy as the redaction jobs leave it: face thumbnails, tracks and the copy, sealed in its folder.

    Written with the module's own sealing (the engine itself is exercised by test_rights' slow test)."""
    with platform.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == commune.slug))
        copy = RedactedCopy(
            tenant_id=tenant.id,
            request_id=request_id,
            recording_id=rid,
            state=state.value,
            tracks=[{"id": 1, "frames": 3}],
            keep_tracks=[1],
            add_regions=[],
            remove_regions=[],
            created_by=_user(db, commune, Role.CHIEF).id,
        )
        db.add(copy)
        db.flush()
        copy.data_key = crypto.wrap_key(platform.keyring.master_key, crypto.new_data_key(), f"rights-copy-{copy.id}")
        copy.folder = f"{tenant.slug}/copy-{copy.id}"
        folder = f"rights/{copy.folder}"
        key = crypto.unwrap_key(platform.keyring.master_key, copy.data_key, f"rights-copy-{copy.id}")
        copy_storage.seal_bytes(platform, folder, "thumbnails.sealed", key, orjson.dumps({"1": "a face, as JPEG"}))
        copy_storage.seal_bytes(platform, folder, "tracks.sealed", key, orjson.dumps([{"id": 1, "boxes": {}}]))
        video = b"the redacted video"
        copy.sha256, copy.size_bytes = copy_storage.seal_bytes(platform, folder, "copy.sealed", key, video)
        copy.produced_at = utcnow()
        db.commit()
        return copy.id


# --- 5. restriction is enforced at delivery -----------------------------------------------------------------


def test_an_approved_copy_is_not_delivered_under_a_judicial_hold_or_a_restriction(platform, client):
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    other, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    req = _access_request(client, csrf)
    copy_id = make_copy(platform, commune, rid, req["id"])
    free_id = make_copy(platform, commune, other, req["id"])

    # A judicial procedure holds the recording: the copy stays here, the person is told of the CNIL route.
    assert (
        client.post(
            f"/api/v1/recordings/{rid}/holds",
            headers=_h(csrf),
            json={"procedure": "judicial", "reference": "Parquet 26/123"},
        ).status_code
        == 201
    )
    r = client.get(f"/api/v1/rights/copies/{copy_id}/download")
    assert r.status_code == 409, r.text
    assert "judicial procedure" in r.json()["detail"] and "CNIL" in r.json()["detail"]
    assert "Parquet 26/123" in r.json()["detail"]
    # An administrative hold does not restrict (only a judicial procedure may be harmed by the person's access).
    assert client.get(f"/api/v1/rights/copies/{free_id}/download").content == b"the redacted video"

    # The request itself is restricted: no copy at all, even of a recording no procedure holds.
    r = client.post(
        f"/api/v1/rights/requests/{req['id']}/status",
        headers=_h(csrf),
        json={"status": "restricted", "reason": "enquête en cours", "procedure_reference": "PV 26/9"},
    )
    assert r.status_code == 200, r.text
    r = client.get(f"/api/v1/rights/copies/{free_id}/download")
    assert r.status_code == 409 and "restricted" in r.json()["detail"] and "CNIL" in r.json()["detail"]
    with platform.session() as db:
        assert db.get(RedactedCopy, copy_id).delivered_at is None
    refused = _entries(platform, "rights.copy.delivery_refused")
    assert [(e["recordings"], e["details"]["reason"]) for e in refused] == [
        ([rid], "judicial_hold"),
        ([other], "restricted"),
    ]
    assert len(_entries(platform, "rights.copy.delivered")) == 1  # only the one before the restriction


# --- 1. training sees anonymised renditions only --------------------------------------------------------------


def test_training_never_streams_the_original(platform, client):
    from temoin.identity.secrets import token_hash
    from temoin.vault.models import AccessGrant

    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    training = {"motive": {"code": "training", "text": "session de formation du 12 mars"}}
    for role in (Role.MAYOR, Role.CHIEF, Role.DESIGNATED_AGENT):
        csrf = sign_in(platform, client, commune.users[role])
        r = client.post(f"/api/v1/recordings/{rid}/consultations", headers=_h(csrf), json=training)
        assert r.status_code == 403, (role, r.text)
        assert "anonymised" in r.json()["detail"] and "R241-13" in r.json()["detail"]
        assert "training extraction" in r.json()["detail"]
    # The page says so in the user's language, and plays nothing.
    page = client.post(
        f"/recordings/{rid}/consult", data={"motive_code": "training", "motive_text": "formation", "csrf_token": csrf}
    )
    assert page.status_code == 403 and "images anonymisées" in page.text and "/segments/" not in page.text
    assert _entries(platform, "recording.consulted") == []
    refused = _entries(platform, "consultation.refused")
    assert len(refused) == 4 and all(e["motive"]["code"] == "training" for e in refused)

    # A training grant left from before the rule (or written by hand) streams nothing either.
    with platform.session() as db:
        user = _user(db, commune, Role.DESIGNATED_AGENT)
        db.add(
            AccessGrant(
                token_hash=token_hash("old-training-grant"),
                tenant_id=user.tenant_id,
                user_id=user.id,
                recording_id=rid,
                motive_code="training",
                motive_text="formation",
                expires_at=utcnow() + timedelta(minutes=30),
            )
        )
        db.commit()
    r = client.get(f"/api/v1/recordings/{rid}/segments/0", params={"grant": "old-training-grant"})
    assert r.status_code == 403 and "anonymised" in r.json()["detail"]
    # Another motive still opens the original, journaled with it.
    r = client.post(
        f"/api/v1/recordings/{rid}/consultations",
        headers=_h(csrf),
        json={"motive": {"code": "incident_review", "text": "analyse de l'intervention"}},
    )
    assert r.status_code == 201
    assert client.get(r.json()["segments"][0]).status_code == 200


# --- 3. a procedure extraction places a hold ------------------------------------------------------------------


def _extract(
    client,
    csrf: str,
    rids: list[str],
    procedure: str = "judicial",
    reference: str = "PV 2026/004512",
    kind: str = "judicial_police",
) -> dict:
    r = client.post(
        "/api/v1/extractions",
        headers=_h(csrf),
        json={
            "recording_ids": rids,
            "recipient_name": "OPJ Claire Martin",
            "recipient_kind": kind,
            "procedure_type": procedure,
            "reference": reference,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_a_procedure_extraction_keeps_its_originals_until_a_person_lifts_the_hold(platform, client):
    from temoin.extraction.models import Extraction
    from temoin.extraction.package import PACKAGE_DAYS, purge_expired
    from temoin.vault.holds import HoldError, lift_hold
    from temoin.vault.models import Hold
    from temoin.vault.retention import sweep

    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, started_at=utcnow() - timedelta(days=40), duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    out = _extract(client, csrf, [rid])
    with platform.session() as db:
        (hold,) = db.scalars(select(Hold).where(Hold.recording_id == rid))
        assert (hold.extraction_id, hold.reference, hold.procedure_type, hold.lifted_at) == (
            out["id"],
            "PV 2026/004512",
            "judicial",
            None,
        )
    (placed,) = _entries(platform, "hold.placed")
    assert placed["details"]["extraction_id"] == out["id"] and placed["recordings"] == [rid]
    assert placed["actor"]["kind"] == "user"

    # Its month is over, and a week later the package's pick-up period too: the original stays, the package goes.
    later = utcnow() + timedelta(days=PACKAGE_DAYS + 1)
    with platform.session() as db:
        assert sweep(platform, db, now=later).deleted == []
        assert purge_expired(platform, db, now=later) == 1
        assert db.get(Recording, rid).state == "stored" and db.get(Extraction, out["id"]).package_path is None

    # A second procedure extracts it too: two holds; lifting needs to name one, and the other still keeps it.
    out2 = _extract(client, csrf, [rid], procedure="disciplinary", reference="CD-2026-3", kind="disciplinary_authority")
    r = client.post(f"/api/v1/recordings/{rid}/holds/lift", headers=_h(csrf), json={"reason": "classement"})
    assert r.status_code == 409 and out["id"] in r.json()["detail"] and out2["id"] in r.json()["detail"]
    with platform.session() as db:
        second = db.scalar(select(Hold).where(Hold.extraction_id == out2["id"]))
        # Only a person entitled to holds lifts one; the technical administrator is not.
        admin = _user(db, commune, Role.TECH_ADMIN)
        with pytest.raises(HoldError, match="may not lift"):
            lift_hold(platform, db, admin, db.get(Recording, rid), "cleanup", second.id)
    r = client.post(
        f"/api/v1/recordings/{rid}/holds/lift",
        headers=_h(csrf),
        json={"reason": "conseil de discipline tenu", "hold_id": second.id},
    )
    assert r.status_code == 200, r.text
    with platform.session() as db:
        assert sweep(platform, db).deleted == []
    r = client.post(f"/api/v1/recordings/{rid}/holds/lift", headers=_h(csrf), json={"reason": "jugement rendu"})
    assert r.status_code == 200, r.text
    lifted = _entries(platform, "hold.lifted")
    assert [e["details"]["extraction_id"] for e in lifted] == [out2["id"], out["id"]]
    assert all(e["actor"]["kind"] == "user" for e in lifted)
    with platform.session() as db:
        assert sweep(platform, db).deleted == [rid]


# --- 4. the journal prune keeps the traces of recordings still stored ------------------------------------------


def test_journal_prune_stops_before_the_first_trace_of_a_recording_still_stored(platform, client):
    from temoin.journal.checkpoints import prune
    from temoin.journal.verify import verify_all
    from temoin.vault.holds import ProcedureType, lift_hold, place_hold
    from temoin.vault.retention import sweep

    commune = make_commune(platform, cameras=1)
    gone, _ = upload(platform, client, commune, started_at=utcnow() - timedelta(days=40), duration_s=1, segment_s=1)
    held, _ = upload(platform, client, commune, started_at=utcnow() - timedelta(days=40), duration_s=1, segment_s=1)
    with platform.session() as db:
        place_hold(
            platform,
            db,
            _user(db, commune, Role.CHIEF),
            db.get(Recording, held),
            ProcedureType.JUDICIAL,
            "Parquet 26/77",
        )
        assert sweep(platform, db).deleted == [gone]

    def seqs(rid: str | None = None) -> list[int]:
        with platform.session() as db:
            rows = db.scalars(select(JournalEntry).where(JournalEntry.chain == commune.slug).order_by(JournalEntry.seq))
            return [e.seq for e in rows if rid is None or rid in parse_body(e.body)["recordings"]]

    traces = seqs(held)
    assert len(traces) >= 2  # its collection and its hold, at least
    # Three years on (every entry is older than the cutoff): what precedes its first trace goes, the rest stays.
    cutoff = utcnow() + timedelta(days=1)
    with platform.session() as db:
        removed = prune(db, platform.journal.sink, platform.keyring, commune.slug, cutoff)
    assert removed == traces[0] - 1 and removed > 0
    assert seqs()[0] == traces[0] and seqs(held) == traces
    with platform.session() as db:
        assert verify_all(db, platform.journal.sink, platform.keyring.public_key).ok
        # Nothing more goes while it is kept.
        assert prune(db, platform.journal.sink, platform.keyring, commune.slug, cutoff) == 0
        lift_hold(platform, db, _user(db, commune, Role.CHIEF), db.get(Recording, held), "jugement rendu")
        assert sweep(platform, db).deleted == [held]
    # Deleted, its traces may go once they are past their three years.
    with platform.session() as db:
        assert prune(db, platform.journal.sink, platform.keyring, commune.slug, utcnow() + timedelta(days=1)) > 0
        assert seqs(held) == []
        assert verify_all(db, platform.journal.sink, platform.keyring.public_key).ok


# --- 2. every derived artefact goes with its recording ----------------------------------------------------------


def make_live_backup(platform: Platform, commune: Commune, *, camera: int, at, seconds: float = 60) -> str:
    """A live session of this camera at `at`, with its server-side backup sealed on disk as the hub leaves it."""
    import uuid

    from temoin.live import backup
    from temoin.live.models import LiveSession

    sid = uuid.uuid4().hex
    with platform.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == commune.slug))
        key, wrapped = backup.new_key(platform.keyring.master_key, sid)
        name = backup.backup_name(tenant.slug, sid)
        sha256, size = artefact_blobs.write_bytes(
            platform.store, artefact_blobs.key(name, backup.BACKUP_FILE), key, b"live video of the scene"
        )
        db.add(
            LiveSession(
                id=sid,
                tenant_id=tenant.id,
                device_id=commune.cameras[camera][0],
                reason="threat",
                state="ended",
                requested_at=at,
                ended_at=at + timedelta(seconds=seconds),
                backup_file=name,
                backup_key=wrapped,
                backup_sha256=sha256,
                backup_bytes=size,
            )
        )
        db.commit()
    return sid


def _certificate(platform: Platform, rid: str) -> dict:
    from temoin.vault.models import DeletionCertificate

    with platform.session() as db:
        cert = db.scalar(select(DeletionCertificate).where(DeletionCertificate.recording_id == rid))
        return orjson.loads(cert.body)


def test_retention_deletes_thumbnails_tracks_copies_live_backups_and_packages_with_the_recording(platform, client):
    from temoin.extraction.models import Extraction
    from temoin.live.models import LiveSession
    from temoin.vault.holds import lift_hold
    from temoin.vault.retention import sweep

    commune = make_commune(platform, cameras=2)
    started = utcnow().replace(microsecond=0) - timedelta(days=40)
    rid, _ = upload(platform, client, commune, started_at=started, duration_s=2, segment_s=2)
    keep, _ = upload(
        platform, client, commune, camera=1, started_at=utcnow() - timedelta(days=2), duration_s=1, segment_s=1
    )
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    req = _access_request(client, csrf)
    copy_id = make_copy(platform, commune, rid, req["id"])
    other_copy = make_copy(platform, commune, keep, req["id"])
    backup = make_live_backup(platform, commune, camera=0, at=started - timedelta(seconds=20))
    # The same camera another day, and another camera at the same time: not this recording's.
    unrelated = make_live_backup(platform, commune, camera=0, at=utcnow() - timedelta(days=3))
    elsewhere = make_live_backup(platform, commune, camera=1, at=started)
    package = _extract(client, csrf, [rid])
    with platform.session() as db:  # the procedure is over; its package is still within its pick-up week
        lift_hold(platform, db, _user(db, commune, Role.CHIEF), db.get(Recording, rid), "classement sans suite")
        zip_name = db.get(Extraction, package["id"]).package_path
    copy_folder = f"rights/{commune.slug}/copy-{copy_id}"
    backup_file = f"live-backup/{commune.slug}/{backup}.ts.sealed"
    store = platform.store
    assert len(artefact_keys(store, copy_folder)) == 3 and artefact_keys(store, backup_file)
    assert artefact_keys(store, zip_name)

    with platform.session() as db:
        result = sweep(platform, db)
    assert result.deleted == [rid] and result.derived_removed == 3
    assert (
        artefact_keys(store, copy_folder) == artefact_keys(store, backup_file) == artefact_keys(store, zip_name) == []
    )
    with platform.session() as db:
        copy = db.get(RedactedCopy, copy_id)
        assert copy.state == "deleted" and copy.data_key is None
        s = db.get(LiveSession, backup)
        assert s.backup_key is None and s.backup_file is None and s.backup_sha256  # the hash stays as proof
        ext = db.get(Extraction, package["id"])
        assert ext.package_path is None and ext.package_deleted_at is not None
        # What was not made from it stays.
        assert db.get(RedactedCopy, other_copy).state == "approved" and db.get(LiveSession, unrelated).backup_file
    assert result.live_backups_expired == 1  # the other camera's: its month is over and no recording covers it
    with platform.session() as db:
        assert db.get(LiveSession, elsewhere).backup_file is None
    assert artefact_keys(store, f"rights/{commune.slug}/copy-{other_copy}")

    # The certificate says what went with the recording; so does the journal.
    listed = {(d["kind"], d["id"]): d for d in _certificate(platform, rid)["derived"]}
    assert set(listed) == {
        ("access_copy", str(copy_id)),
        ("live_backup", backup),
        ("extraction_package", package["id"]),
    }
    assert listed[("access_copy", str(copy_id))]["what"] == ["face thumbnails", "face tracks", "redacted copy"]
    assert listed[("extraction_package", package["id"])]["sha256"] == package["sha256"]
    (entry,) = _entries(platform, "recording.deleted.retention")
    assert {(d["kind"], d["id"]) for d in entry["details"]["derived"]} == set(listed)
    # The copy's faces cannot be shown any more, and say why.
    r = client.get(f"/api/v1/rights/copies/{copy_id}/faces")
    assert r.status_code == 409 and "deleted with its recording" in r.json()["detail"]


def test_an_erasure_deletes_the_copies_and_backups_too_and_its_certificate_lists_them(platform, client):
    commune = make_commune(platform, cameras=1)
    started = utcnow().replace(microsecond=0) - timedelta(hours=3)
    rid, _ = upload(platform, client, commune, started_at=started, duration_s=2, segment_s=2)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    access = _access_request(client, csrf)
    copy_id = make_copy(platform, commune, rid, access["id"], state=CopyState.TRACKS_READY)
    backup = make_live_backup(platform, commune, camera=0, at=started + timedelta(seconds=1))
    erasure = _access_request(client, csrf, kind="erasure")
    r = client.post(
        f"/api/v1/rights/requests/{erasure['id']}/erasure",
        headers=_h(csrf),
        json={"recording_ids": [rid], "justifications": {rid: JUSTIFIED}},
    )
    assert r.status_code == 201, r.text
    r = approve_erasure(platform, client, commune, r.json()["id"])
    assert r.status_code == 200, r.text
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    assert artefact_keys(platform.store, f"rights/{commune.slug}/copy-{copy_id}") == []
    assert artefact_keys(platform.store, f"live-backup/{commune.slug}/{backup}.ts.sealed") == []
    derived = _certificate(platform, rid)["derived"]
    assert sorted(d["kind"] for d in derived) == ["access_copy", "live_backup"]
    assert [d["what"] for d in derived if d["kind"] == "access_copy"] == [
        ["face thumbnails", "face tracks", "redacted copy"]
    ]


def test_live_backups_past_their_period_go_and_files_left_by_a_crash_are_removed(platform, client):
    import os

    from temoin.live.models import LiveSession
    from temoin.vault.retention import sweep

    commune = make_commune(platform, cameras=1)
    old = make_live_backup(platform, commune, camera=0, at=utcnow() - timedelta(days=40))  # no recording made
    young = make_live_backup(platform, commune, camera=0, at=utcnow() - timedelta(days=3))
    # A copy folder and a package that no row names any more (a deletion killed after its commit), on the disk
    # as they were before artefacts went to the blob store, and one package in the store.
    stray = copy_storage.copies_root(platform) / commune.slug / "copy-999"
    stray.mkdir(parents=True)
    (stray / "thumbnails.sealed").write_bytes(b"sealed faces")
    zip_left = platform.settings.home / "extractions" / commune.slug / "ext-20260101-000000000000.zip"
    zip_left.parent.mkdir(parents=True)
    zip_left.write_bytes(b"PK plaintext package")
    fresh = zip_left.with_name("ext-20260102-000000000000.zip")  # being recorded right now: left alone
    fresh.write_bytes(b"PK")
    stored = f"extractions/{commune.slug}/ext-20260103-000000000000.zip"
    blob = artefact_blobs.key(stored, "package.zip.sealed")
    artefact_blobs.write_bytes(platform.store, blob, crypto.new_data_key(), b"PK sealed package")
    hour_ago = utcnow().timestamp() - 7200
    for path in (stray, zip_left, platform.store.blobs / blob):
        os.utime(path, (hour_ago, hour_ago))

    with platform.session() as db:
        result = sweep(platform, db)
    assert result.live_backups_expired == 1 and result.orphans_removed == 3
    assert (
        not stray.exists() and not zip_left.exists() and fresh.exists() and artefact_keys(platform.store, stored) == []
    )
    with platform.session() as db:
        assert db.get(LiveSession, old).backup_file is None and db.get(LiveSession, young).backup_file
    assert artefact_keys(platform.store, f"live-backup/{commune.slug}/{old}.ts.sealed") == []
    (gone,) = _entries(platform, "live.backup_deleted")
    assert gone["action"] == "erasure" and gone["details"]["live_session"] == old


# --- 6. the command line acts as the authenticated person only ----------------------------------------------------


def test_the_command_line_journals_the_authenticated_person_not_a_typed_name(platform, client, settings, monkeypatch):
    from typer.testing import CliRunner

    from temoin.cli import app as cli_app
    from temoin.identity import service
    from tests.helpers import PASSWORD, totp_code

    runner = CliRunner()
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    env = {"TEMOIN_HOME": str(settings.home), "TEMOIN_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    monkeypatch.delenv("TEMOIN_API_TOKEN", raising=False)
    chief, dpo = commune.users[Role.CHIEF], commune.users[Role.DPO]
    extract = [
        "extract",
        commune.slug,
        rid,
        "--recipient",
        "OPJ Martin",
        "--kind",
        "judicial_police",
        "--procedure",
        "judicial",
        "--reference",
        "PV 2026/88",
    ]

    # Naming the chief is not being the chief: a wrong password extracts nothing and journals nothing as them.
    r = runner.invoke(cli_app, [*extract, "--by", chief], env=env, input="not the password\n000000\n")
    assert r.exit_code == 1 and "wrong password" in r.output
    r = runner.invoke(cli_app, [*extract, "--by", chief], env=env, input=f"{PASSWORD}\n000000\n")
    assert r.exit_code == 1 and "code" in r.output
    assert _entries(platform, "extraction.created") == []
    # Password and code: journaled as the chief, with the procedure as motive.
    r = runner.invoke(cli_app, [*extract, "--by", chief], env=env, input=f"{PASSWORD}\n{totp_code(platform, chief)}\n")
    assert r.exit_code == 0, r.output
    (created,) = _entries(platform, "extraction.created")
    assert created["actor"]["id"] == chief
    assert created["motive"] == {"code": "judicial_procedure", "text": "PV 2026/88"}

    # `rights create` without --by no longer picks the first entitled user: it asks who you are.
    create = [
        "rights",
        "create",
        commune.slug,
        "--kind",
        "access",
        "--description",
        "veste rouge",
        "--contact",
        "dupont@example.org",
    ]
    r = runner.invoke(cli_app, create, env=env)
    assert r.exit_code == 2 and "--by USERNAME" in r.output and "TEMOIN_API_TOKEN" in r.output
    # With the DPO's API token, the request is the DPO's.
    with platform.session() as db:
        token = service.issue_api_token(platform, db, _user(db, commune, Role.DPO), "cli")
    r = runner.invoke(cli_app, create, env={**env, "TEMOIN_API_TOKEN": token})
    assert r.exit_code == 0, r.output
    (made,) = _entries(platform, "rights.request.created")
    assert made["actor"]["id"] == dpo
    r = runner.invoke(cli_app, [*create, "--by", chief], env={**env, "TEMOIN_API_TOKEN": token})
    assert r.exit_code == 2 and f"belongs to {dpo}" in r.output
    r = runner.invoke(cli_app, create, env={**env, "TEMOIN_API_TOKEN": "tmn_forged"})
    assert r.exit_code == 2 and "not a valid API token" in r.output
