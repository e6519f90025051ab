"""The blob store, on the local disk and on a real S3 server (SeaweedFS): staging that resumes, promotion that a
reader never sees half done, listing, deletion by prefix, and clear errors when the object store is away or full."""

from __future__ import annotations

import io
import os
import time

import pytest

from temoin import errors
from temoin.evidence import crypto
from temoin.settings import InvalidSettings, Settings
from temoin.vault import s3store
from temoin.vault.s3store import S3BlobStore
from temoin.vault.storage import BlobMissing, LocalBlobStore, blob_key
from temoin.web.problems import status_of
from tests.helpers import make_commune, upload
from tests.s3_helpers import raw_objects


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(tmp_path)
    return S3BlobStore(request.getfixturevalue("s3_server").url())


def _stage(store, name, key, header, sealer, plain: bytes, step: int = crypto.RECORD_BYTES) -> None:
    """Seal `plain` record by record into the staged blob `name`, as ingest does (`header`: None when resuming)."""
    for start in range(0, len(plain), step):
        prefix, sealed = sealer.seal_record(plain[start : start + step])
        store.append_staged(name, header if start == 0 else None, prefix, sealed)


def test_a_staged_upload_resumes_after_a_torn_write_and_is_promoted_whole(store):
    """Bigger than two S3 chunks: promotion assembles a multipart object server-side."""
    key, header = crypto.new_data_key(), crypto.new_header()
    name = blob_key("t", "r1", 0)
    first = os.urandom(s3store.CHUNK_BYTES + 3 * crypto.RECORD_BYTES + 1234)
    sealer = crypto.Sealer(key, header)
    _stage(store, name, key, header, sealer, first)
    store.sync_staged(name)
    assert not store.exists(name)  # staged, not yet a blob
    # A crash in the middle of the next record: its first bytes reached the store.
    prefix, sealed = sealer.seal_record(b"lost" * 1000)
    store.append_staged(name, None, prefix, sealed[:100])
    store.sync_staged(name)
    assert store.staged_state(name, repair=False)[1:] == (len(first) // crypto.RECORD_BYTES + 1, len(first))
    got_header, records, plain = store.staged_state(name)
    assert (got_header, plain) == (header, len(first))  # the torn record is cut off
    assert store.staged_size(name) == crypto.HEADER_BYTES + sum(
        4 + min(crypto.RECORD_BYTES, len(first) - s) + crypto.TAG_BYTES
        for s in range(0, len(first), crypto.RECORD_BYTES)
    )
    second = os.urandom(s3store.CHUNK_BYTES + 77)
    _stage(store, name, key, None, crypto.Sealer(key, got_header, records), second)
    store.sync_staged(name)
    with store.open_staged(name) as fh:
        assert b"".join(crypto.open_records(fh, key)) == first + second
    store.promote(name)
    store.promote(name)  # repeated after a crash: nothing more happens
    assert store.exists(name) and store.staged_size(name) == 0
    with store.open(name) as fh:
        assert b"".join(crypto.open_records(fh, key)) == first + second
    whole = first + second
    for start, end in [(0, 10), (crypto.RECORD_BYTES - 3, crypto.RECORD_BYTES + 5), (len(whole) - 9, len(whole))]:
        with store.open(name) as fh:  # a seek to a record, as playback does
            assert b"".join(crypto.open_range(fh, key, start, end)) == whole[start:end]


def test_promotion_under_another_name_listing_and_deletion_by_prefix(store):
    key, header = crypto.new_data_key(), crypto.new_header()
    for rec, index in [("r1", 0), ("r1", 1), ("r2", 0)]:
        name = blob_key("t", rec, index)
        _stage(store, name, key, header, crypto.Sealer(key, header), os.urandom(1000))
        store.sync_staged(name)
        store.promote(name)
    slot = blob_key("u", "r3", 1000)  # an Axis object staged under its slot, stored under its index
    _stage(store, slot, key, header, crypto.Sealer(key, header), b"clip" * 100)
    store.sync_staged(slot)
    store.promote(slot, blob_key("u", "r3", 0))
    assert store.exists(blob_key("u", "r3", 0)) and not store.exists(slot)
    left = blob_key("t", "r2", 5)  # an upload cut by a crash
    _stage(store, left, key, header, crypto.Sealer(key, header), b"x" * 10)
    store.sync_staged(left)
    assert store.staged_keys("t/r2") == [left]
    assert list(store.prefixes()) == ["t/r1", "t/r2", "u/r3"]
    assert store.delete_prefixes(["t/r1", "t/r2", "t/nothing"]) == 4  # 3 blobs and 1 staged upload
    # (SeaweedFS may list an emptied prefix for a moment: the orphan pass then finds nothing there to delete)
    assert "u/r3" in store.prefixes() and store.delete_prefixes(["t/r1", "t/r2"]) == 0
    assert not any(store.exists(blob_key("t", r, i)) for r, i in [("r1", 0), ("r1", 1), ("r2", 0)])
    assert store.staged_keys("t/r2") == [] and store.staged_size(left) == 0
    with pytest.raises(BlobMissing):
        store.open(blob_key("t", "r1", 0))
    store.discard(blob_key("u", "r3", 0))
    assert not store.exists(blob_key("u", "r3", 0))


def test_a_discarded_upload_starts_again_from_nothing(store):
    key, header = crypto.new_data_key(), crypto.new_header()
    name = blob_key("t", "r1", 0)
    _stage(store, name, key, header, crypto.Sealer(key, header), os.urandom(5000))
    store.sync_staged(name)
    store.discard_staged(name)
    assert store.staged_state(name) == (None, 0, 0)
    with pytest.raises(BlobMissing):
        store.promote(name)


def test_the_object_store_never_holds_plaintext(platform_s3, client_s3):
    """Client-side encryption stays: what the bucket holds (read with its own client) is sealed."""
    platform = platform_s3
    commune = make_commune(platform)
    rid, _ = upload(platform, client_s3, commune, duration_s=4, segment_s=2)
    objects = raw_objects(platform.store)
    assert len(objects) == 2
    with platform.session() as db:
        from temoin.vault.models import Recording

        rec = db.get(Recording, rid)
        data_key = crypto.unwrap_key(platform.keyring.master_key, rec.wrapped_key, rid)
    for raw in objects:
        plain = b"".join(crypto.open_records(io.BytesIO(raw), data_key))
        assert plain[4:8] == b"ftyp" or b"moof" in plain  # the segment is there, sealed...
        for start in range(0, len(plain) - 64, 4096):
            assert plain[start : start + 64] not in raw  # ...and no run of its bytes is in the clear
        assert b"ftyp" not in raw and b"mdat" not in raw


def test_an_unreachable_object_store_answers_503_saying_what_to_do(tmp_path, closed_port, s3_server):
    from fastapi.testclient import TestClient

    from temoin.camera.offload import OffloadError
    from temoin.platform import Platform
    from temoin.web.app import create_app
    from tests.helpers import vault_client

    url = f"s3://temoin-test/x?endpoint=http://127.0.0.1:{closed_port}&region=us-east-1"
    database_url = f"sqlite:///{tmp_path / 'temoin.db'}"
    settings = Settings(home=tmp_path / "home", database_url=database_url, secure_cookies=False, blob_store_url=url)
    p = Platform.open(settings, init=True)
    try:
        store = p.store
        assert isinstance(store, S3BlobStore)
        with pytest.raises(errors.Unavailable, match=r"does not answer.*check that it runs"):
            store.exists("t/r/00000.seg")
        commune = make_commune(p)
        with TestClient(create_app(p, scheduler=False), base_url="http://testserver") as c:
            from temoin.db import utcnow
            from temoin.demo.samples import sample_recording
            from tests.helpers import agent_number

            cam = commune.cameras[0]
            signed, segments = sample_recording(
                cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=2
            )
            # The camera is told to come back later (503, Retry-After), never a 500.
            with pytest.raises(OffloadError, match=r"503 the object store .* does not answer"):
                vault_client(p, c, cam).offload(signed, segments)
    finally:
        p.close()


def test_a_bucket_over_its_quota_refuses_clearly_and_the_upload_resumes_once_raised(s3_server, tmp_path):
    """SeaweedFS makes a bucket over its quota read-only: the vault says so, and resumes once it is raised."""
    s3_server.client().create_bucket(Bucket="temoin-quota")
    store = S3BlobStore(s3_server.url(bucket="temoin-quota"))
    key, header = crypto.new_data_key(), crypto.new_header()
    name = blob_key("t", "r1", 0)
    plain = os.urandom(3 * crypto.RECORD_BYTES)
    sealer = crypto.Sealer(key, header)
    _stage(store, name, key, header, sealer, plain[: 2 * crypto.RECORD_BYTES])
    store.sync_staged(name)
    s3_server.shell("s3.bucket.quota -name=temoin-quota -op=set -sizeMB=1\n")
    deadline = time.monotonic() + 30  # the bucket's size reaches the master with the volume servers' heartbeat
    while "read only" not in (said := s3_server.shell("s3.bucket.quota.enforce -apply\n")):
        assert time.monotonic() < deadline, said
        time.sleep(0.5)
    try:
        with pytest.raises((errors.StorageFull, errors.Unavailable), match="over its quota"):
            _stage(store, name, key, None, sealer, plain[2 * crypto.RECORD_BYTES :])
            store.sync_staged(name)
    finally:
        s3_server.shell("s3.bucket.quota -name=temoin-quota -op=remove\ns3.bucket.quota.enforce -apply\n")
    # Writable again, but what this upload sealed next would follow a gap: refused until it resumes.
    with pytest.raises(errors.Unavailable, match="an earlier write"):
        store.append_staged(name, None, *sealer.seal_record(b"after the gap"))
    got_header, records, received = store.staged_state(name)
    assert received == 2 * crypto.RECORD_BYTES  # what was acknowledged is there, nothing half-written
    _stage(store, name, key, None, crypto.Sealer(key, got_header, records), plain[received:])
    store.sync_staged(name)
    store.promote(name)
    with store.open(name) as fh:
        assert b"".join(crypto.open_records(fh, key)) == plain


def test_the_store_url_is_checked_and_never_printed(monkeypatch):
    with pytest.raises(InvalidSettings) as bad:
        Settings.from_env({"TEMOIN_BLOB_STORE_URL": "s3://AKIA:hunter2@bucket/x"})
    assert "TEMOIN_BLOB_STORE_URL" in str(bad.value) and "hunter2" not in str(bad.value)
    assert "AWS_ACCESS_KEY_ID" in str(bad.value)
    # Nor in the endpoint, which every error of the store names (answers to cameras and users included).
    with pytest.raises(InvalidSettings) as bad:
        Settings.from_env({"TEMOIN_BLOB_STORE_URL": "s3://bucket/x?endpoint=http://AKIA:hunter2@127.0.0.1:9"})
    assert "hunter2" not in str(bad.value) and "AWS_ACCESS_KEY_ID" in str(bad.value)
    with pytest.raises(errors.InvalidInput, match="must not hold credentials"):
        S3BlobStore("s3://bucket/x?endpoint=http://AKIA:hunter2@127.0.0.1:9")
    with pytest.raises(InvalidSettings, match="s3://BUCKET"):
        Settings.from_env({"TEMOIN_BLOB_STORE_URL": "ftp://bucket"})
    with pytest.raises(errors.InvalidInput, match="no valid bucket"):
        S3BlobStore("s3://B_/x")
    with pytest.raises(errors.InvalidInput, match="unknown blob store URL parameter secret"):
        S3BlobStore("s3://bucket/x?secret=1")
    url = Settings.from_env({"TEMOIN_BLOB_STORE_URL": "s3://bucket/p?endpoint=http://127.0.0.1:9"}).blob_store_url
    assert S3BlobStore(url).url == s3store.StoreUrl("bucket", "p/", "http://127.0.0.1:9", None)


def test_memory_per_upload_stays_within_one_chunk(s3_server):
    store = S3BlobStore(s3_server.url())
    key, header = crypto.new_data_key(), crypto.new_header()
    name = blob_key("t", "r1", 0)
    sealer = crypto.Sealer(key, header)
    for i in range(20):  # 20 MiB appended without a sync: chunks leave memory as they fill
        prefix, sealed = sealer.seal_record(os.urandom(crypto.RECORD_BYTES))
        store.append_staged(name, header if i == 0 else None, prefix, sealed)
        assert len(store._writers[name].buffer) < s3store.CHUNK_BYTES
    store.sync_staged(name)
    assert store.staged_state(name)[2] == 20 * crypto.RECORD_BYTES


@pytest.fixture
def platform_s3(tmp_path, s3_server):
    from temoin.platform import Platform

    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'temoin.db'}",
        secure_cookies=False,
        blob_store_url=s3_server.url(),
    )
    p = Platform.open(settings, init=True)
    yield p
    p.close()


@pytest.fixture
def client_s3(platform_s3):
    from fastapi.testclient import TestClient

    from temoin.web.app import create_app

    with TestClient(create_app(platform_s3, scheduler=False), base_url="http://testserver") as c:
        yield c


def test_an_upload_cut_on_one_node_resumes_on_another_and_both_read_it(tmp_path, s3_server):
    """Two servers sharing the database, the keys and the bucket: neither keeps a blob on its own disk."""
    import shutil

    from fastapi.testclient import TestClient

    from temoin.db import utcnow
    from temoin.demo.samples import sample_recording
    from temoin.platform import Platform
    from temoin.vault import ingest
    from temoin.vault.models import Recording, RecordingState
    from temoin.vault.scrub import scrub
    from temoin.web.app import create_app
    from tests.helpers import agent_number, vault_client

    shared = {"database_url": f"sqlite:///{tmp_path / 'shared.db'}", "blob_store_url": s3_server.url()}
    a = Platform.open(Settings(home=tmp_path / "a", secure_cookies=False, **shared), init=True)
    shutil.copytree(tmp_path / "a" / "keys", tmp_path / "b" / "keys")  # each node holds the same keys
    b = Platform.open(Settings(home=tmp_path / "b", secure_cookies=False, **shared))
    try:
        commune = make_commune(a)
        cam = commune.cameras[0]
        signed, segments = sample_recording(
            cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=4, segment_s=2
        )
        rid = signed.manifest.recording_id
        data = segments[0]
        cut = len(data) // 2 + 3
        with TestClient(create_app(a, scheduler=False), base_url="http://testserver") as on_a:
            vc = vault_client(a, on_a, cam)
            vc.send_manifest(signed)
            r = on_a.put(
                f"/api/v1/ingest/recordings/{rid}/segments/0",
                content=data[:cut],
                headers={"Content-Range": f"bytes 0-{cut - 1}/{len(data)}"},
            )
            assert r.status_code == 200 and r.json()["received"] == cut
        ingest._progress.clear()  # node A's memory is not node B's
        with TestClient(create_app(b, scheduler=False), base_url="http://testserver") as on_b:
            vc = vault_client(b, on_b, cam)
            assert vc.received(rid, 0) == cut
            vc.upload_segment(rid, 0, data, start=cut)
            vc.upload_segment(rid, 1, segments[1])
            assert vc.complete(rid).matches(signed.manifest)
        with a.session() as db:
            assert db.get(Recording, rid).state == RecordingState.STORED
            result = scrub(a, db)  # node A decrypts and re-hashes what node B stored
            assert result.ok and result.segments == 2
        for home in (tmp_path / "a", tmp_path / "b"):
            assert not [f for f in (home / "vault").rglob("*") if f.is_file()]
    finally:
        a.close()
        b.close()


def test_a_full_object_store_answers_507_saying_what_to_do(monkeypatch):
    """Ceph RGW, MinIO and others say `QuotaExceeded` or 507 when full; SeaweedFS cannot be made to say it, so a
    minimal HTTP server answers as they do (the boundary is the store's reply, which we do not own)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Full(BaseHTTPRequestHandler):
        def _full(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<Error><Code>QuotaExceeded</Code><Message>Quota exceeded</Message></Error>"
            self.send_response(403)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_PUT = do_GET = do_HEAD = do_POST = _full

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Full)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
        store = S3BlobStore(f"s3://full/x?endpoint=http://127.0.0.1:{server.server_port}&region=us-east-1")
        name = blob_key("t", "r1", 0)
        header = crypto.new_header()
        store._writers[name] = s3store._Writer(0)  # as if nothing were staged yet (this server lists nothing)
        store.append_staged(name, header, *crypto.Sealer(crypto.new_data_key(), header).seal_record(b"x" * 100))
        with pytest.raises(
            errors.StorageFull, match=r"full or over its quota.*free space or raise the bucket's quota"
        ) as full:
            store.sync_staged(name)
        assert status_of(full.value)[0] == 507  # what the camera is answered: retry later, keep your copy
    finally:
        server.shutdown()


def test_the_commands_find_the_store_in_the_environment(platform_s3, client_s3, tmp_path):
    """`temoin vault scrub` and `temoin backup create` as an operator runs them: settings and credentials from the
    environment; the backup says the blobs are not in it."""
    import subprocess

    from tests.journal_helpers import TEMOIN

    upload(platform_s3, client_s3, make_commune(platform_s3), duration_s=2, segment_s=2)
    settings = platform_s3.settings
    env = dict(
        os.environ,
        TEMOIN_HOME=str(settings.home),
        TEMOIN_DATABASE_URL=settings.database_url,
        TEMOIN_BLOB_STORE_URL=settings.blob_store_url,
        COLUMNS="250",
        NO_COLOR="1",
    )
    scrubbed = subprocess.run([str(TEMOIN), "vault", "scrub"], env=env, capture_output=True, text=True, timeout=120)
    assert scrubbed.returncode == 0, scrubbed.stdout + scrubbed.stderr
    assert "1 recordings, 1 segments" in scrubbed.stdout and "no corruption" in scrubbed.stdout
    backed = subprocess.run(
        [str(TEMOIN), "backup", "create", str(tmp_path / "backup")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert backed.returncode == 0, backed.stdout + backed.stderr
    assert "the recordings' blobs, in the object store s3://temoin-test/" in backed.stdout
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in backed.stdout + backed.stderr + scrubbed.stdout


def test_missing_credentials_are_named_not_guessed(monkeypatch, tmp_path, s3_server):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask for, here
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    store = S3BlobStore(s3_server.url())
    with pytest.raises(errors.Unavailable, match=r"no credentials .* set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        store.exists("t/r/00000.seg")
