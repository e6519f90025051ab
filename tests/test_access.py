"""Access: every route against every role, tenants kept apart, the wearing agent's own recordings,
grants and motives, sign-in hardening (throttling, TOTP replay, cookies, CSRF, API tokens) and
camera authentication (quota, revocation, replay, forgery).
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import pyotp
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select

from temoin.db import utcnow
from temoin.evidence.canonical import b64e
from temoin.evidence.signing import public_key_bytes
from temoin.identity import devices, secrets as identity_secrets, service
from temoin.identity.models import ApiToken, Device, User
from temoin.identity.secrets import current_totp
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.law.access import AGENT_MOTIVES, STAFF_MOTIVES, Permission, Role, allows
from temoin.platform import Platform
from temoin.vault.models import AccessGrant, Segment
from temoin.web.app import create_app
from temoin.web.deps import current_device, current_principal, whip_publisher
from tests.access_helpers import DEVICE, PUBLIC, PUBLISHER, SESSION, UNGUARDED, Scene, call, fill, inventory
from tests.helpers import PASSWORD, agent_number, make_commune, sign_in, upload, vault_client


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its recommended cost takes most of a second per hash or check here, and these tests
    create eight users per commune and sign in dozens of times. What they check does not depend on the
    hash's cost, so they use argon2id with minimal parameters (verification reads them from the hash)."""
    monkeypatch.setattr(identity_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=256, parallelism=1))


# --- the route inventory ------------------------------------------------------------------------------


# --- the setting: one commune, a recording of its agent, a spare camera -------------------------------


def scene(platform: Platform, client: TestClient, cameras: int = 3) -> Scene:
    commune = make_commune(platform, cameras=cameras)
    with platform.session() as db:  # the chief grants field roles here, so that every ADMIN_USERS role can act
        tenant = platform.tenant(db, commune.slug)
        service.update_settings(platform, db, tenant, {"chief_grants_field_roles": True})
        db.commit()
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    return Scene(commune, rid)


def test_every_route_against_every_role(platform, client):
    routes = inventory(create_app(platform, scheduler=False))
    guarded = [r for r in routes if r.guards]
    # Deny by default: a route without a Require guard must be declared, with what protects it.
    unguarded = {(r.method, r.path): r for r in routes if not r.guards}
    assert set(unguarded) == set(UNGUARDED), (
        f"routes without a Require guard not in the allowlist: {sorted(set(unguarded) - set(UNGUARDED))}; "
        f"allowlisted routes that no longer exist or now carry a guard: {sorted(set(UNGUARDED) - set(unguarded))}"
    )
    for key, kind in UNGUARDED.items():
        calls = unguarded[key].calls
        if kind == DEVICE:
            assert current_device in calls, f"{key} should be guarded by current_device"
        elif kind == PUBLISHER:
            assert whip_publisher in calls, f"{key} should be guarded by whip_publisher"
        elif kind == SESSION:
            assert current_principal in calls, f"{key} should be guarded by current_principal"
    assert len(guarded) >= 15  # the inventory really found the routers' routes

    s = scene(platform, client)
    outcomes: list[str] = []
    failures: list[str] = []
    for role in Role:
        csrf = sign_in(platform, client, s.commune.users[role])
        grant = "no-grant"
        if allows(role, Permission.RECORDINGS_VIEW):  # a real grant, so that only the role decides
            r = client.post(
                f"/api/v1/recordings/{s.recording_id}/consultations",
                headers={"X-CSRF-Token": csrf},
                json={"motive": {"code": "report_facts", "text": "route matrix grant"}},
            )
            assert r.status_code == 201, (role, r.text)
            grant = r.json()["grant"]
        for info in guarded:
            status = call(client, info, s, csrf, role, grant)
            allowed = allows(role, info.permission)
            outcomes.append(f"{role.value:16} {info.method:6} {info.path}: {status}")
            if allowed and (status in (401, 403) or status >= 500):
                failures.append(
                    f"{role.value} should reach {info.method} {info.path} ({info.permission.value}), got {status}"
                )
            if not allowed and status != 403:
                failures.append(
                    f"{role.value} must get 403 on {info.method} {info.path} ({info.permission.value}), got {status}"
                )
    assert not failures, "\n".join(failures + ["", "all outcomes:"] + outcomes)


def test_every_guarded_route_refuses_anonymous_visitors(platform, client):
    s = scene(platform, client, cameras=1)
    client.cookies.clear()
    problems = []
    for info in inventory(create_app(platform, scheduler=False)):
        kind = UNGUARDED.get((info.method, info.path))
        if kind == PUBLIC:
            continue
        status_or_response = client.request(
            info.method,
            fill(info.path, s),
            follow_redirects=False,
            params={"grant": "x"} if "segments" in info.path else None,
        )
        status = status_or_response.status_code
        if info.is_page:
            where = status_or_response.headers.get("location")
            if status not in (302, 303, 307) or where != "/login":
                problems.append(f"{info.method} {info.path}: {status} -> {where}, expected a redirect to /login")
        elif status != 401:
            problems.append(f"{info.method} {info.path}: {status}, expected 401")
    assert not problems, "\n".join(problems)


# --- tenants apart --------------------------------------------------------------------------------


def _entries(platform: Platform, event: str, chain: str | None = None) -> list[JournalEntry]:
    with platform.session() as db:
        stmt = select(JournalEntry).where(JournalEntry.event == event)
        if chain is not None:
            stmt = stmt.where(JournalEntry.chain == chain)
        return list(db.scalars(stmt.order_by(JournalEntry.seq)))


def test_a_chief_cannot_reach_another_tenants_recording_and_the_attempt_is_journaled(platform, client):
    a = make_commune(platform, "aval", cameras=1)
    b = make_commune(platform, "brume", cameras=1)
    rid_b, _ = upload(platform, client, b, duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, a.users[Role.CHIEF])
    assert rid_b not in client.get("/api/v1/recordings").text
    r = client.get(f"/api/v1/recordings/{rid_b}")
    assert r.status_code == 404
    r = client.post(
        f"/api/v1/recordings/{rid_b}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "judicial_procedure", "text": "PV 2024/123"}},
    )
    assert r.status_code == 404
    r = client.get(f"/api/v1/recordings/{rid_b}/segments/0", params={"grant": "anything"})
    assert r.status_code == 404
    assert client.get(f"/recordings/{rid_b}").status_code == 404
    attempts = _entries(platform, "access.cross_tenant", "aval")
    assert len(attempts) == 4
    body = parse_body(attempts[0].body)
    assert body["details"]["asked_for"] == rid_b and body["actor"]["id"] == a.users[Role.CHIEF]
    assert not _entries(platform, "access.cross_tenant", "brume")
    assert not _entries(platform, "recording.consulted")  # nothing was opened
    # Nor can A's administrator touch B's cameras.
    csrf = sign_in(platform, client, a.users[Role.TECH_ADMIN])
    cam_b = b.cameras[0][0]
    assert cam_b not in client.get("/api/v1/admin/devices").text
    assert client.post(f"/api/v1/admin/devices/{cam_b}/revoke", headers={"X-CSRF-Token": csrf}).status_code == 404
    assert b.users[Role.CHIEF] not in client.get("/api/v1/admin/users").text
    with platform.session() as db:
        assert db.get(Device, cam_b).status == "active"


def test_the_wearing_agent_sees_own_recordings_with_an_R241_11_motive_only(platform, client):
    commune = make_commune(platform, cameras=1)
    with platform.session() as db:
        service.create_user(
            platform,
            db,
            platform.tenant(db, commune.slug),
            username="other-agent",
            display_name="Other agent",
            role=Role.AGENT,
            password=PASSWORD,
            agent_number="POR-0002",
        )
        db.commit()
    own, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    other, _ = upload(platform, client, commune, duration_s=1, segment_s=1, agent="POR-0002")
    assert agent_number(commune) == "POR-0001"
    csrf = sign_in(platform, client, commune.users[Role.AGENT])
    listed = [r["id"] for r in client.get("/api/v1/recordings").json()]
    assert listed == [own]
    assert client.get(f"/api/v1/recordings/{own}").json()["agent"] == "POR-0001"
    assert client.get(f"/api/v1/recordings/{other}").status_code == 404
    assert client.get("/api/v1/recordings", params={"agent": "POR-0002"}).json() == []
    with platform.session() as db:
        sha = db.scalar(select(Segment.sha256).where(Segment.recording_id == own, Segment.index == 0))
    for motive in sorted(AGENT_MOTIVES):
        r = client.post(
            f"/api/v1/recordings/{own}/consultations",
            headers={"X-CSRF-Token": csrf},
            json={"motive": {"code": motive.value, "text": "compte rendu d'intervention"}},
        )
        assert r.status_code == 201, (motive, r.text)
        content = client.get(r.json()["segments"][0])
        assert content.status_code == 200 and hashlib.sha256(content.content).hexdigest() == sha
    for motive in sorted(STAFF_MOTIVES):
        r = client.post(
            f"/api/v1/recordings/{own}/consultations",
            headers={"X-CSRF-Token": csrf},
            json={"motive": {"code": motive.value, "text": "not an R241-11 motive"}},
        )
        assert r.status_code == 403, (motive, r.text)
        assert "report_facts" in r.json()["detail"]  # says which motives are open
    r = client.post(
        f"/api/v1/recordings/{other}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "report_facts", "text": "someone else's"}},
    )
    assert r.status_code == 404
    r = client.get(f"/api/v1/recordings/{other}/segments/0", params={"grant": "x"})
    assert r.status_code == 404
    # The page says the same.
    r = client.post(
        f"/recordings/{own}/consult",
        headers={"X-CSRF-Token": csrf},
        data={"motive_code": "judicial_procedure", "motive_text": "not mine to give"},
    )
    assert r.status_code == 403
    assert len(_entries(platform, "recording.consulted")) == len(AGENT_MOTIVES)


def test_tech_admin_never_sees_content_and_dpo_sees_metadata_only(platform, client):
    s = scene(platform, client, cameras=2)
    csrf = sign_in(platform, client, s.commune.users[Role.CHIEF])
    grant = client.post(
        f"/api/v1/recordings/{s.recording_id}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "incident_review", "text": "review of the evening"}},
    ).json()["grant"]
    motive = {"motive": {"code": "incident_review", "text": "just looking"}}

    csrf = sign_in(platform, client, s.commune.users[Role.TECH_ADMIN])
    r = client.post(f"/api/v1/recordings/{s.recording_id}/consultations", headers={"X-CSRF-Token": csrf}, json=motive)
    assert r.status_code == 403
    r = client.get(f"/api/v1/recordings/{s.recording_id}/segments/0", params={"grant": grant})
    assert r.status_code == 403  # not even with someone else's grant
    assert client.get("/api/v1/recordings").status_code == 403
    r = client.get("/api/v1/admin/devices")
    assert r.status_code == 200 and {d["id"] for d in r.json()} == {c[0] for c in s.commune.cameras}
    r = client.post(
        "/api/v1/admin/users",
        headers={"X-CSRF-Token": csrf},
        json={"username": "new-tech", "display_name": "New administrator", "role": "tech_admin"},
    )
    assert r.status_code == 201 and r.json()["password"] and r.json()["totp_uri"].startswith("otpauth://")
    # Nor can they mint an account that sees content or oversees others (the DPO, the auditor) and learn its
    # password: duties apart, those roles are the mayor's to grant.
    for role in ("chief", "mayor", "designated_agent", "agent", "csu_operator", "dpo", "auditor"):
        r = client.post(
            "/api/v1/admin/users",
            headers={"X-CSRF-Token": csrf},
            json={
                "username": f"new-{role.replace('_', '-')}",
                "display_name": "x",
                "role": role,
                "agent_number": "POR-0009" if role == "agent" else None,
            },
        )
        assert r.status_code == 403 and "duties apart" in r.json()["detail"], (role, r.text)

    csrf = sign_in(platform, client, s.commune.users[Role.DPO])
    assert [x["id"] for x in client.get("/api/v1/recordings").json()] == [s.recording_id]
    assert client.get(f"/api/v1/recordings/{s.recording_id}").status_code == 200
    r = client.post(f"/api/v1/recordings/{s.recording_id}/consultations", headers={"X-CSRF-Token": csrf}, json=motive)
    assert r.status_code == 403
    r = client.get(f"/api/v1/recordings/{s.recording_id}/segments/0", params={"grant": grant})
    assert r.status_code == 403
    assert len(_entries(platform, "recording.consulted")) == 1  # the chief's only


def test_content_needs_an_own_unexpired_grant_and_a_motive_with_text(platform, client):
    s = scene(platform, client, cameras=1)
    url = f"/api/v1/recordings/{s.recording_id}"
    csrf = sign_in(platform, client, s.commune.users[Role.MAYOR])
    mayors = client.post(
        f"{url}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "complaint", "text": "complaint 2024-17"}},
    ).json()["grant"]

    csrf = sign_in(platform, client, s.commune.users[Role.CHIEF])
    assert client.get(f"{url}/segments/0").status_code == 422  # the grant parameter is required
    assert client.get(f"{url}/segments/0", params={"grant": "made-up"}).status_code == 403
    assert client.get(f"{url}/segments/0", params={"grant": mayors}).status_code == 403  # another user's
    for bad in (
        {"motive": {"code": "complaint"}},
        {"motive": {"code": "complaint", "text": "   "}},
        {"motive": {"code": "complaint", "text": ""}},
        {"motive": {"code": "curiosity", "text": "because"}},
        {},
    ):
        r = client.post(f"{url}/consultations", headers={"X-CSRF-Token": csrf}, json=bad)
        assert r.status_code == 422, (bad, r.text)
    r = client.post(
        f"{url}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "complaint", "text": "complaint 2024-17"}},
    )
    assert r.status_code == 201
    own = r.json()["grant"]
    assert client.get(f"{url}/segments/0", params={"grant": own}).status_code == 200
    with platform.session() as db:  # half an hour later
        row = db.scalar(select(AccessGrant).where(AccessGrant.token_hash == identity_secrets.token_hash(own)))
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.commit()
    r = client.get(f"{url}/segments/0", params={"grant": own})
    assert r.status_code == 403 and "motive" in r.json()["detail"]
    # A grant is for one recording only.
    other, _ = upload(platform, client, s.commune, duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, s.commune.users[Role.MAYOR])
    assert client.get(f"/api/v1/recordings/{other}/segments/0", params={"grant": mayors}).status_code == 403
    assert client.get(f"{url}/segments/0", params={"grant": mayors}).status_code == 200


# --- sign-in hardening ------------------------------------------------------------------------------


def test_login_is_throttled_after_five_failures_even_with_the_right_password(platform, client):
    commune = make_commune(platform, cameras=0)
    username = commune.users[Role.CHIEF]
    for _ in range(5):
        r = client.post("/api/v1/session", json={"username": username, "password": "wrong password, sorry"})
        assert r.status_code == 401
    r = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert "temoin_session" not in r.headers.get("set-cookie", "")
    # The login page answers the same.
    r = client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 429
    # Another user is not locked out.
    sign_in(platform, client, commune.users[Role.MAYOR])
    assert len(_entries(platform, "signin.failed")) == 5


def test_a_totp_code_cannot_be_replayed(platform, client):
    commune = make_commune(platform, cameras=0)
    username = commune.users[Role.AUDITOR]
    with platform.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        code = current_totp(service.totp_secret_of(platform, user))
    assert client.post("/api/v1/session", json={"username": username, "password": PASSWORD}).status_code == 200
    # Before the second factor, the session opens nothing.
    assert client.get("/api/v1/journal").status_code == 401
    r = client.post("/api/v1/session/totp", json={"code": code})
    assert r.status_code == 200 and r.json()["second_factor_ok"] is True
    assert client.get("/api/v1/journal").status_code == 200
    client.cookies.clear()
    assert client.post("/api/v1/session", json={"username": username, "password": PASSWORD}).status_code == 200
    r = client.post("/api/v1/session/totp", json={"code": code})
    assert r.status_code == 401
    assert client.get("/api/v1/journal").status_code == 401


def _wrong_code(secret: str) -> str:
    now = time.time()
    valid = {pyotp.TOTP(secret).at(now + delta * 30) for delta in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def test_second_factor_guessing_is_throttled_too(platform, client):
    commune = make_commune(platform, cameras=0)
    username = commune.users[Role.CHIEF]
    with platform.session() as db:
        secret = service.totp_secret_of(platform, db.scalar(select(User).where(User.username == username)))
    assert client.post("/api/v1/session", json={"username": username, "password": PASSWORD}).status_code == 200
    for _ in range(5):
        assert client.post("/api/v1/session/totp", json={"code": _wrong_code(secret)}).status_code == 401
    # Six guesses on one open session are refused, the right code included.
    r = client.post("/api/v1/session/totp", json={"code": current_totp(secret)})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert client.get("/api/v1/recordings").status_code == 401
    # And the account is locked for sign-in as well.
    client.cookies.clear()
    assert client.post("/api/v1/session", json={"username": username, "password": PASSWORD}).status_code == 429


def test_session_cookie_flags_and_csrf(platform, client):
    s = scene(platform, client, cameras=1)
    r = client.post("/api/v1/session", json={"username": s.commune.users[Role.CHIEF], "password": PASSWORD})
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("temoin_session=")
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=strict"
    assert flags.get("path") == "Path=/"

    csrf = sign_in(platform, client, s.commune.users[Role.CHIEF])
    url = f"/api/v1/recordings/{s.recording_id}/consultations"
    motive = {"motive": {"code": "incident_review", "text": "checking CSRF"}}
    r = client.post(url, json=motive)
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    assert client.post(url, json=motive, headers={"X-CSRF-Token": csrf + "x"}).status_code == 403
    r = client.post(
        f"/recordings/{s.recording_id}/consult", data={"motive_code": "incident_review", "motive_text": "checking CSRF"}
    )
    assert r.status_code == 403
    r = client.put(f"/api/v1/recordings/{s.recording_id}/categories", json={"categories": ["x"]})
    assert r.status_code == 403
    assert client.delete("/api/v1/session").status_code == 403  # no sign-out forced from another site
    assert client.post(url, json=motive, headers={"X-CSRF-Token": csrf}).status_code == 201
    # The page form carries the token as a field.
    r = client.post(
        f"/recordings/{s.recording_id}/consult",
        data={"motive_code": "incident_review", "motive_text": "checking CSRF", "csrf_token": csrf},
    )
    assert r.status_code == 200
    assert len(_entries(platform, "recording.consulted")) == 2
    # Signing out ends the session on the server, not only in the browser.
    cookie_value = client.cookies.get("temoin_session")
    assert client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    client.cookies.set("temoin_session", cookie_value)
    assert client.get("/api/v1/recordings").status_code == 401


def test_api_token_works_as_bearer_without_csrf_until_revoked(platform, client):
    s = scene(platform, client, cameras=1)
    csrf = sign_in(platform, client, s.commune.users[Role.CHIEF])
    r = client.post(
        "/api/v1/tokens",
        headers={"X-CSRF-Token": csrf},
        json={"name": "script", "days": 7, "scopes": ["recordings.list", "recordings.view"]},
    )
    assert r.status_code == 201
    token = r.json()["token"]
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}"}
    assert [x["id"] for x in client.get("/api/v1/recordings", headers=bearer).json()] == [s.recording_id]
    r = client.post(
        f"/api/v1/recordings/{s.recording_id}/consultations",
        headers=bearer,
        json={"motive": {"code": "incident_review", "text": "from a script"}},
    )
    assert r.status_code == 201
    # A token does not beget tokens, and does not lift the role's limits.
    assert (
        client.post("/api/v1/tokens", headers=bearer, json={"name": "more", "scopes": ["recordings.list"]}).status_code
        == 403
    )
    r = client.get("/api/v1/admin/users", headers=bearer)  # the chief's role may, the token's scopes do not
    assert r.status_code == 403 and "scopes" in r.json()["detail"]
    assert client.get("/api/v1/recordings", headers={"Authorization": "Bearer tmn_unknown"}).status_code == 401
    with platform.session() as db:
        row = db.scalar(select(ApiToken).where(ApiToken.token_hash == identity_secrets.token_hash(token)))
        row.revoked_at = utcnow()
        db.commit()
    assert client.get("/api/v1/recordings", headers=bearer).status_code == 401


# --- cameras ------------------------------------------------------------------------------------------


def test_enrolment_is_refused_beyond_the_prefects_authorisation(platform, client):
    commune = make_commune(platform, cameras=2, authorised=2)
    csrf = sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    code = client.post(
        "/api/v1/admin/devices/codes", headers={"X-CSRF-Token": csrf}, json={"label": "third camera"}
    ).json()["code"]
    key = Ed25519PrivateKey.generate()
    body = {
        "code": code,
        "serial": "cam-3",
        "public_key": b64e(public_key_bytes(key)),
        "proof": b64e(key.sign(f"temoin-enrol\n{code}\ncam-3".encode())),
    }
    r = client.post("/api/v1/devices/enrol", json=body)
    assert r.status_code == 409 and "prefect" in r.json()["detail"]
    with platform.session() as db:
        assert db.scalar(select(Device).where(Device.serial == "cam-3")) is None
    r = client.post(f"/api/v1/admin/devices/{commune.cameras[1][0]}/revoke", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = client.post("/api/v1/devices/enrol", json=body)  # the code was not spent by the refusal
    assert r.status_code == 201, r.text
    assert client.post("/api/v1/devices/enrol", json=body).status_code == 400  # but now it is


def test_revoked_replayed_or_forged_camera_requests_are_refused(platform, client):
    commune = make_commune(platform, cameras=2)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    cam_id, key = commune.cameras[0]
    path = f"/api/v1/ingest/recordings/{rid}"

    # Replay: the very same signed request, twice.
    headers = devices.signed_headers(cam_id, key, "GET", path)
    assert client.get(path, headers=headers).status_code == 200
    r = client.get(path, headers=headers)
    assert r.status_code == 401 and "replayed" in r.json()["detail"]

    # Forged: signed by a key that is not the camera's.
    forged = devices.signed_headers(cam_id, Ed25519PrivateKey.generate(), "GET", path)
    r = client.get(path, headers=forged)
    assert r.status_code == 401 and "signature" in r.json()["detail"]
    # Signed for another request.
    other = devices.signed_headers(cam_id, key, "GET", "/api/v1/ingest/recordings/another")
    assert client.get(path, headers=other).status_code == 401
    assert client.get(path).status_code == 401
    client.app.state.refusals.flush(platform, every=True)  # journaled by the minute (web.refusals)
    refused = [parse_body(e.body) for e in _entries(platform, "device.auth_refused", commune.slug)]
    assert len(refused) == 1 and refused[0]["cameras"] == [cam_id] and refused[0]["details"]["count"] == 3

    # Revoked: the camera's requests are refused, and each refusal journaled.
    csrf = sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    assert client.post(f"/api/v1/admin/devices/{cam_id}/revoke", headers={"X-CSRF-Token": csrf}).status_code == 200
    client.cookies.clear()
    vc = vault_client(platform, client, commune.cameras[0])
    r = vc.http.get(path)
    assert r.status_code == 403 and "revoked" in r.json()["detail"]
    r = vc.http.head(f"{path}/segments/0")
    assert r.status_code == 403
    client.auth = None
    client.app.state.refusals.flush(platform, every=True)
    refused = [parse_body(e.body) for e in _entries(platform, "device.auth_refused", commune.slug)]
    assert len(refused) == 2 and refused[-1]["details"]["count"] == 2
    assert "revoked" in refused[-1]["details"]["reason"]
    # The other camera is unaffected.
    assert (
        vault_client(platform, client, commune.cameras[1]).http.get("/api/v1/ingest/recordings/unknown").status_code
        == 404
    )
    client.auth = None
