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
from temoin.db import utcnow
from temoin.demo.samples import sample_recording
from temoin.identity import devices
from temoin.journal.verify import verify_all
from temoin.law.access import Permission, Role, allows
from temoin.platform import Platform
from temoin.vault.models import Recording
from temoin.web.app import create_app
from tests.conftest import _postgres_database
from tests.helpers import PASSWORD, agent_number, make_commune, sign_in, upload, vault_client
from tests.test_access import DEVICE, PUBLIC, SESSION, UNGUARDED, RouteInfo, Scene, call, fill, inventory


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

    def _limit(self, dbapi_conn, _record) -> None:  # noqa: ANN001
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
            self._until_full(c, "INSERT INTO device_nonces (device_id, nonce, at) VALUES "
                                f"('{device}', lower(hex(randomblob(16))), '2000-01-01 00:00:00')", 200)
            self._until_full(c, "INSERT INTO web_sessions (id_hash, user_id, second_factor_ok, csrf_token, "
                                f"created_at, expires_at) VALUES (lower(hex(randomblob(32))), {user}, 0, "
                                "lower(hex(randomblob(16))), '2000-01-01 00:00:00', '2000-01-01 00:00:00')", 200)
        self.engine.dispose()

    @staticmethod
    def _until_full(c, statement: str, refusals: int) -> None:  # noqa: ANN001
        """Run `statement` until the database has refused it `refusals` times in a row."""
        refused = 0
        while refused < refusals:
            try:
                c.exec_driver_sql(statement)
                c.commit()
                refused = 0
            except Exception as exc:  # noqa: BLE001
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
            self.tables = list(c.scalars(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))
            c.exec_driver_sql(
                "CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; "
                "END $$")

    def fill(self) -> None:
        with self.engine.begin() as c:
            for table in self.tables:
                c.exec_driver_sql(f'CREATE TRIGGER test_full BEFORE INSERT OR UPDATE ON "{table}" '
                                  "FOR EACH ROW EXECUTE FUNCTION test_disk_full()")

    def free(self) -> None:
        with self.engine.begin() as c:
            for table in self.tables:
                c.exec_driver_sql(f'DROP TRIGGER IF EXISTS test_full ON "{table}"')


def fullness(platform: Platform) -> SqliteFull | PostgresFull:
    return SqliteFull(platform.engine) if platform.engine.dialect.name == "sqlite" else PostgresFull(platform.engine)


def journal_problems(platform: Platform) -> list:
    with platform.session() as db:
        return verify_all(db, platform.journal.sink, platform.keyring.public_key).problems


CCTV_CSV = ("id,name,lat,lon,height_m,heading_deg,fov_deg,range_m,ptz,max_zoom,stream_url,onvif_url,onvif_username,"
            "onvif_password\nfull-1,Quai,43.5585,4.0845,6,90,60,150,false,20,rtsp://10.0.0.9:554/full-1,,,\n")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Signing out only deletes (a full database allows it) and would end the session the sweep uses.
SWEEP_SKIPS = {("DELETE", "/api/v1/session"), ("POST", "/logout")}


def test_a_full_database_answers_507_on_every_write_route_and_keeps_nothing(platform: Platform,
                                                                             client: TestClient) -> None:
    commune = make_commune(platform, cameras=3)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    s = Scene(commune, rid)
    sessions: dict[Role, tuple[dict, str]] = {}
    for role in Role:
        csrf = sign_in(platform, client, commune.users[role])
        sessions[role] = (dict(client.cookies), csrf)
    cam_id, cam_key = commune.cameras[0]
    # An upload opened before the disk filled (its segment and completion come later), one not yet started.
    opened, opened_segments = sample_recording(cam_key, camera_id=cam_id, agent_id=agent_number(commune),
                                               duration_s=2, segment_s=2, started_at=utcnow())
    vault_client(platform, client, commune.cameras[0]).send_manifest(opened)
    client.auth = None
    fresh, _ = sample_recording(cam_key, camera_id=cam_id, agent_id=agent_number(commune), duration_s=2,
                                segment_s=2, started_at=utcnow())
    opened_id, fresh_id = opened.manifest.recording_id, fresh.manifest.recording_id

    def as_role(role: Role) -> dict:
        cookies, csrf = sessions[role]
        client.cookies.clear()
        client.cookies.update(cookies)
        return {"X-CSRF-Token": csrf}

    def as_camera(method: str, path: str) -> dict:
        client.cookies.clear()
        return {"Authorization": devices.authorization_header(cam_id, cam_key, method, path)}

    def camera_request(method: str, path: str, headers: dict | None = None, **kw) -> Callable[[], httpx.Response]:
        return lambda: client.request(method, path, headers={**as_camera(method, path), **(headers or {})}, **kw)

    def staff(role: Role, method: str, path: str, headers: dict | None = None, **kw) -> Callable[[], httpx.Response]:
        return lambda: client.request(method, path, headers={**as_role(role), **(headers or {})}, **kw)

    def anonymous(method: str, path: str, **kw) -> Callable[[], httpx.Response]:
        def send() -> httpx.Response:
            client.cookies.clear()
            return client.request(method, path, **kw)
        return send

    segment_path = f"/api/v1/ingest/recordings/{opened_id}/segments/0"
    main: dict[str, Callable[[], httpx.Response]] = {
        "sign-in": anonymous("POST", "/api/v1/session",
                             json={"username": commune.users[Role.AGENT], "password": PASSWORD}),
        "ingest start": camera_request("POST", "/api/v1/ingest/recordings",
                                       content=fresh.model_dump_json(by_alias=True).encode(),
                                       headers={"Content-Type": "application/json"}),
        "ingest segment": camera_request("PUT", segment_path, content=opened_segments[0],
                                         headers={"Content-Type": "application/octet-stream"}),
        "ingest complete": camera_request("POST", f"/api/v1/ingest/recordings/{opened_id}/complete"),
        "hold": staff(Role.CHIEF, "POST", f"/api/v1/recordings/{rid}/holds",
                      json={"procedure": "judicial", "reference": "PV-2024-000777"}),
        "extraction": staff(Role.CHIEF, "POST", "/api/v1/extractions", json={
            "recording_ids": [rid], "recipient_name": "OPJ Full", "recipient_kind": "judicial_police",
            "procedure_type": "judicial", "reference": "PV-2024-000777"}),
        "rights request": staff(Role.CHIEF, "POST", "/api/v1/rights/requests", json={
            "kind": "access", "person_description": "full disk", "contact": "full@example.org"}),
        "live session": camera_request("POST", "/api/v1/live/sessions", json={
            "reason": "threat", "position": {"t": "2026-06-01T14:00:00+00:00", "lat": 43.5585, "lon": 4.0845,
                                             "accuracy_m": 5}}),
        "cctv import": staff(Role.CHIEF, "POST", "/api/v1/cctv/import", content=CCTV_CSV.encode(),
                             headers={"Content-Type": "text/csv"}),
        "shift": staff(Role.CHIEF, "POST", "/api/v1/shifts/checkout",
                       json={"device_id": s.device, "username": commune.users[Role.AGENT]}),
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


def _sweep_call(client: TestClient, info: RouteInfo, s: Scene, sessions: dict, as_camera) -> int:  # noqa: ANN001
    kind = UNGUARDED.get((info.method, info.path))
    if kind == DEVICE:
        path = fill(info.path, s)
        return client.request(info.method, path, headers=as_camera(info.method, path)).status_code
    if kind == PUBLIC:
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
    assert errors.from_database(sqlite3.OperationalError("database is locked")) is None
    assert errors.from_database(psycopg.errors.UniqueViolation("duplicate key")) is None
    assert "free space" in errors.from_database(Wrapped(full)).message
