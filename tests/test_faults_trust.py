"""Faults end cleanly (issue "Evidence you can prove against an insider", item 5).

1. The vault's database is full: every write route answers 507 with a problem+json body saying so
   and what to do, never a bare 500; nothing of the request is kept; once space is freed the same
   request goes through. SQLite: the real SQLITE_FULL, from `PRAGMA max_page_count` set at the
   database's size (512-byte pages, so that every journal entry needs a new page and a full
   database refuses every write, not just some). PostgreSQL: the server's own disk_full error
   (SQLSTATE 53100) raised by a trigger on every table, through the real driver.
2. Retention deletes a recording while its upload is unfinished: the camera gets a 410 Gone with the
   platform-signed deletion certificate, verifies it with its pinned platform key, deletes its copy,
   logs it and moves on; a forged statement deletes nothing.
3. `temoin camera offload` with a damaged segment on the camera: the intact segments reach the vault
   (verified against the device-signed hashes, the damaged ones recorded as lost), the damaged ones
   are moved to the camera's quarantine folder and named, and the command exits non-zero.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from temoin import errors
from temoin.camera.offload import SEGMENT_UPLOAD, DeviceAuth
from temoin.db import utcnow
from temoin.demo.samples import sample_recording
from temoin.identity import devices
from temoin.journal.verify import verify_all
from temoin.law.access import Role, allows
from temoin.platform import Platform
from temoin.vault.models import Recording
from temoin.web.app import create_app
from tests.access_helpers import (
    AXIS,
    DEVICE,
    NODE,
    PUBLIC,
    PUBLISHER,
    SESSION,
    UNGUARDED,
    RouteInfo,
    Scene,
    call,
    fill,
    inventory,
)
from tests.conftest import _postgres_database
from tests.extraction_helpers import device_recording
from tests.helpers import PASSWORD, agent_number, make_commune, sign_in, upload, vault_client


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """As conftest's, but SQLite with 512-byte pages (set before the first table, WAL as the platform uses)."""
    if request.param == "sqlite":
        path = tmp_path / "temoin.db"
        con = sqlite3.connect(path)
        con.execute("PRAGMA page_size=512")
        con.execute("PRAGMA journal_mode=WAL")
        con.close()
        yield f"sqlite:///{path}"
    else:
        yield from _postgres_database()


# --- 1. a full database ----------------------------------------------------------------------------------


class SqliteFull:
    """The real SQLITE_FULL: every connection limited to the pages the database has, free pages used up."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.limit = engine, None
        event.listen(engine, "connect", self._limit)
        with engine.begin() as c:
            c.exec_driver_sql("CREATE TABLE IF NOT EXISTS test_filler (b BLOB)")

    def _limit(self, dbapi_conn, _record) -> None:
        if self.limit is not None:
            dbapi_conn.execute(f"PRAGMA max_page_count={self.limit}")

    def fill(self) -> None:
        self.engine.dispose()  # pooled connections do not carry the limit
        with self.engine.connect() as c:
            self.limit = c.exec_driver_sql("PRAGMA page_count").scalar()
            c.exec_driver_sql(f"PRAGMA max_page_count={self.limit}")
            c.commit()
            self._until_full(c, "INSERT INTO test_filler VALUES (randomblob(200))", 1)  # the free pages
            # Small rows (a device request's nonce, a first-factor sign-in) fit in the room pages still
            # have: fill that room too, as traffic would (random keys land on every page of the index).
            device = c.exec_driver_sql("SELECT id FROM devices LIMIT 1").scalar()
            user = c.exec_driver_sql("SELECT id FROM users LIMIT 1").scalar()
            self._until_full(
                c,
                "INSERT INTO device_nonces (device_id, nonce, at) VALUES "  # noqa: S608 - ids read from the test's own database
                f"('{device}', lower(hex(randomblob(16))), '2000-01-01 00:00:00')",
                200,
            )
            self._until_full(
                c,
                "INSERT INTO web_sessions (id_hash, user_id, second_factor_ok, csrf_token, "  # noqa: S608 - ids read from the test's own database
                f"created_at, expires_at) VALUES (lower(hex(randomblob(32))), {user}, 0, "
                "lower(hex(randomblob(16))), '2000-01-01 00:00:00', '2000-01-01 00:00:00')",
                200,
            )
        self.engine.dispose()

    @staticmethod
    def _until_full(c, statement: str, refusals: int) -> None:
        """Run `statement` until the database has refused it `refusals` times in a row."""
        refused = 0
        while refused < refusals:
            try:
                c.exec_driver_sql(statement)
                c.commit()
                refused = 0
            except Exception as exc:  # noqa: BLE001 - whatever the database raises when full
                c.rollback()
                assert errors.from_database(exc) is not None, exc
                refused += 1

    def free(self) -> None:
        self.limit = None
        self.engine.dispose()


class PostgresFull:
    """PostgreSQL's disk_full (53100), raised by the server itself on any row written."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with engine.begin() as c:
            self.tables = list(c.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))
            c.exec_driver_sql(
                "CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; "
                "END $$"
            )

    def fill(self) -> None:
        with self.engine.begin() as c:
            for table in self.tables:
                c.exec_driver_sql(
                    f'CREATE TRIGGER test_full BEFORE INSERT OR UPDATE ON "{table}" '
                    "FOR EACH ROW EXECUTE FUNCTION test_disk_full()"
                )

    def free(self) -> None:
        with self.engine.begin() as c:
            for table in self.tables:
                c.exec_driver_sql(f'DROP TRIGGER IF EXISTS test_full ON "{table}"')


def fullness(platform: Platform) -> SqliteFull | PostgresFull:
    return SqliteFull(platform.engine) if platform.engine.dialect.name == "sqlite" else PostgresFull(platform.engine)


def journal_problems(platform: Platform) -> list:
    with platform.session() as db:
        return verify_all(db, platform.journal.sink, platform.keyring.public_key).problems


CCTV_CSV = (
    "id,name,lat,lon,height_m,heading_deg,fov_deg,range_m,ptz,max_zoom,stream_url,onvif_url,onvif_username,"
    "onvif_password\nfull-1,Quai,43.5585,4.0845,6,90,60,150,false,20,rtsp://10.0.0.9:554/full-1,,,\n"
)
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Signing out only deletes (a full database allows it) and would end the session the sweep uses.
SWEEP_SKIPS = {("DELETE", "/api/v1/session"), ("POST", "/logout")}


def test_a_full_database_answers_507_on_every_write_route_and_keeps_nothing(
    platform: Platform, client: TestClient
) -> None:
    commune = make_commune(platform, cameras=3)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    s = Scene(commune, rid)
    sessions: dict[Role, tuple[dict, str]] = {}
    for role in Role:
        csrf = sign_in(platform, client, commune.users[role])
        sessions[role] = (dict(client.cookies), csrf)
    cam_id, cam_key = commune.cameras[0]
    # An upload opened before the disk filled (its segment and completion come later), one not yet started.
    opened, opened_segments = sample_recording(
        cam_key, camera_id=cam_id, agent_id=agent_number(commune), duration_s=2, segment_s=2, started_at=utcnow()
    )
    vault_client(platform, client, commune.cameras[0]).send_manifest(opened)
    client.auth = None
    fresh, _ = sample_recording(
        cam_key, camera_id=cam_id, agent_id=agent_number(commune), duration_s=2, segment_s=2, started_at=utcnow()
    )
    opened_id, fresh_id = opened.manifest.recording_id, fresh.manifest.recording_id

    def as_role(role: Role) -> dict:
        cookies, csrf = sessions[role]
        client.cookies.clear()
        client.cookies.update(cookies)
        return {"X-CSRF-Token": csrf}

    def as_camera(method: str, path: str) -> dict:  # a request without a body
        client.cookies.clear()
        streamed = method == "PUT" and SEGMENT_UPLOAD.fullmatch(path) is not None
        return devices.signed_headers(cam_id, cam_key, method, path, unsigned_payload=streamed)

    def camera_request(method: str, path: str, headers: dict | None = None, **kw) -> Callable[[], httpx.Response]:
        def send() -> httpx.Response:
            client.cookies.clear()
            return client.request(method, path, headers=headers, auth=DeviceAuth(cam_id, cam_key), **kw)

        return send

    def staff(role: Role, method: str, path: str, headers: dict | None = None, **kw) -> Callable[[], httpx.Response]:
        return lambda: client.request(method, path, headers={**as_role(role), **(headers or {})}, **kw)

    def anonymous(method: str, path: str, **kw) -> Callable[[], httpx.Response]:
        def send() -> httpx.Response:
            client.cookies.clear()
            return client.request(method, path, **kw)

        return send

    segment_path = f"/api/v1/ingest/recordings/{opened_id}/segments/0"
    main: dict[str, Callable[[], httpx.Response]] = {
        "sign-in": anonymous(
            "POST", "/api/v1/session", json={"username": commune.users[Role.AGENT], "password": PASSWORD}
        ),
        "ingest start": camera_request(
            "POST",
            "/api/v1/ingest/recordings",
            content=fresh.model_dump_json(by_alias=True).encode(),
            headers={"Content-Type": "application/json"},
        ),
        "ingest segment": camera_request(
            "PUT", segment_path, content=opened_segments[0], headers={"Content-Type": "application/octet-stream"}
        ),
        "ingest complete": camera_request("POST", f"/api/v1/ingest/recordings/{opened_id}/complete"),
        "hold": staff(
            Role.CHIEF,
            "POST",
            f"/api/v1/recordings/{rid}/holds",
            json={"procedure": "judicial", "reference": "PV-2024-000777"},
        ),
        "extraction": staff(
            Role.CHIEF,
            "POST",
            "/api/v1/extractions",
            json={
                "recording_ids": [rid],
                "recipient_name": "OPJ Full",
                "recipient_kind": "judicial_police",
                "procedure_type": "judicial",
                "reference": "PV-2024-000777",
            },
        ),
        "rights request": staff(
            Role.CHIEF,
            "POST",
            "/api/v1/rights/requests",
            json={"kind": "access", "person_description": "full disk", "contact": "full@example.org"},
        ),
        "live session": camera_request(
            "POST",
            "/api/v1/live/sessions",
            json={
                "reason": "threat",
                "position": {"t": "2026-06-01T14:00:00+00:00", "lat": 43.5585, "lon": 4.0845, "accuracy_m": 5},
            },
        ),
        "cctv import": staff(
            Role.CHIEF, "POST", "/api/v1/cctv/import", content=CCTV_CSV.encode(), headers={"Content-Type": "text/csv"}
        ),
        "shift": staff(
            Role.CHIEF,
            "POST",
            "/api/v1/shifts/checkout",
            json={"device_id": s.device, "username": commune.users[Role.AGENT]},
        ),
    }
    disk = fullness(platform)
    disk.fill()
    for name, send in main.items():
        r = send()
        assert r.status_code == 507, f"{name}: {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["status"] == 507 and problem["type"] == "urn:temoin:problem:storage-full"
        assert "database is full" in problem["detail"] and "free space" in problem["detail"]
    # Every other write route, reached by a role it allows: a full database is never a bare 500.
    outcomes = []
    for info in inventory(create_app(platform, scheduler=False)):
        if info.method not in UNSAFE or (info.method, info.path) in SWEEP_SKIPS:
            continue
        if UNGUARDED.get((info.method, info.path)) == AXIS:
            continue  # the Axis Body Worn store has its own full-vault test (test_axis.py)
        status = _sweep_call(client, info, s, sessions, as_camera)
        outcomes.append(f"{info.method} {info.path}: {status}")
        assert status < 500 or status == 507, "\n".join(outcomes)
    assert sum(o.endswith(": 507") for o in outcomes) >= 20, "\n".join(outcomes)
    # Nothing partial: no recording half-created, the opened upload unchanged, the journal whole.
    with platform.session() as db:
        assert db.get(Recording, fresh_id) is None
        assert db.get(Recording, opened_id).state == "receiving"
        assert not any(seg.complete for seg in db.get(Recording, opened_id).segments)
    disk.free()
    assert journal_problems(platform) == []

    for name, send in main.items():
        r = send()
        assert r.status_code in (200, 201), f"{name} after space was freed: {r.status_code} {r.text}"
    with platform.session() as db:
        assert db.get(Recording, opened_id).state == "stored"
        assert db.get(Recording, fresh_id).state == "receiving"
    assert journal_problems(platform) == []


def _sweep_call(client: TestClient, info: RouteInfo, s: Scene, sessions: dict, as_camera) -> int:
    kind = UNGUARDED.get((info.method, info.path))
    if kind in (DEVICE, PUBLISHER):  # a WHIP publisher may also be the camera's signed request
        path = fill(info.path, s)
        return client.request(info.method, path, headers=as_camera(info.method, path)).status_code
    if kind in (PUBLIC, NODE):  # another node's forward, unsigned here: refused before any write
        client.cookies.clear()
        return call(client, info, s, None, Role.AGENT)
    role = Role.AGENT if kind == SESSION else next(r for r in Role if allows(r, info.permission))
    cookies, csrf = sessions[role]
    client.cookies.clear()
    client.cookies.update(cookies)
    return call(client, info, s, csrf, role)


def test_the_database_errors_that_mean_full_map_to_one_domain_error() -> None:
    import psycopg.errors

    class Wrapped(Exception):  # SQLAlchemy's DBAPIError keeps the driver's error as `.orig`
        def __init__(self, orig: BaseException) -> None:
            self.orig = orig

    full = sqlite3.OperationalError("database or disk is full")
    assert isinstance(errors.from_database(Wrapped(full)), errors.StorageFull)
    assert isinstance(errors.from_database(psycopg.errors.DiskFull("could not extend file")), errors.StorageFull)
    # Out of memory is not out of storage: a retry later, not an administrator freeing disk.
    assert isinstance(errors.from_database(psycopg.errors.OutOfMemory("out of memory")), errors.Unavailable)
    # Busy is not full either: send again in a moment (503).
    assert isinstance(errors.from_database(sqlite3.OperationalError("database is locked")), errors.Unavailable)
    assert errors.from_database(psycopg.errors.UniqueViolation("duplicate key")) is None
    assert "free space" in errors.from_database(Wrapped(full)).message


# --- shared: a camera's device store with a finalised recording ------------------------------------------


def camera_store(platform: Platform, root: Path, device_key):
    from temoin.camera.device_store import DeviceStore
    from temoin.camera.keys import DeviceKeys
    from temoin.evidence.crypto import new_data_key

    return DeviceStore(
        root, DeviceKeys(signing_key=device_key, storage_key=new_data_key()), platform.keyring.public_key, utcnow
    )


# --- 2. a recording deleted by retention during its upload -------------------------------------------------


def test_a_recording_deleted_mid_upload_gets_a_signed_410_and_leaves_the_camera(
    platform: Platform, client: TestClient, tmp_path: Path
) -> None:
    from datetime import timedelta

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from temoin.camera.device_store import ReceiptRejected, VaultDeletion
    from temoin.camera.offload import RecordingDeleted
    from temoin.journal.models import JournalEntry
    from temoin.vault import retention

    commune = make_commune(platform, cameras=1)
    cam_id, cam_key = commune.cameras[0]
    store = camera_store(platform, tmp_path / "camera", cam_key)
    rids = [
        device_recording(store, cam_id, agent_number(commune), [b"first" * 1000, b"second" * 1000]) for _ in range(2)
    ]
    vault = vault_client(platform, client, commune.cameras[0])
    for rid in rids:  # the dock was pulled after the first segment
        signed = store.manifest(rid)
        vault.send_manifest(signed)
        vault.upload_segment(rid, 0, b"first" * 1000)
    with platform.session() as db:  # their retention period ends before the camera is docked again
        for rid in rids:
            db.get(Recording, rid).retention_until = utcnow() - timedelta(seconds=1)
        db.commit()
        assert set(rids) <= set(retention.sweep(platform, db).deleted)

    # Every ingest call about it now answers 410 with the platform-signed certificate.
    with pytest.raises(RecordingDeleted) as gone:
        vault.complete(rids[0])
    assert "deleted by the vault (retention)" in str(gone.value)
    assert {"id", "body", "signature"} <= set(gone.value.certificate)

    result = store.hand_over(rids[0], vault.offload)
    assert isinstance(result, VaultDeletion) and result.reason == "retention"
    assert rids[0] not in store.recording_ids()  # the camera's copy is gone...
    assert (store.receipts_dir / f"{rids[0]}.deleted.json").exists()  # ...the signed certificate kept instead
    logged = [e for e in store.events() if e["event"] == "recording.deleted_by_vault"]
    assert logged and logged[0]["recording"] == rids[0] and logged[0]["reason"] == "retention"
    with platform.session() as db:
        told = db.scalars(select(JournalEntry.event).where(JournalEntry.body.contains(rids[0]))).all()
    assert "recording.deleted.retention" in told and "ingest.deleted_answered" in told
    assert journal_problems(platform) == []

    # A statement not signed by the pinned platform key deletes nothing (a forging vault, a replay).
    def forging(signed, segments, **kw):
        try:
            return vault.offload(signed, segments, **kw)
        except RecordingDeleted as exc:
            from temoin.evidence.canonical import b64e

            forged = {
                **exc.certificate,
                "signature": b64e(Ed25519PrivateKey.generate().sign(exc.certificate["body"].encode())),
            }
            raise RecordingDeleted(str(exc), forged) from None

    with pytest.raises(ReceiptRejected, match="not signed by the pinned platform key"):
        store.hand_over(rids[1], forging)
    assert rids[1] in store.pending()
    assert any(e["event"] == "receipt.rejected" and e["recording"] == rids[1] for e in store.events())
    # The genuine answer still lets it go.
    assert isinstance(store.hand_over(rids[1], vault.offload), VaultDeletion)
    assert store.pending() == []
    client.auth = None


# --- 3. `temoin camera offload` with a damaged segment ------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the vault side runs on both in test 2
def test_offload_sends_the_intact_segments_quarantines_the_damaged_one_and_exits_non_zero(
    platform: Platform, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from temoin.camera.device_store import segment_file
    from temoin.camera.runner import CameraHome
    from temoin.demo.server import BackgroundServer
    from temoin.identity.devices import create_enrolment_code
    from temoin.journal.entry import Actor
    from temoin.journal.models import JournalEntry
    from temoin.vault import catalogue, scrub

    commune = make_commune(platform, cameras=0)
    home = CameraHome(tmp_path / "camera")
    with BackgroundServer(create_app(platform, scheduler=False)) as server:
        with platform.session() as db:
            code = create_enrolment_code(
                platform, db, platform.tenant(db, commune.slug), label="damaged", by=Actor.system("test")
            )
        identity = home.enrol(server.url, code, "DMG-0001")
        store = home.store()
        segments = [bytes([i]) * 5000 for i in range(4)]
        damaged_rid = device_recording(store, identity.device_id, agent_number(commune), segments)
        whole_rid = device_recording(store, identity.device_id, agent_number(commune), segments[:2])
        # Bytes flipped in the device store: segment 2's sealed file no longer matches its signed checkpoint.
        path = store.folder(damaged_rid) / segment_file(2)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))

        r = subprocess.run(
            [sys.executable, "-m", "temoin", "camera", "offload", "--home", str(home.root)],
            env={**os.environ, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode != 0, r.stdout  # something is left on the camera: the pass is not done
    out = " ".join((r.stdout + r.stderr).split())
    assert f"{damaged_rid}: damaged segment(s) quarantined on the camera: {segment_file(2)}" in out, out
    assert "2 offloaded, 0 kept" in out and "segments [2] lost" in out
    # The camera: both recordings handed over; the damaged segment (only it) kept in quarantine.
    assert store.recording_ids() == []
    quarantine = home.root / "quarantine" / damaged_rid
    assert sorted(f.name for f in quarantine.glob("seg-*.enc")) == [segment_file(2)]
    assert quarantine.joinpath(segment_file(2)).read_bytes() == bytes(raw)  # as found, for examination
    # The vault: the intact segments, each verified against the device-signed hash, segment 2 named lost.
    with platform.session() as db:
        rec = db.get(Recording, damaged_rid)
        assert rec.state == "stored" and "segments [2] lost on the camera" in rec.state_reason
        assert [s.index for s in rec.segments if s.complete] == [0, 1, 3]
        for i in (0, 1, 3):
            assert b"".join(catalogue.read_segment(platform, db, rec, i)) == segments[i]
        problems, _ = scrub.check_recording(platform, rec, commune.slug)
        assert not problems, problems
        ingested = db.scalars(
            select(JournalEntry.body).where(
                JournalEntry.event == "recording.ingested", JournalEntry.body.contains(damaged_rid)
            )
        ).one()
        assert '"lost_segments":[2]' in ingested
        assert db.get(Recording, whole_rid).state == "stored"
    receipt = store.receipt(damaged_rid)
    assert receipt.verify(platform.keyring.public_key) and receipt.receipt.lost_segments == [2]
