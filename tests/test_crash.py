"""Crashes: real processes, real HTTP, real SIGKILL. Whatever the moment of the kill, the vault holds
every byte it acknowledged, shows nothing half-written, and its journal still verifies.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.camera.offload import SegmentFile, VaultClient, build_manifest
from temoin.db import make_engine, utcnow
from temoin.evidence.canonical import b64d
from temoin.evidence.manifest import SignedManifest, Trigger
from temoin.evidence.signing import verify
from temoin.identity import secrets as identity_secrets
from temoin.identity.models import Device, User
from temoin.identity.secrets import current_totp
from temoin.identity.service import totp_secret_of
from temoin.journal.models import JournalEntry
from temoin.keyring import Keyring
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.vault import ingest
from temoin.vault.models import DeletionCertificate, Recording, RecordingState
from temoin.vault.scrub import check_recording
from temoin.vault.storage import blob_key
from temoin.web.app import create_app
from tests.helpers import PASSWORD, agent_number, make_commune, upload, vault_client
from tests.serve_helpers import ServerProcess, base_env, free_port, temoin

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commune's eight users are created in-process; argon2id with minimal parameters keeps that fast.
    The server checks those hashes with the parameters they carry."""
    monkeypatch.setattr(identity_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=256, parallelism=1))


def _env(settings: Settings) -> dict[str, str]:
    return base_env(settings, TEMOIN_RETENTION_INTERVAL_S="3600")


def _cli(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [temoin(), *args], env=_env(settings), cwd=settings.home, capture_output=True, text=True, timeout=timeout
    )


def _serve(settings: Settings, log: Path) -> ServerProcess:
    """`temoin serve` in its own process, answering."""
    port = free_port()
    server = ServerProcess(
        "the server",
        [temoin(), "serve", "--port", str(port)],
        env=_env(settings),
        cwd=settings.home,
        log=log,
        url=f"http://127.0.0.1:{port}",
        grace_s=15,
    )
    server.wait_answering(45)
    return server


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


@contextmanager
def _db(settings: Settings) -> Iterator[Session]:
    """A plain database session (no Platform.open: that would catch the journal file up itself)."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            yield db
    finally:
        engine.dispose()


def _sign_in_http(http: httpx.Client, username: str, totp_secret: str) -> str:
    r = http.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    r = http.post("/api/v1/session/totp", json={"code": current_totp(totp_secret)})
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]


SEGMENT_BYTES = 40 * 1024 * 1024
CHUNK = 256 * 1024


def test_server_killed_during_an_upload_resumes_and_stores_it_intact(settings, servers, tmp_path):
    p = Platform.open(settings, init=True)
    commune = make_commune(p, cameras=1)
    with p.session() as db:
        chief = db.scalar(select(User).where(User.username == commune.users[Role.CHIEF]))
        chief_totp = totp_secret_of(p, chief)
    public_key = p.keyring.public_key
    p.close()

    cam_id, cam_key = commune.cameras[0]
    data = os.urandom(SEGMENT_BYTES)
    rid = f"rec-crash-{uuid.uuid4().hex[:12]}"
    manifest = build_manifest(
        recording_id=rid,
        camera_id=cam_id,
        agent_id=agent_number(commune),
        segments=[SegmentFile(data, utcnow() - timedelta(minutes=5), 60.0)],
        trigger=Trigger.INCIDENT,
        persons_informed=True,
        clock_offset_ms=0,
    )
    signed = SignedManifest.sign(manifest, cam_key)
    url = f"/api/v1/ingest/recordings/{rid}/segments/0"

    servers.append(_serve(settings, tmp_path / "server-1.log"))
    camera = VaultClient(servers[0].url, cam_id, cam_key, public_key)
    watcher = VaultClient(servers[0].url, cam_id, cam_key, public_key)
    status = camera.send_manifest(signed)
    assert status["segments"][0]["received"] == 0

    sent = 0
    outcome: dict = {}

    def slow_body() -> Iterator[bytes]:
        nonlocal sent
        for start in range(0, len(data), CHUNK):
            sent += min(CHUNK, len(data) - start)  # counted before it leaves: an upper bound
            yield data[start : start + CHUNK]
            time.sleep(0.01)

    def put() -> None:
        try:
            outcome["response"] = camera.http.put(
                url,
                content=slow_body(),
                headers={
                    "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}",
                    "Content-Length": str(len(data)),
                    "Content-Type": "application/octet-stream",
                },
                timeout=60,
            )
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    sender = threading.Thread(target=put, daemon=True)
    sender.start()
    seen = 0
    deadline = time.monotonic() + 30
    while seen < 3 * 1024 * 1024 and sent < 12 * 1024 * 1024:  # some bytes on the vault's disk, not all
        assert time.monotonic() < deadline, "the upload did not progress"
        seen = watcher.received(rid, 0)  # asked while the upload writes: must not disturb it
        time.sleep(0.005)
    servers[0].kill()
    sender.join(30)
    assert not sender.is_alive()
    assert "error" in outcome, f"the upload finished before the kill: {outcome}"
    assert sent < len(data)

    servers.append(_serve(settings, tmp_path / "server-2.log"))
    camera = VaultClient(servers[1].url, cam_id, cam_key, public_key)
    offset = camera.received(rid, 0)
    # Every byte the vault had before the kill is still there; nothing it never got is claimed.
    assert seen <= offset <= sent, (seen, offset, sent)

    # Nothing half-written is visible to staff.
    staff = httpx.Client(base_url=servers[1].url, timeout=30)
    csrf = _sign_in_http(staff, commune.users[Role.CHIEF], chief_totp)
    assert rid not in staff.get("/api/v1/recordings").text
    assert staff.get(f"/api/v1/recordings/{rid}").status_code == 404
    with _db(settings) as db:
        assert db.get(Recording, rid).state == RecordingState.RECEIVING

    # Resuming from elsewhere is refused with where to resume; from the offset it goes through.
    r = camera.http.put(
        url, content=data[offset + 1 :], headers={"Content-Range": f"bytes {offset + 1}-{len(data) - 1}/{len(data)}"}
    )
    assert r.status_code == 409 and r.headers["Upload-Offset"] == str(offset)
    camera.upload_segment(rid, 0, data, start=offset)
    receipt = camera.complete(rid)
    assert receipt.verify(public_key) and receipt.matches(signed.manifest)

    with _db(settings) as db:
        rec = db.get(Recording, rid)
        assert rec.state == RecordingState.STORED and all(s.complete for s in rec.segments)
    assert rid in staff.get("/api/v1/recordings").text
    r = staff.post(
        f"/api/v1/recordings/{rid}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "incident_review", "text": "after the crash"}},
    )
    assert r.status_code == 201, r.text
    content = staff.get(r.json()["segments"][0])
    assert content.status_code == 200
    assert hashlib.sha256(content.content).digest() == hashlib.sha256(data).digest()
    for client in (camera, watcher):
        client.close()
    staff.close()
    servers[1].stop()

    scrub = _cli(settings, "vault", "scrub")
    assert scrub.returncode == 0 and "no corruption" in scrub.stdout, scrub.stdout + scrub.stderr
    journal = _cli(settings, "journal", "verify")
    assert journal.returncode == 0, journal.stdout + journal.stderr


RECORDINGS = 30


def _segment_files(settings: Settings) -> list[Path]:
    return [f for f in (settings.vault_dir / "blobs").rglob("*") if f.is_file()]


def test_retention_sweep_killed_midway_leaves_each_recording_whole_or_gone(settings, tmp_path):
    p = Platform.open(settings, init=True)
    commune = make_commune(p, cameras=1)
    with TestClient(create_app(p, scheduler=False), base_url="http://testserver") as client:
        ids = [
            upload(p, client, commune, started_at=utcnow() - timedelta(days=70), duration_s=1, segment_s=1)[0]
            for _ in range(RECORDINGS)
        ]
    public_key = p.keyring.public_key
    p.close()
    folders = settings.vault_dir / "blobs" / commune.slug
    assert len(list(folders.iterdir())) == RECORDINGS

    # Kill the sweep as soon as it is seen at work: the first recording's blobs going away.
    proc = subprocess.Popen(
        [temoin(), "retention", "run"],
        env=_env(settings),
        cwd=settings.home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if sum(1 for _ in folders.iterdir()) < RECORDINGS:
            break
        time.sleep(0.001)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, f"the sweep ended ({proc.returncode}) before it could be killed"

    keys = Keyring.load(settings)
    with _db(settings) as db:
        for rid in ids:
            rec = db.get(Recording, rid)
            cert = db.scalar(select(DeletionCertificate).where(DeletionCertificate.recording_id == rid))
            if rec.state == RecordingState.STORED:
                assert rec.wrapped_key is not None and cert is None
                for seg in rec.segments:
                    assert (settings.vault_dir / "blobs" / blob_key(commune.slug, rid, seg.index)).is_file()
            else:
                assert rec.state == RecordingState.DELETED, rec.state
                assert rec.wrapped_key is None and rec.deleted_at is not None
                assert cert is not None and verify(keys.public_key, b64d(cert.signature), cert.body.encode())
    assert keys.public_key == public_key
    scrub = _cli(settings, "vault", "scrub")
    assert scrub.returncode == 0 and "no corruption" in scrub.stdout, scrub.stdout + scrub.stderr

    again = _cli(settings, "retention", "run")
    assert again.returncode == 0, again.stdout + again.stderr
    with _db(settings) as db:
        assert all(db.get(Recording, rid).state == RecordingState.DELETED for rid in ids)
        assert all(db.get(Recording, rid).wrapped_key is None for rid in ids)
        assert len(db.scalars(select(DeletionCertificate)).all()) == RECORDINGS
        erasures = db.scalars(select(JournalEntry).where(JournalEntry.event == "recording.deleted.retention")).all()
        assert len(erasures) == RECORDINGS  # each deletion journaled once, by whichever run did it
    assert _segment_files(settings) == []
    assert not [f for f in (settings.vault_dir / "staging").rglob("*") if f.is_file()]
    # A kill between a commit and its file write leaves the file short: only an explicit repair (or the
    # server's start-up) brings it level, never an ordinary command.
    repair = _cli(settings, "journal", "repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    journal = _cli(settings, "journal", "verify")
    assert journal.returncode == 0, journal.stdout + journal.stderr


def test_asking_how_much_arrived_never_cuts_an_upload_in_progress(platform, client):
    """HEAD (and GET status, and a re-sent manifest) read the staged blob while the upload of that very
    blob may be writing a record; a record half-written at that instant must not be taken for one torn
    by a crash and cut off, which would leave a hole in the stored segment."""
    commune = make_commune(platform, cameras=1)
    cam_id, cam_key = commune.cameras[0]
    data = os.urandom(24 * 1024 * 1024)
    rid = f"rec-head-{uuid.uuid4().hex[:12]}"
    manifest = build_manifest(
        recording_id=rid,
        camera_id=cam_id,
        agent_id=agent_number(commune),
        segments=[SegmentFile(data, utcnow(), 60.0)],
        trigger=Trigger.INCIDENT,
        persons_informed=True,
    )
    signed = SignedManifest.sign(manifest, cam_key)
    vault_client(platform, client, commune.cameras[0]).send_manifest(signed)
    client.auth = None

    asking, done = threading.Event(), threading.Event()
    answers: list[int] = []

    def ask() -> None:  # what the HEAD route runs, as often as it can, one request after another
        while not done.is_set():
            with platform.session() as db:
                status = ingest.upload_status(platform, db, db.get(Device, cam_id), rid)
                answers.append(status.segments[0].received)
            asking.set()

    asker = threading.Thread(target=ask)
    asker.start()
    assert asking.wait(30)
    with platform.session() as db:
        upload = ingest.SegmentUpload(platform, db, db.get(Device, cam_id), rid, 0, 0, len(data))
        try:
            for start in range(0, len(data), 1024 * 1024):
                upload.feed(data[start : start + 1024 * 1024])
        finally:
            done.set()
            asker.join()
        assert upload.finish().complete
    assert answers == sorted(answers) and answers[-1] <= len(data)  # never less than it said before
    vc = vault_client(platform, client, commune.cameras[0])
    assert vc.complete(rid).matches(signed.manifest)
    client.auth = None
    with platform.session() as db:
        rec = db.get(Recording, rid)
        assert check_recording(platform, rec, commune.slug) == ([], len(data))
