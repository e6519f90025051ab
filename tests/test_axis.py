"""Témoin as the content destination of the Axis Body Worn system (temoin.axis, docs/axis.md).

A simulated Body Worn system, written from Axis's integration API, talks to the real application over HTTP."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import select

from temoin.axis import connection
from temoin.axis.simulator import BodyWornSystem, Bookmark, sample_recording
from temoin.journal.entry import Actor
from temoin.vault.field_checks import Flag
from temoin.vault.integrity import integrity_of
from temoin.vault.models import Quarantine, Recording, RecordingState
from tests.conftest import stop_served
from tests.helpers import agent_number, make_commune
from tests.s3_helpers import BOTH_STORES, blob_names

SLUG = "la-grande-motte"


def _connection_file(p, *, encryption: bool = True, url: str = "http://testserver", certificates=()) -> dict:
    with p.session() as db:
        issued = connection.issue(
            p,
            db,
            p.tenant(db, SLUG),
            urls=[url],
            by=Actor.system("test"),
            want_encryption=encryption,
            certificates=list(certificates),
        )
    return orjson.loads(issued.json_bytes())


@pytest.fixture
def commune(platform):
    return make_commune(platform, SLUG, cameras=0, authorised=2)


@pytest.fixture
def bws(platform, client, commune) -> BodyWornSystem:
    system = BodyWornSystem(_connection_file(platform), http=client)
    system.authenticate()
    return system


def _enrolled(bws: BodyWornSystem, commune, serial: str = "ACCC8E000001") -> str:
    user = str(uuid.uuid4())
    bws.register_system()
    bws.register_user(user, "Agent Dupont", agent_number(commune))
    assert bws.register_device(serial, "Caméra 1").status_code == 201
    return user


@BOTH_STORES
def test_whole_hand_over_becomes_a_stored_recording(platform, client, commune, bws):
    caps = bws.capabilities()
    for name in (
        "StoreReadSystemID",
        "StoreUserIDKey",
        "StoreBookmarks",
        "StoreGNSSTrackRecording",
        "StoreRejectedContent",
        "StoreSignedVideo",
        "ReadCategories",
    ):
        assert caps[name] is True
    categories = bws.read_json("Categories.json")
    assert {"Id": "violence", "Name": "violences"} in categories
    user = _enrolled(bws, commune)
    rec = sample_recording(
        user,
        "ACCC8E000001",
        place=(48.8566, 2.3522),
        bookmarks=[
            Bookmark(
                at=datetime.now(UTC),
                description="Interpellation à 12h",
                category_id="arrest",
                category_name="interpellation",
                tags="TriggerOn:Button",
            )
        ],
    )
    container = bws.upload(rec, complete=False)
    with platform.session() as db:
        receiving = db.scalar(select(Recording).where(Recording.trigger == "axis"))
        assert receiving.state == RecordingState.RECEIVING
    bws.complete(container)
    with platform.session() as db:
        stored = db.scalar(select(Recording).where(Recording.trigger == "axis"))
        assert stored.state == RecordingState.STORED
        assert stored.segment_count == len(rec.clips)
        assert [s.duration_s for s in stored.segments] == [2.0, 2.0]
        assert stored.categories == ["arrest"]
        doc = orjson.loads(stored.manifest)
        assert len(doc["manifest"]["gps_track"]) == len(rec.track)
        assert hashlib.sha256(stored.manifest.encode()).hexdigest() == stored.manifest_sha256
        assert stored.agent_user_id is not None  # matched to the Témoin agent by matricule
        assert stored.outside_territory is True  # GNSS fixes in Paris: outside the commune's territory
        # Encrypted by the camera for Témoin: decrypted once on Complete with the connection's private key, the
        # segments are what was filmed; the received ciphertext and its hashes on arrival stay in the document.
        assert [s.sha256 for s in stored.segments] == [hashlib.sha256(c.data).hexdigest() for c in rec.clips]
        received = {o["name"]: o for o in doc["axis"]["objects"] if o["kind"] == "clip"}
        assert len(received) == len(rec.clips)
        for clip_doc in received.values():
            assert clip_doc["encrypted_with"].endswith(".key")
            assert clip_doc["sha256"] != clip_doc["decrypted"]["sha256"]  # received ciphertext vs what was filmed
            assert clip_doc["decrypted"]["sha256"] in {s.sha256 for s in stored.segments}
        # Review: provenance shown, integrity intact from the vault's hashes; a full re-read finds nothing wrong.
        from temoin.vault.scrub import check_recording

        integrity = integrity_of(platform, db, stored)
        assert integrity.verdict == "intact" and integrity.proof == "vault_hash_on_arrival"
        assert check_recording(platform, stored, SLUG)[0] == []
        rec_id = stored.id
        # Altering the manifest document the vault wrote on arrival is detected.
        stored.manifest = stored.manifest.replace('"violence"', '"x"').replace(rec.serial, "ACCC8E999999")
        assert integrity_of(platform, db, stored).verdict == "damaged"
        db.rollback()
    from temoin.law.access import Role
    from tests.helpers import sign_in

    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    page = client.get(f"/recordings/{rec_id}")
    assert page.status_code == 200 and "Axis Body Worn" in page.text
    assert 'id="integrity-axis-encrypted"' in page.text and "déchiffrés à l&#39;arrivée" in page.text
    # Playback with a motive: the clip the camera encrypted plays as filmed.
    r = client.post(
        f"/api/v1/recordings/{rec_id}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "report_facts", "text": "Axis playback"}},
    )
    assert r.status_code == 201, r.text
    grant = r.json()["grant"]
    played = client.get(f"/api/v1/recordings/{rec_id}/segments/0", params={"grant": grant, "play": 1})
    assert played.status_code == 200 and played.content == rec.clips[0].data
    original = client.get(f"/api/v1/recordings/{rec_id}/segments/0", params={"grant": grant})
    assert original.content == rec.clips[0].data


def _put(bws, container, name=None, body=b"", **headers):
    return bws.request("PUT", container, name, body=body, headers=headers)


def test_auth_tokens_and_revocation(platform, client, commune, bws):
    cf = _connection_file(platform)  # a new file: the previous credential and its tokens stop working
    assert _put(bws, "Users").status_code == 401
    assert (
        client.get(
            "/auth/v1.0", headers={"X-Auth-User": bws.cf["BlobAPIUserName"], "X-Auth-Key": bws.cf["BlobAPIKey"]}
        ).status_code
        == 401
    )
    assert (
        client.get("/auth/v1.0", headers={"X-Auth-User": cf["BlobAPIUserName"], "X-Auth-Key": "wrong"}).status_code
        == 401
    )
    assert client.get("/auth/v1.0").status_code == 401
    fresh = BodyWornSystem(cf, http=client)
    fresh.authenticate()
    assert fresh.storage_url == f"http://testserver/v1/AUTH_{SLUG}"
    # No token, a forged one, an expired one: 401 and nothing created.
    for token in ("", "AUTH_tk" + "A" * 64, fresh.token[:-2] + ("AA" if not fresh.token.endswith("AA") else "BB")):
        r = client.put(f"{fresh.storage_url}/Users", headers={"X-Auth-Token": token})
        assert r.status_code == 401
    with platform.session() as db:
        from temoin.axis.models import AxisConnection, AxisContainer

        conn = db.scalar(select(AxisConnection).where(AxisConnection.revoked_at.is_(None)))
        expired, _ = connection.new_token(platform, conn, -1)
        assert client.put(f"{fresh.storage_url}/Users", headers={"X-Auth-Token": expired}).status_code == 401
        assert db.scalar(select(AxisContainer)) is None
        stored_hash = conn.key_hash
    assert cf["BlobAPIKey"] not in stored_hash and len(stored_hash) == 64  # stored hashed
    # Another tenant's account with this token: 403.
    assert client.put(fresh.storage_url.replace(SLUG, "other"), headers={"X-Auth-Token": fresh.token}).status_code in (
        401,
        403,
    )
    assert _put(fresh, "Users").status_code == 201


def test_connection_file_fields_and_limits(platform, commune):
    cf = _connection_file(platform)
    assert cf["ConnectionFileVersion"] == "1.0" and cf["WantEncryption"] is True
    assert cf["AuthenticationTokenURI"] == ["http://testserver/auth/v1.0"]
    for name, limit in connection.LIMITS.items():
        assert len(cf[name].encode()) <= limit
    assert len(orjson.dumps(cf)) <= 64 * 1024
    plain = _connection_file(platform, encryption=False)
    assert "PublicKey" not in plain and "PublicKeyId" not in plain  # "No value allowed otherwise"
    with platform.session() as db, pytest.raises(connection.AxisConnectionError):
        connection.issue(platform, db, platform.tenant(db, SLUG), urls=["ftp://x"], by=Actor.system("test"))


def test_container_metadata_semantics(client, commune, bws):
    assert (
        _put(
            bws, "Users", **{"X-Container-Meta-Colour": "blue", "x-container-meta-NAME": "Jos%C3%A9%20%26%20Co"}
        ).status_code
        == 201
    )
    assert _put(bws, "Users", **{"X-Container-Meta-Size": "3"}).status_code == 202  # merged
    head = bws.request("HEAD", "Users")
    assert head.status_code == 204
    assert head.headers["X-Container-Meta-Name"] == "Jos%C3%A9%20%26%20Co"  # exactly as sent
    assert head.headers["X-Container-Meta-Colour"] == "blue" and head.headers["X-Container-Meta-Size"] == "3"
    r = bws.request(
        "POST",
        "Users",
        headers={"X-Container-Meta-Colour": "", "X-Remove-Container-Meta-Size": "x", "X-Container-Meta-New": "1"},
    )
    assert r.status_code == 204
    head = bws.request("HEAD", "Users")
    assert "X-Container-Meta-Colour" not in head.headers and "X-Container-Meta-Size" not in head.headers
    assert head.headers["X-Container-Meta-New"] == "1"
    assert bws.request("POST", "Devices", headers={"X-Container-Meta-A": "1"}).status_code == 404
    assert bws.request("HEAD", "Devices").status_code == 404
    assert _put(bws, "Photos").status_code == 400  # not a container the integration API defines
    assert _put(bws, "Users", **{"X-Container-Meta-Big": "x" * 300}).status_code == 400


def test_object_semantics_and_write_only_credential(platform, client, commune, bws):
    _put(bws, "System")
    body = bytes(range(256)) * 10
    r = _put(
        bws,
        "System",
        "f1e2",
        body=body,
        **{"X-Object-Meta-Systemname": "Poste%20central", "X-Object-Meta-Connectionid": "c1"},
    )
    assert r.status_code == 201 and r.headers["Etag"] == hashlib.md5(body).hexdigest()  # noqa: S324 - the Axis storage protocol's ETag is the body's MD5
    got = bws.request("GET", "System", "f1e2")
    assert got.content == body and got.headers["X-Object-Meta-Systemname"] == "Poste%20central"
    # Chunked body, re-PUT replaces.
    r = client.put(
        bws._url("System", "f1e2"), headers={"X-Auth-Token": bws.token}, content=iter([b"abc", b"", b"def" * 1000])
    )
    assert r.status_code == 201
    assert bws.request("GET", "System", "f1e2").content == b"abc" + b"def" * 1000
    assert "X-Object-Meta-Systemname" not in bws.request("HEAD", "System", "f1e2").headers
    # POST replaces the whole metadata set.
    assert bws.request("POST", "System", "f1e2", headers={"X-Object-Meta-A": "1"}).status_code == 202
    head = bws.request("HEAD", "System", "f1e2")
    assert head.headers["X-Object-Meta-A"] == "1" and int(head.headers["Content-Length"]) == 3003
    assert bws.request("POST", "System", "nothing", headers={"X-Object-Meta-A": "1"}).status_code == 404
    assert bws.request("HEAD", "System", "nothing").status_code == 404
    assert _put(bws, "Nope_x", "a", body=b"x").status_code == 404
    assert _put(bws, "System", "bad", body=b"x", Etag="0" * 32).status_code == 422
    assert bws.request("HEAD", "System", "bad").status_code == 404
    assert _put(bws, "System", "Capabilities.json", body=b"{}").status_code == 403
    # Never read, list, copy or delete evidence with this credential.
    user = _enrolled(bws, commune)
    rec = sample_recording(user, "ACCC8E000001", duration_s=2)
    container = bws.upload(rec, complete=False)
    clip = next(n for n in _objects(platform) if n.endswith(".mp4"))
    for method in ("GET", "DELETE", "COPY"):
        assert bws.request(method, container, clip).status_code == 403
        assert bws.request(method, container).status_code == 403
    assert client.get(bws.storage_url, headers={"X-Auth-Token": bws.token}).status_code == 403
    # Names with '..' or encoded slashes are refused.
    for raw in ("/System/a%2Fb", "/System/..%2F..%2Fx", "/System/a/%2E%2E/b", "/Sys%2Ftem/x"):
        assert (
            client.put(bws.storage_url + raw, headers={"X-Auth-Token": bws.token}, content=b"x").status_code == 400
        ), raw


def _objects(platform) -> list[str]:
    from temoin.axis.models import AxisObject

    with platform.session() as db:
        return list(db.scalars(select(AxisObject.name)))


def test_what_should_be_refused_with_400(platform, client, commune, bws):
    user = _enrolled(bws, commune)
    now = datetime.now(UTC)
    assert _put(bws, f"{uuid.uuid4()}_ACCC8E000001_{now:%Y%m%dT%H%M%SZ}").status_code == 400  # unknown user
    assert _put(bws, f"{user}_UNKNOWN_{now:%Y%m%dT%H%M%SZ}").status_code == 400  # unknown device
    assert _put(bws, f"{user}_ACCC8E000001_20050101T000000Z").status_code == 400  # out of bounds
    assert _put(bws, f"{user}_ACCC8E000001_20990101T000000Z").status_code == 400
    container = f"{user}_ACCC8E000001_{now:%Y%m%dT%H%M%SZ}"
    assert _put(bws, container).status_code == 201
    t = str(int(now.timestamp()))
    r = _put(bws, container, "a_1.mp4", body=b"x", **{"X-Object-Meta-Starttime": t, "X-Object-Meta-Stoptime": t})
    assert r.status_code == 400 and "no duration" in r.text
    assert bws.request("POST", container, headers={"X-Container-Meta-Status": "Complete"}).status_code == 400
    with platform.session() as db:  # nothing half-done: still receiving, can still be completed later
        assert db.scalar(select(Recording.state)) == RecordingState.RECEIVING


def test_devices_count_against_the_authorisation(platform, client, commune, bws):
    assert bws.register_device("S1", "one").status_code == 201
    assert bws.register_device("S2", "two").status_code == 201
    r = bws.register_device("S3", "three")
    assert r.status_code == 402 and "prefect" in r.text
    assert bws.register_device("S1", "one renamed").status_code == 201  # re-PUT of a known camera is fine
    assert bws.register_device("S2", "two", active=False).status_code == 201  # frees a place
    assert bws.register_device("S3", "three").status_code == 201


def test_rejected_content_is_kept_and_quarantined(platform, client, commune, bws):
    name = f"RejectedContent_20261201T101010Z_{uuid.uuid4()}"
    assert (
        _put(
            bws,
            name,
            **{
                "X-Container-Meta-Rejectedcontentreason": "Missing%20metadata",
                "X-Container-Meta-Rejectedcontentoriginalcontainer": "u_S_20261201T100000Z",
            },
        ).status_code
        == 201
    )
    assert _put(bws, name, "20261201_100000_1.mp4", body=b"\x00" * 5000).status_code == 201
    with platform.session() as db:
        q = db.scalar(select(Quarantine))
        assert "Missing metadata" in q.reason and name in q.reason


def test_complete_is_final_and_idempotent(platform, client, commune, bws):
    user = _enrolled(bws, commune)
    rec = sample_recording(user, "ACCC8E000001", duration_s=2)
    container = bws.upload(rec)
    bws.complete(container)  # sent again (an answer lost): 204, nothing changes
    assert _put(bws, container, "late.mp4", body=b"x").status_code == 403
    assert bws.request("POST", container, headers={"X-Container-Meta-Status": "Transferring"}).status_code == 403
    with platform.session() as db:
        assert db.scalar(select(Recording.state)) == RecordingState.STORED


def test_disk_full_answers_507_and_keeps_nothing(platform, client, commune, bws, monkeypatch):
    from temoin.vault.storage import StorageFull

    _put(bws, "System")

    def full(*a, **k):
        raise StorageFull("disk full while staging an upload")

    monkeypatch.setattr(platform.store, "append_staged", full)
    assert _put(bws, "System", "x", body=b"abc").status_code == 507
    monkeypatch.undo()
    assert bws.request("HEAD", "System", "x").status_code == 404
    assert _put(bws, "System", "x", body=b"abc").status_code == 201


def _self_signed(tmp_path):
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_pem


@pytest.fixture
def tls_server(platform, tmp_path):
    """The application under uvicorn with TLS, in a thread."""
    import socket
    import threading
    import time

    import uvicorn

    from temoin.web.app import create_app

    cert_pem = _self_signed(tmp_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(platform, scheduler=False),
            log_level="warning",
            ssl_certfile=str(tmp_path / "cert.pem"),
            ssl_keyfile=str(tmp_path / "key.pem"),
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"https://127.0.0.1:{port}", cert_pem
    stop_served(server, thread, sock, 10)


@pytest.mark.slow
def test_over_tls_with_the_connection_files_certificate(platform, commune, tls_server):
    import httpx

    url, cert_pem = tls_server
    cf = _connection_file(platform, url=url, certificates=[cert_pem])
    assert cf["HTTPSCertificate"] and cf["AuthenticationTokenURI"] == [f"{url}/auth/v1.0"]
    bws = BodyWornSystem(cf)  # trusts exactly the certificate in the file
    bws.authenticate()
    assert bws.storage_url.startswith("https://")  # same scheme as the request
    user = _enrolled(bws, commune)
    bws.upload(sample_recording(user, "ACCC8E000001", duration_s=2))
    with platform.session() as db:
        assert db.scalar(select(Recording.state)) == RecordingState.STORED
    bws.http.close()
    with pytest.raises(httpx.ConnectError):  # a system that does not trust this certificate cannot connect
        httpx.get(f"{url}/auth/v1.0")


@pytest.mark.slow
def test_upload_cut_mid_way_keeps_nothing(platform, commune, server_url):
    import socket
    import time

    cf = _connection_file(platform, url=server_url)
    bws = BodyWornSystem(cf)
    bws.authenticate()
    _put(bws, "System")
    assert _put(bws, "System", "obj", body=b"first version").status_code == 201
    host, port = server_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            (
                f"PUT /v1/AUTH_{SLUG}/System/obj HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: {bws.token}\r\n"
                "Content-Length: 5000000\r\n\r\n"
            ).encode()
            + b"y" * 2_000_000
        )
    time.sleep(1)
    with platform.session() as db:
        from temoin.axis.models import AxisContainer, AxisObject

        obj = db.scalar(select(AxisObject).where(AxisObject.name == "obj"))
        assert obj.size == len(b"first version")  # the previous version stays, whole
        container = db.scalar(select(AxisContainer).where(AxisContainer.name == "System"))
    staging = platform.settings.vault_dir / "staging" / SLUG / container.storage_id
    assert not staging.exists() or list(staging.iterdir()) == []  # the cut body was discarded
    assert bws.request("GET", "System", "obj").content == b"first version"


def test_server_killed_mid_upload_then_retried(platform, client, commune, bws):
    """A body cut by a crash stays in staging, belongs to no object; the retried PUT stores the clip, and the
    debris is swept when the recording is stored."""
    from temoin.axis import store
    from temoin.axis.models import AxisContainer

    user = _enrolled(bws, commune)
    rec = sample_recording(user, "ACCC8E000001", duration_s=2)
    container = bws.upload(rec, complete=False)
    with platform.session() as db:
        found = db.scalar(select(AxisContainer).where(AxisContainer.name == container))
        tenant = platform.tenant(db, SLUG)
        t = str(int(rec.clips[0].started_at.timestamp()))
        change = store.MetaChange({"starttime": t, "stoptime": str(int(t) + 2)}, frozenset())
        debris = platform.store.staging / SLUG / found.storage_id
        before = set(debris.iterdir())
        upload = store.ObjectUpload(
            platform, db, tenant, found, "20990101_000000_9.mp4", change, length=10**7, etag=None
        )
        upload.feed(b"z" * (2 * 1024 * 1024))
        upload.stages.close()  # two records hashed and sealed to disk by the upload's stages, then the process "dies"
        upload.lock.release()
        assert len(set(debris.iterdir()) - before) == 1
    bws.complete(container)
    with platform.session() as db:
        stored = db.scalar(select(Recording))
        assert stored.state == RecordingState.STORED and stored.segment_count == len(rec.clips)
    assert not debris.exists() or list(debris.iterdir()) == []


def test_an_upload_aborted_twice_releases_its_object_once(platform, client, commune, bws):
    """An error handler may abort an upload its inner handler already aborted: the second does nothing (before,
    it released the object's lock a second time: a RuntimeError, a 500), and the object can be written again."""
    from temoin.axis import store
    from temoin.axis.models import AxisContainer

    user = _enrolled(bws, commune)
    rec = sample_recording(user, "ACCC8E000001", duration_s=2)
    container = bws.upload(rec, complete=False)
    with platform.session() as db:
        found = db.scalar(select(AxisContainer).where(AxisContainer.name == container))
        tenant = platform.tenant(db, SLUG)
        t = str(int(rec.clips[0].started_at.timestamp()))
        change = store.MetaChange({"starttime": t, "stoptime": str(int(t) + 2)}, frozenset())
        name = "20990101_000000_9.mp4"
        upload = store.ObjectUpload(platform, db, tenant, found, name, change, length=10, etag=None)
        upload.abort()
        upload.abort()
        again = store.ObjectUpload(platform, db, tenant, found, name, change, length=10, etag=None)
        again.abort()


def test_cli_connection_file(platform, commune, tmp_path, monkeypatch):
    import os
    import stat

    from typer.testing import CliRunner

    from temoin.cli import app

    monkeypatch.setenv("TEMOIN_HOME", str(platform.settings.home))
    monkeypatch.setenv("TEMOIN_DATABASE_URL", platform.settings.database_url)
    out = tmp_path / "axis.json"
    result = CliRunner().invoke(
        app, ["axis", "connection-file", SLUG, "--url", "https://temoin.example:8443", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    cf = orjson.loads(out.read_bytes())
    assert cf["AuthenticationTokenURI"] == ["https://temoin.example:8443/auth/v1.0"]
    result = CliRunner().invoke(app, ["axis", "connection-file", SLUG, "--url", "http://x", "--no-encryption"])
    assert result.exit_code == 0 and '"WantEncryption": false' in result.stdout
    result = CliRunner().invoke(app, ["axis", "connection-file", "nowhere", "--url", "http://x"])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["axis", "revoke", SLUG])
    assert result.exit_code == 0
    with platform.session() as db:
        assert connection.authenticate(db, cf["BlobAPIUserName"], cf["BlobAPIKey"]) is None


@pytest.mark.slow
def test_demo_hand_over(platform, commune, server_url):
    from rich.console import Console

    from temoin.demo.axis_sample import hand_over

    assert hand_over(platform, server_url, SLUG, agent_number(commune), Console(quiet=True))
    with platform.session() as db:
        stored = db.scalar(select(Recording))
        assert stored.state == RecordingState.STORED and stored.categories == ["refusal_to_comply"]
        assert stored.outside_territory is False  # a walk along the demo commune's Avenue de la Mer
        assert len(orjson.loads(stored.manifest)["manifest"]["gps_track"]) == 7


@pytest.mark.slow
def test_package_of_an_axis_recording_verifies_from_the_vaults_hashes(platform, client, commune, tmp_path):
    from temoin.law.access import Role
    from tests.extraction_helpers import _download, _extract, _pinned, _verify
    from tests.helpers import sign_in

    bws = BodyWornSystem(_connection_file(platform, encryption=False), http=client)
    bws.authenticate()
    user = _enrolled(bws, commune)
    rec = sample_recording(user, "ACCC8E000001")
    bws.upload(rec)
    client.cookies.clear()
    with platform.session() as db:
        rid = db.scalar(select(Recording.id))
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    out = _extract(client, csrf, [rid])
    _, folder = _download(client, out, tmp_path)
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    row = manifest["recordings"][0]
    assert row["provenance"] == "axis-body-worn" and row["device"] is None
    originals = sorted(folder.glob("media/**/*.mp4")) or sorted(p for p in (folder / "media").rglob("*") if p.is_file())
    assert [p.read_bytes() for p in originals] == [c.data for c in rec.clips]  # byte for byte as the camera sent
    code, output = _verify(folder, *_pinned(platform))
    assert code == 0, output
    assert "Axis Body Worn" in output
    # A changed clip is caught against the vault's hash on arrival, not only by SHA256SUMS.
    originals[0].write_bytes(originals[0].read_bytes()[:-1] + b"\x00")
    code, output = _verify(folder, *_pinned(platform))
    assert code != 0 and "is not the camera's original" in " ".join(output.split()), output


def test_encrypted_axis_recording_is_packaged_decrypted_and_verifies(platform, client, commune, bws, tmp_path):
    from temoin.law.access import Role
    from tests.extraction_helpers import _download, _extract, _pinned, _verify
    from tests.helpers import sign_in

    user = _enrolled(bws, commune)
    rec = sample_recording(user, "ACCC8E000001", duration_s=2)
    assert bws.cf["WantEncryption"] is True
    bws.upload(rec)
    client.cookies.clear()
    with platform.session() as db:
        rid = db.scalar(select(Recording.id))
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    out = _extract(client, csrf, [rid])
    _, folder = _download(client, out, tmp_path)
    row = orjson.loads((folder / "manifest.json").read_bytes())["recordings"][0]
    assert row["provenance"] == "axis-body-worn"
    media = sorted(p for p in (folder / "media").rglob("*") if p.is_file())
    assert [p.read_bytes() for p in media] == [c.data for c in rec.clips]  # what was filmed, decrypted
    document = orjson.loads(row["vault_manifest"]["document"])
    clip_doc = next(o for o in document["axis"]["objects"] if o["kind"] == "clip")
    assert (
        clip_doc["encrypted_with"] and clip_doc["decrypted"]["sha256"] == hashlib.sha256(rec.clips[0].data).hexdigest()
    )
    # The field checks' flags and the signed-video note travel in the package with the vault's document.
    assert Flag.NO_SHIFT in document["manifest"]["flags"] and clip_doc["signed_video"] is False
    code, output = _verify(folder, *_pinned(platform))
    assert code == 0, output
    media[0].write_bytes(media[0].read_bytes()[:-1] + b"\x00")
    code, output = _verify(folder, *_pinned(platform))
    assert code != 0, output


def _foreign_key_connection(cf: dict) -> dict:
    """The connection file a Body Worn system would hold if it encrypted for a key Témoin never issued."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return {**cf, "PublicKey": base64.b64encode(pem).decode()}


def test_clip_encrypted_for_another_key_is_refused_journaled_and_quarantined(platform, client, commune, bws):
    from temoin.journal.models import JournalEntry

    user = _enrolled(bws, commune)
    foreign = BodyWornSystem(_foreign_key_connection(bws.cf), http=client)
    foreign.authenticate()
    container = foreign.upload(sample_recording(user, "ACCC8E000001", duration_s=2), complete=False)
    for _ in range(2):  # the Axis system retries Complete: one quarantine entry, one journal entry
        r = foreign.request("POST", container, headers={"X-Container-Meta-Status": "Complete"})
        assert r.status_code == 400, r.text
        assert "could not be decrypted" in r.text and "connection file" in r.text
    with platform.session() as db:
        rec = db.scalar(select(Recording))
        assert rec.state == RecordingState.RECEIVING  # nothing stored; the received bytes stay staged
        quarantined = db.scalars(select(Quarantine)).all()
        assert len(quarantined) == 1 and container in quarantined[0].reason
        assert "AXIS Body Worn Manager" in quarantined[0].reason
        events = db.scalars(select(JournalEntry.event).where(JournalEntry.event == "axis.undecryptable")).all()
        assert len(events) == 1
        assert not list((platform.store.blobs / SLUG).glob(f"{rec.id}/*"))  # no segment was promoted


def test_altered_encrypted_clip_is_refused_not_stored(platform, client, commune, bws):
    """AES-CBC carries no tag: a cut ciphertext fails its padding, and the hand-over stops with the reason."""
    from temoin.axis.models import AxisObject

    user = _enrolled(bws, commune)
    rec = sample_recording(user, "ACCC8E000001", duration_s=2)
    container = bws.upload(rec, complete=False)
    with platform.session() as db:
        clip = db.scalar(select(AxisObject).where(AxisObject.kind == "clip"))
        name, meta = clip.name, dict(clip.meta)
    headers = {f"X-Object-Meta-{k.title()}": v for k, v in meta.items()}
    assert _put(bws, container, name, body=b"\x17" * 1000, **headers).status_code == 201  # not whole AES blocks
    r = bws.request("POST", container, headers={"X-Container-Meta-Status": "Complete"})
    assert r.status_code == 400 and "truncated or altered" in r.text
    with platform.session() as db:
        assert db.scalar(select(Recording)).state == RecordingState.RECEIVING
        assert len(db.scalars(select(Quarantine)).all()) == 1


def test_a_clip_that_is_no_video_is_kept_and_flagged(platform, client, commune):
    """Clips the camera encrypted whose key files never came (or anything but MP4/Matroska) are kept as received,
    never refused, and flagged for review."""
    bws = BodyWornSystem(_connection_file(platform, encryption=False), http=client)
    bws.authenticate()
    user = _enrolled(bws, commune)
    rec = sample_recording(user, "ACCC8E000001", duration_s=2)
    rec.clips[0].data = bytes(range(256)) * 64  # no MP4 box, no EBML header
    bws.upload(rec)
    with platform.session() as db:
        stored = db.scalar(select(Recording))
        assert stored.state == RecordingState.STORED and Flag.CLIP_NOT_VIDEO in stored.flags
        clip_doc = next(o for o in orjson.loads(stored.manifest)["axis"]["objects"] if o["kind"] == "clip")
        assert clip_doc["recognised_as_video"] is False


def test_field_checks_on_axis_recordings(platform, client, commune, bws):
    """The checks a native recording gets at ingest (vault.field_checks) apply to what came through Axis."""
    from datetime import timedelta

    from temoin.identity import service
    from temoin.identity.models import Device, ShiftAssignment, Tenant, User
    from temoin.journal.models import JournalEntry
    from temoin.law.access import Role

    user = _enrolled(bws, commune)
    # Wearer: Témoin checked the camera out to another agent for the shift; the shift's agent is recorded.
    with platform.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == SLUG))
        other = service.create_user(
            platform,
            db,
            tenant,
            username="agent-martin",
            display_name="Agent Martin",
            role=Role.AGENT,
            password="x" * 16,
            agent_number="LA--0002",
        ).user
        device = db.scalar(select(Device).where(Device.serial == "ACCC8E000001"))
        db.add(
            ShiftAssignment(
                tenant_id=tenant.id,
                device_id=device.id,
                user_id=other.id,
                checked_out_at=datetime.now(UTC) - timedelta(hours=2),
                checked_out_by="test",
            )
        )
        db.commit()
    bws.upload(sample_recording(user, "ACCC8E000001", duration_s=2))
    with platform.session() as db:
        rec = db.scalar(select(Recording))
        assert Flag.AGENT_NOT_ON_SHIFT in rec.flags
        assert rec.agent_ref == "LA--0002" and rec.declared_agent_ref == agent_number(commune)
        assert rec.agent_user_id == db.scalar(select(User.id).where(User.username == "agent-martin"))
        assert orjson.loads(rec.manifest)["manifest"]["flags"] == rec.flags
        assert db.scalar(select(JournalEntry.id).where(JournalEntry.event == "ingest.agent_not_on_shift"))
        db.delete(db.scalar(select(ShiftAssignment)))
        db.commit()
    # Time: a recording offloaded after its retention period had ended is kept a period from its reception (the
    # Axis system measures no clock offset for Témoin: no deletion on its clock alone), flagged and journaled.
    old = sample_recording(user, "ACCC8E000001", duration_s=2, started_at=datetime.now(UTC) - timedelta(days=800))
    bws.upload(old)
    with platform.session() as db:
        late = db.scalar(select(Recording).order_by(Recording.started_at).limit(1))
        assert Flag.TIME_BEYOND_RETENTION in late.flags and Flag.NO_SHIFT in late.flags
        assert late.retention_until > datetime.now(UTC)
        assert db.scalar(select(JournalEntry.id).where(JournalEntry.event == "ingest.time_implausible"))


def test_signed_video_is_noted_and_kept_byte_for_byte(platform, client, commune):
    """StoreSignedVideo: a clip carrying Axis signed-video SEIs is kept untouched and noted as signed."""
    bws = BodyWornSystem(_connection_file(platform, encryption=False), http=client)
    bws.authenticate()
    user = _enrolled(bws, commune)
    rec = sample_recording(user, "ACCC8E000001", duration_s=4)
    # An SEI "user data unregistered" NAL with the Signed Video UUID, in an MP4 `free` box (players skip it).
    sei = b"\x00\x00\x00\x01\x06\x05\x20" + b"Signed Video...0" + bytes(16) + b"\x80"
    rec.clips[0].data += (8 + len(sei)).to_bytes(4, "big") + b"free" + sei
    bws.upload(rec)
    with platform.session() as db:
        stored = db.scalar(select(Recording))
        clips = {o["name"]: o for o in orjson.loads(stored.manifest)["axis"]["objects"] if o["kind"] == "clip"}
        assert [c["signed_video"] for _, c in sorted(clips.items())] == [True, False]
        assert all(c["recognised_as_video"] for c in clips.values()) and Flag.CLIP_NOT_VIDEO not in stored.flags
        assert stored.segments[0].sha256 == hashlib.sha256(rec.clips[0].data).hexdigest()
        rec_id = stored.id
    from temoin.law.access import Role
    from tests.helpers import sign_in

    client.cookies.clear()
    sign_in(platform, client, commune.users[Role.CHIEF])
    page = client.get(f"/recordings/{rec_id}").text
    assert "Vidéo signée Axis : 1 clips sur 2" in page and "ne la vérifie pas" in page


def test_technical_administrator_issues_the_connection_file_over_the_api(platform, client, commune):
    from temoin.law.access import Role
    from tests.helpers import sign_in

    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    body = {"urls": ["http://testserver"], "want_encryption": False}
    assert (
        client.post("/api/v1/admin/axis/connection-file", json=body, headers={"X-CSRF-Token": csrf}).status_code == 403
    )
    csrf = sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    r = client.post("/api/v1/admin/axis/connection-file", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    cf = r.json()
    assert cf["WantEncryption"] is False and cf["BlobAPIUserName"].startswith(f"temoin-{SLUG}")
    assert (
        client.post(
            "/api/v1/admin/axis/connection-file", json={"urls": ["ftp://x"]}, headers={"X-CSRF-Token": csrf}
        ).status_code
        == 422
    )
    client.cookies.clear()
    bws = BodyWornSystem(cf, http=client)
    bws.authenticate()
    csrf = sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    assert client.post("/api/v1/admin/axis/revoke", headers={"X-CSRF-Token": csrf}).json() == {"revoked": 1}
    assert _put(bws, "Users").status_code == 401


@BOTH_STORES
def test_retention_destroys_everything_the_axis_system_sent(platform, client, commune, bws):
    from datetime import timedelta

    from temoin.vault import retention

    user = _enrolled(bws, commune)
    container = bws.upload(sample_recording(user, "ACCC8E000001", duration_s=2))
    with platform.session() as db:
        rec = db.scalar(select(Recording))
        names = blob_names(platform.store, f"{SLUG}/{rec.id}")
        # the decrypted clip (segment 0), the clip as received, its key file, the GNSS trail and its key file
        assert len(names) == 5
        result = retention.sweep(platform, db, now=rec.retention_until + timedelta(days=1), orphans=False)
        assert result.deleted == [rec.id]
    assert blob_names(platform.store, f"{SLUG}/{rec.id}") == []  # clips, key files and GNSS trail go with it
    with platform.session() as db:
        assert db.get(Recording, rec.id).wrapped_key is None
    assert _put(bws, container, "late.mp4", body=b"x").status_code == 403


def test_axis_recordings_through_reports_rights_redaction_and_erasure(platform, client, commune, bws):
    """An Axis recording (encrypted by the camera) is a recording like any other for the annual report, a rights
    request's candidate search, the redacted access copy, and erasure. (Packages and `temoin verify`:
    test_encrypted_axis_recording_is_packaged_decrypted_and_verifies.)"""
    import io
    from datetime import timedelta

    import av

    from temoin.db import utcnow
    from temoin.law.access import Role
    from temoin.reports.annual import PARIS
    from tests.extraction_helpers import _wait
    from tests.helpers import approve_erasure, sign_in
    from tests.rights_helpers import AVENUE, _create, _entries, _h

    user = _enrolled(bws, commune)
    t0 = utcnow().replace(microsecond=0) - timedelta(hours=4)
    on_avenue = sample_recording(user, "ACCC8E000001", started_at=t0, duration_s=4, place=AVENUE)
    later = sample_recording(user, "ACCC8E000001", started_at=t0 + timedelta(hours=3), duration_s=2, place=AVENUE)
    bws.upload(on_avenue)
    bws.upload(later)
    with platform.session() as db:
        first, second = db.scalars(select(Recording.id).order_by(Recording.started_at)).all()
    client.cookies.clear()
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])

    # Rights: the candidate search finds the Axis recording by the time and the place of the facts.
    window = {
        "facts_start": (t0 - timedelta(minutes=10)).isoformat(),
        "facts_end": (t0 + timedelta(minutes=10)).isoformat(),
    }
    req = _create(client, csrf, **window)
    url = f"/api/v1/rights/requests/{req['id']}/candidates"
    found = client.get(url, params={"lat": AVENUE[0], "lon": AVENUE[1], "radius_m": 300}).json()["candidates"]
    assert [c["recording_id"] for c in found] == [first], "candidate search by time and place"
    assert found[0]["overlap_s"] == 4.0 and found[0]["distance_m"] < 50

    # Redaction and access copy: from the decrypted clips (joined), faces tracked, redacted, reviewed, delivered.
    r = client.post(f"/api/v1/rights/requests/{req['id']}/copies", headers=_h(csrf), json={"recording_id": first})
    assert r.status_code == 202, r.text
    copy = _wait(client, r.json()["id"])
    assert copy["state"] == "tracks_ready", f"redaction tracks of an Axis recording: {copy}"
    r = client.post(
        f"/api/v1/rights/copies/{copy['id']}/redact",
        headers=_h(csrf),
        json={
            "keep_tracks": [],
            "add_regions": [{"start_frame": 0, "end_frame": 10, "x": 10, "y": 10, "w": 40, "h": 40}],
        },
    )
    assert r.status_code == 202, r.text
    copy = _wait(client, copy["id"])
    assert copy["state"] == "to_review", f"redacted copy of an Axis recording: {copy}"
    csrf_agent = sign_in(platform, client, commune.users[Role.DESIGNATED_AGENT])
    r = client.post(f"/api/v1/rights/copies/{copy['id']}/review", headers=_h(csrf_agent), json={"approve": True})
    assert r.status_code == 200, r.text
    sign_in(platform, client, commune.users[Role.DPO])
    got = client.get(f"/api/v1/rights/copies/{copy['id']}/download")
    assert got.status_code == 200, "access copy delivered"
    with av.open(io.BytesIO(got.content)) as video:
        assert video.streams.video and video.duration and video.duration / 1e6 > 3, "the copy holds both clips"
    assert _entries(platform, "rights.copy.delivered")[0]["recordings"] == [first]

    # Erasure: proposed from the request's candidates, approved by a second person; every Axis object goes.
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    erasure = _create(client, csrf, kind="erasure", **window)
    r = client.post(
        f"/api/v1/rights/requests/{erasure['id']}/erasure", headers=_h(csrf), json={"recording_ids": [first]}
    )
    assert r.status_code == 201, r.text
    assert approve_erasure(platform, client, commune, r.json()["id"]).status_code == 200
    with platform.session() as db:
        assert db.get(Recording, first).state == RecordingState.DELETED, "erasure of an Axis recording"
        assert db.get(Recording, first).wrapped_key is None
    assert not (platform.store.blobs / SLUG / first).exists(), "clips, received ciphertext, key files, trail erased"

    # Annual report: both Axis recordings counted (one erased early), with their hours and camera.
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    year = utcnow().astimezone(PARIS).year
    f = client.get(f"/api/v1/reports/annual/{year}").json()["figures"]
    assert f["recordings"] == 2 and f["seconds"] == 6.0, f"annual report counts Axis recordings: {f}"
    assert f["cameras_used"] == 1 and f["agents_recorded"] == 1
    assert f["deletions"] == 1 and f["deletions_early"] == 1
    assert f["rights_requests"] == 2
    with platform.session() as db:
        assert db.get(Recording, second).state == RecordingState.STORED, "erasure touched only the candidate"


def test_an_undecryptable_container_is_quarantined_for_each_tenant_whose_system_sent_it(platform):
    """The refusal is recorded once per tenant: another tenant's container of the same name (Axis systems name
    them) never keeps this tenant's quarantine and journal entry from being written."""
    from types import SimpleNamespace

    from temoin.axis.vault import _undecryptable
    from temoin.identity.models import Tenant
    from temoin.journal.models import JournalEntry

    make_commune(platform, slug="port-a")
    make_commune(platform, slug="port-b")
    container = SimpleNamespace(name="20261207_000001_ACCC8E000001")
    for slug in ("port-a", "port-b", "port-b"):  # the system retries Complete: still one each
        with platform.session() as db:
            tenant = db.scalar(select(Tenant).where(Tenant.slug == slug))
            _undecryptable(platform, db, tenant, container, SimpleNamespace(id=f"rec-{slug}"), "no key")
    with platform.session() as db:
        rows = db.execute(select(Tenant.slug).join(Quarantine, Quarantine.tenant_id == Tenant.id)).scalars().all()
        assert sorted(rows) == ["port-a", "port-b"]
        events = db.scalars(select(JournalEntry.tenant_id).where(JournalEntry.event == "axis.undecryptable")).all()
        assert len(events) == 2 and len(set(events)) == 2
