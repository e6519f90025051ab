"""Packages, redacted copies and live backups kept in the platform's blob store (vault.artefact_blobs), on the local
store and on S3: sealed (the store never holds their plaintext), served by any node, removed by expiry, deletion
and the orphan sweep; those made before, on the local disk, still served and removed."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from datetime import timedelta

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from temoin.db import utcnow
from temoin.evidence import crypto
from temoin.extraction import package as pkg
from temoin.extraction.models import Extraction
from temoin.extraction.writing import PACKAGE_FILE
from temoin.identity.models import Tenant, User
from temoin.law.access import Role
from temoin.live import backup
from temoin.live.models import LiveSession
from temoin.platform import Platform
from temoin.rights import copy_storage
from temoin.rights.models import CopyState, RedactedCopy
from temoin.settings import Settings
from temoin.vault import artefact_blobs, derived
from temoin.vault.models import Recording
from temoin.web.app import create_app
from tests.artefact_helpers import artefact_keys, artefact_raw, staged_artefacts
from tests.extraction_helpers import _extract
from tests.helpers import make_commune, sign_in, upload
from tests.rights_helpers import _create
from tests.s3_helpers import BOTH_STORES


def _marked_package(platform: Platform, client: TestClient, commune) -> tuple[dict, str, str]:
    """A package whose manifest carries a marker (the zip is stored, not compressed: the marker is in its bytes)."""
    rid, _ = upload(platform, client, commune, duration_s=2, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    marker = f"PV-MARKER-{uuid.uuid4().hex}"
    out = _extract(client, csrf, [rid], reference=marker)
    return out, marker, f"extractions/{commune.slug}/{out['id']}.zip"


@BOTH_STORES
def test_a_package_is_sealed_in_the_store_downloaded_whole_and_by_ranges_then_expires(platform, client):
    commune = make_commune(platform, cameras=1)
    out, marker, name = _marked_package(platform, client, commune)

    got = client.get(out["download_url"])
    assert got.status_code == 200, got.text
    assert hashlib.sha256(got.content).hexdigest() == out["sha256"] == got.headers["x-content-sha256"]
    assert len(got.content) == out["size"] and marker.encode() in got.content
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["content-disposition"] == f'attachment; filename="temoin-extraction-{out["id"]}.zip"'
    # The store holds the package sealed, and nothing of its plaintext; nothing is on the node's disk.
    raw = artefact_raw(platform.store, name)
    assert len(raw) == 1 and raw[0].startswith(crypto.MAGIC)
    assert all(marker.encode() not in blob and got.content[:64] not in blob for blob in raw)
    assert artefact_keys(platform.store, name) == [artefact_blobs.key(name, PACKAGE_FILE)]
    assert not (platform.settings.home / name).exists() and not staged_artefacts(platform.store)
    # Byte ranges, across record boundaries, as the route served them from the file.
    size = out["size"]
    mid = min(crypto.RECORD_BYTES, size // 2)  # a record boundary where the package has one
    for header, (start, end) in {
        "bytes=100-199": (100, 200),
        f"bytes={mid - 10}-{mid + 9}": (mid - 10, mid + 10),
        "bytes=-50": (size - 50, size),
    }.items():
        part = client.get(out["download_url"], headers={"Range": header})
        assert part.status_code == 206 and part.content == got.content[start:end], header
        assert part.headers["content-range"] == f"bytes {start}-{min(end, size) - 1}/{size}"
    assert client.get(out["download_url"], headers={"Range": f"bytes={size}-"}).status_code == 416

    # Its pick-up week over, it goes from the store; the row and its hash stay.
    with platform.session() as db:
        assert pkg.purge_expired(platform, db, now=utcnow() + timedelta(days=pkg.PACKAGE_DAYS, seconds=1)) == 1
        row = db.get_one(Extraction, out["id"])
        assert row.package_path is None and row.package_key is None and row.package_sha256 == out["sha256"]
    assert artefact_keys(platform.store, name) == []
    gone = client.get(out["download_url"])
    assert gone.status_code == 410 and "make a new extraction" in gone.json()["detail"]


@pytest.mark.parametrize("blob_store_url", ["s3"], indirect=True)
def test_a_package_made_on_one_node_is_downloaded_from_another_with_its_own_home(platform, client, tmp_path):
    """Two nodes share the database, the object store and the keys; each has its own TEMOIN_HOME."""
    commune = make_commune(platform, cameras=1)
    out, marker, _ = _marked_package(platform, client, commune)
    home_b = tmp_path / "node-b"
    shutil.copytree(platform.settings.keys_dir, home_b / "keys")  # the platform's keys, as deployed on each node
    node_b = Platform.open(
        Settings(
            home=home_b,
            database_url=platform.settings.database_url,
            blob_store_url=platform.settings.blob_store_url,
            secure_cookies=False,
        )
    )
    try:
        with TestClient(create_app(node_b, scheduler=False), base_url="http://testserver") as web_b:
            sign_in(node_b, web_b, commune.users[Role.CHIEF])
            got = web_b.get(out["download_url"])
            assert got.status_code == 200, got.text
            assert hashlib.sha256(got.content).hexdigest() == out["sha256"] and marker.encode() in got.content
            part = web_b.get(out["download_url"], headers={"Range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == got.content[10:20]
    finally:
        node_b.close()
    assert not (home_b / "extractions").exists()


def test_a_package_made_before_packages_went_to_the_store_still_downloads_and_expires(platform, client):
    """Existing data: a plaintext zip under TEMOIN_HOME, its row without a key, is served from there."""
    commune = make_commune(platform, cameras=1)
    out, _, name = _marked_package(platform, client, commune)
    zip_bytes = client.get(out["download_url"]).content
    legacy = platform.settings.home / name
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_bytes(zip_bytes)
    platform.store.delete_prefixes([artefact_blobs.prefix(name)])  # the store never had it
    with platform.session() as db:
        db.get_one(Extraction, out["id"]).package_key = None
        db.commit()
    assert artefact_keys(platform.store, name) == [] and legacy.exists()
    got = client.get(out["download_url"])
    assert got.status_code == 200 and got.content == zip_bytes
    part = client.get(out["download_url"], headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == zip_bytes[5:15]
    with platform.session() as db:
        assert pkg.purge_expired(platform, db, now=utcnow() + timedelta(days=pkg.PACKAGE_DAYS, seconds=1)) == 1
    assert not legacy.exists()


def _copy_with_files(platform: Platform, commune, rid: str, request_id: int) -> tuple[int, str, bytes]:
    """A copy ready for review, its files written as the redaction job writes them (copies' own sealing)."""
    with platform.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == commune.slug))
        copy = RedactedCopy(
            tenant_id=tenant.id,
            request_id=request_id,
            recording_id=rid,
            state=CopyState.TO_REVIEW.value,
            tracks=[{"id": 1, "frames": 3}],
            keep_tracks=[1],
            add_regions=[],
            remove_regions=[],
            created_by=db.scalar(
                select(User.id).where(User.tenant_id == tenant.id, User.username == commune.users[Role.CHIEF])
            ),
        )
        db.add(copy)
        db.flush()
        copy.data_key = crypto.wrap_key(platform.keyring.master_key, crypto.new_data_key(), f"rights-copy-{copy.id}")
        copy.folder = f"{tenant.slug}/copy-{copy.id}"
        key = crypto.unwrap_key(platform.keyring.master_key, copy.data_key, f"rights-copy-{copy.id}")
        folder = f"rights/{copy.folder}"
        video = b"REDACTED-VIDEO-MARKER " * 100_000  # two records and more
        copy_storage.seal_bytes(platform, folder, "thumbnails.sealed", key, orjson.dumps({"1": "FACE-MARKER"}))
        copy_storage.seal_bytes(platform, folder, "tracks.sealed", key, orjson.dumps([{"id": 1, "boxes": {}}]))
        copy.sha256, copy.size_bytes = copy_storage.seal_bytes(platform, folder, "copy.sealed", key, video)
        copy.produced_at = utcnow()
        db.commit()
        return copy.id, folder, video


@BOTH_STORES
def test_a_redacted_copy_is_served_from_the_store_sealed_and_goes_with_its_recording(platform, client):
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    req = _create(client, csrf)
    copy_id, folder, video = _copy_with_files(platform, commune, rid, req["id"])

    raw = artefact_raw(platform.store, folder)
    assert len(raw) == 3 and all(b"REDACTED-VIDEO-MARKER" not in b and b"FACE-MARKER" not in b for b in raw)
    assert not (platform.settings.home / "rights").exists()
    whole = client.get(f"/api/v1/rights/copies/{copy_id}/video")
    assert whole.status_code == 200 and whole.content == video
    start = crypto.RECORD_BYTES - 5
    part = client.get(f"/api/v1/rights/copies/{copy_id}/video", headers={"Range": f"bytes={start}-{start + 9}"})
    assert part.status_code == 206 and part.content == video[start : start + 10]
    faces = client.get(f"/api/v1/rights/copies/{copy_id}/faces")
    assert faces.status_code == 200 and faces.json()[0]["thumbnail"] == "data:image/jpeg;base64,FACE-MARKER"

    # Deleted with its recording: the certificate lists its three files, and the store holds nothing of it.
    with platform.session() as db:
        made = derived.of_recordings(platform, db, [db.get_one(Recording, rid)])
        (artefact,) = [a for a in made[rid] if a.kind == derived.ACCESS_COPY]
        assert artefact.what == ("face thumbnails", "face tracks", "redacted copy")
        paths = derived.destroy(db, [artefact], utcnow(), "test")
        db.commit()
    assert derived.remove_files(platform, paths) == 1
    assert artefact_keys(platform.store, folder) == []
    assert client.get(f"/api/v1/rights/copies/{copy_id}/video").status_code == 409  # deleted, and says so


@BOTH_STORES
def test_a_live_backup_is_sealed_into_the_store_and_read_back(platform):
    """The recorder's own writer (the muxer's bytes handed to a thread, sealed record by record)."""
    commune = make_commune(platform, cameras=1)
    sid = uuid.uuid4().hex
    key, wrapped = backup.new_key(platform.keyring.master_key, sid)
    name = backup.backup_name(commune.slug, sid)
    sealed = artefact_blobs.SealedWriter(platform.store, artefact_blobs.key(name, backup.BACKUP_FILE), key)
    out = backup._Behind(sealed)
    stream = b"\x47LIVE-TS-MARKER" * 200_000  # over two records
    for start in range(0, len(stream), 188 * 7):
        out.write(memoryview(stream)[start : start + 188 * 7])
    out.close()
    assert not staged_artefacts(platform.store)
    assert sealed.sha256 is not None and sealed.sha256.hexdigest() == hashlib.sha256(stream).hexdigest()
    (raw,) = artefact_raw(platform.store, name)
    assert raw.startswith(crypto.MAGIC) and b"LIVE-TS-MARKER" not in raw
    plain = b"".join(
        backup.read_backup(platform.store, platform.settings.home, name, platform.keyring.master_key, wrapped, sid)
    )
    assert plain == stream
    with platform.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == commune.slug))
        db.add(
            LiveSession(
                id=sid,
                tenant_id=tenant.id,
                device_id=commune.cameras[0][0],
                reason="threat",
                state="ended",
                requested_at=utcnow() - timedelta(days=400),
                ended_at=utcnow() - timedelta(days=400),
                backup_file=name,
                backup_key=wrapped,
                backup_sha256=sealed.sha256.hexdigest(),
                backup_bytes=sealed.size,
            )
        )
        db.commit()
    with platform.session() as db:  # past the recordings' period, no recording covers it: it goes
        assert derived.expire(platform, db, utcnow())[derived.LIVE_BACKUP] == 1
    assert artefact_keys(platform.store, name) == []


@BOTH_STORES
def test_the_orphan_sweep_removes_what_no_row_names_in_the_store_and_leaves_the_rest(platform, client, monkeypatch):
    commune = make_commune(platform, cameras=1)
    out, _, name = _marked_package(platform, client, commune)
    stray = f"extractions/{commune.slug}/ext-20260101-000000000000.zip"
    artefact_blobs.write_bytes(platform.store, artefact_blobs.key(stray, PACKAGE_FILE), crypto.new_data_key(), b"PK")
    killed = f"rights/{commune.slug}/copy-999"  # a job killed while it wrote: staged, never promoted
    left = artefact_blobs.SealedWriter(platform.store, artefact_blobs.key(killed, "copy.sealed"), crypto.new_data_key())
    left.write(b"x" * (crypto.RECORD_BYTES + 1))
    platform.store.sync_staged(left.key)
    assert staged_artefacts(platform.store)
    with platform.session() as db:
        assert derived.remove_orphans(platform, db) == 0  # all under an hour old: a row may not be committed yet
        monkeypatch.setattr(derived, "ORPHAN_AGE_S", -60)  # an hour later, as it were
        assert derived.remove_orphans(platform, db) == 2
    assert artefact_keys(platform.store, stray) == artefact_keys(platform.store, killed) == []
    assert not staged_artefacts(platform.store)
    assert artefact_keys(platform.store, name)  # the live package stays
    assert client.get(out["download_url"]).status_code == 200
    # The recordings' own orphan audit never takes the artefacts' folder for a tenant's recordings.
    assert all(not prefix.startswith("_") for prefix in platform.store.prefixes())


def test_a_stalled_store_never_holds_up_the_live_stream(platform, monkeypatch):
    """The muxer writes a packet at a time (about 75 writes a second) from the media plane's loop: a store that
    holds an fsync or a PUT for seconds must not stall the live stream the CSU watches. The backup's writer falls
    behind up to a bound in bytes, then drops what the store cannot take, says how much when it is stored, and
    keeps whole what came before and after."""
    import threading
    import time

    monkeypatch.setattr(backup._Behind, "MAX_PENDING", 64 * 1024)
    sid = uuid.uuid4().hex
    key, _ = backup.new_key(platform.keyring.master_key, sid)
    sealed = artefact_blobs.SealedWriter(platform.store, artefact_blobs.key(f"live-backup/t/{sid}", "b"), key)
    gate = threading.Event()
    write = sealed.write

    def stalled(data: bytes) -> None:
        gate.wait(30)  # the store holds its first write (an fsync on a loaded disk, a slow PUT)
        write(data)

    monkeypatch.setattr(sealed, "write", stalled)
    out = backup._Behind(sealed)
    slowest, kept, accepted = 0.0, bytearray(), []
    for i in range(2000):  # 2000 writes of 1,316 bytes: 2.6 MB, 40 times the bound
        chunk = (b"\x47" + i.to_bytes(4, "big") + bytes(183)) * 7
        dropped, t = out.dropped, time.perf_counter()
        out.write(chunk)
        slowest = max(slowest, time.perf_counter() - t)
        if out.dropped == dropped:
            kept += chunk
            accepted.append(i)
        if i == 1500:
            gate.set()  # the store comes back
        if i >= 1500:
            time.sleep(0.001)  # a stream's pace (about 10 Mbit/s), which the store keeps up with again
    assert slowest < 0.05, f"a write waited {slowest:.3f} s on the stalled store: the live stream would freeze"
    out.close()
    before = [i for i in accepted if i < 1500]
    assert before == list(range(len(before))), "what came before the store stalled is kept, in order"
    assert 45 <= len(before) <= 50  # the bound: 64 KiB of 1,316-byte writes
    assert sum(1 for i in accepted if i > 1500) >= 490, "once the store is back, the backup goes on"
    assert out.dropped == 2000 * 1316 - len(kept) > 0
    assert sealed.size == len(kept) and sealed.sha256.hexdigest() == hashlib.sha256(kept).hexdigest()
