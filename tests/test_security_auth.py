"""Sign-in that strangers cannot turn against users, credentials with a life cycle, usernames per tenant and
roles granted apart (issue 15). Each test reproduces an attack or a fault that the code before it let through."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from temoin.db import utcnow
from temoin.demo.server import BackgroundServer
from temoin.identity import service
from temoin.identity.models import ApiToken, LoginAttempt, User, WebSession
from temoin.identity.secrets import current_totp, token_hash
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.web.app import create_app
from tests.helpers import PASSWORD, make_commune, sign_in, totp_code

WRONG = "not the password at all"


def _entries(platform: Platform, event: str) -> list[dict]:
    with platform.session() as db:
        return [
            parse_body(e.body)
            for e in db.scalars(select(JournalEntry).where(JournalEntry.event == event).order_by(JournalEntry.id))
        ]


def _client(platform: Platform, address: str) -> TestClient:
    return TestClient(create_app(platform, scheduler=False), base_url="http://testserver", client=(address, 40000))


def _user(platform: Platform, username: str) -> User:
    with platform.session() as db:
        return db.scalar(select(User).where(User.username == username))


# --- sign-in throttling -----------------------------------------------------------------------------------


def test_a_strangers_failures_do_not_keep_the_user_out_of_a_known_device(platform, client):
    commune = make_commune(platform, cameras=0)
    chief = commune.users[Role.CHIEF]
    sign_in(platform, client, chief)  # yesterday, from the office: this browser is now a known device
    assert client.cookies.get("temoin_device")
    client.cookies.delete("temoin_session")
    with _client(platform, "198.51.100.9") as stranger:
        for _ in range(8):
            assert stranger.post("/api/v1/session", json={"username": chief, "password": WRONG}).status_code in (
                401,
                429,
            )
        # The stranger is slowed, with a delay that grows, not locked for a fixed time.
        r = stranger.post("/api/v1/session", json={"username": chief, "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # The user, from the known device, signs in at once: password and code.
    r = client.post("/api/v1/session", json={"username": chief, "password": PASSWORD})
    assert r.status_code == 200, r.text
    r = client.post("/api/v1/session/totp", json={"code": totp_code(platform, chief)})
    assert r.status_code == 200 and r.json()["second_factor_ok"]
    # A forged or foreign device cookie is a stranger's.
    with _client(platform, "203.0.113.5") as other:
        other.cookies.set("temoin_device", client.cookies.get("temoin_device")[:-2] + "xx")
        assert other.post("/api/v1/session", json={"username": chief, "password": PASSWORD}).status_code == 429
    failed = _entries(platform, "signin.failed")
    assert len(failed) >= 5 and all(e["details"]["address"] == "198.51.100.9" for e in failed)


def test_delays_grow_with_the_failures():
    from temoin.identity.throttle import delay_s

    delays = [delay_s(n, 5, 900) for n in range(4, 16)]
    assert delays[0] == 0 and delays[1] > 0
    assert all(a < b for a, b in zip(delays[1:9], delays[2:10], strict=True)) and max(delays) == 900


def test_a_password_spray_from_one_address_is_slowed(platform):
    commune = make_commune(platform, cameras=0)
    victims = [commune.users[r] for r in Role] + [f"guess-{n}" for n in range(10)]
    statuses = []
    with _client(platform, "192.0.2.44") as sprayer:
        for username in victims:
            statuses.append(sprayer.post("/api/v1/session", json={"username": username, "password": WRONG}).status_code)
    assert 429 in statuses, statuses  # each account saw one try only: the address is what gave it away
    assert statuses.index(429) <= 10
    # Others, elsewhere, sign in as usual.
    with _client(platform, "192.0.2.45") as office:
        sign_in(platform, office, commune.users[Role.MAYOR])


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(platform, tmp_path):
    commune = make_commune(platform, cameras=0)
    server = BackgroundServer(create_app(platform, scheduler=False)).start()
    try:
        for n in range(3):  # a stranger rotating the header to dodge the address throttle
            httpx.post(
                f"{server.url}/api/v1/session",
                json={"username": commune.users[Role.CHIEF], "password": WRONG},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
    finally:
        server.server.should_exit = True
        server.thread.join(10)
    with platform.session() as db:
        assert {a.address for a in db.scalars(select(LoginAttempt))} == {"127.0.0.1"}
    # Behind a declared proxy, the client is the last hop that is not a trusted proxy.
    trusted = Platform.open(
        Settings(
            home=platform.settings.home,
            database_url=platform.settings.database_url,
            secure_cookies=False,
            trusted_proxies=("10.0.0.0/8",),
        )
    )
    try:
        with _client(trusted, "10.1.2.3") as proxy:
            proxy.post(
                "/api/v1/session",
                json={"username": "nobody", "password": WRONG},
                headers={"X-Forwarded-For": "192.0.2.200, 198.51.100.7, 10.9.9.9"},
            )
        with _client(trusted, "192.0.2.99") as direct:  # not a proxy: its header is ignored
            direct.post(
                "/api/v1/session",
                json={"username": "nobody", "password": WRONG},
                headers={"X-Forwarded-For": "198.51.100.8"},
            )
        with trusted.session() as db:
            seen = [
                a.address
                for a in db.scalars(
                    select(LoginAttempt).where(LoginAttempt.username == "nobody").order_by(LoginAttempt.id)
                )
            ]
        assert seen == ["198.51.100.7", "192.0.2.99"]
    finally:
        trusted.close()
    with pytest.raises(ValueError, match="TEMOIN_TRUSTED_PROXIES"):
        Settings.from_env({"TEMOIN_TRUSTED_PROXIES": "proxy.example"})


def test_a_totp_code_is_consumed_once_even_by_concurrent_sessions(platform):
    commune = make_commune(platform, cameras=0)
    username = commune.users[Role.AUDITOR]
    with platform.session() as first, platform.session() as second:
        a = first.scalar(select(User).where(User.username == username))
        b = second.scalar(select(User).where(User.username == username))  # both read last step 0
        code = current_totp(service.totp_secret_of(platform, a))
        service.check_second_factor(platform, first, a, code)
        with pytest.raises(service.IdentityError, match="already used"):
            service.check_second_factor(platform, second, b, code)


def test_a_code_typed_in_another_script_is_a_wrong_code_not_a_server_error(platform, client):
    """Found by fuzzing the API: a code with a non-ASCII character made the comparison raise (a 500)."""
    commune = make_commune(platform, cameras=0)
    assert client.post("/api/v1/session", json={"username": commune.users[Role.CHIEF], "password": PASSWORD}).is_success
    for typed in ("12345é", "١٢٣٤٥٦"):
        r = client.post("/api/v1/session/totp", json={"code": typed})
        assert r.status_code == 401, r.text
    r = client.post("/api/v1/session/totp", json={"code": totp_code(platform, commune.users[Role.CHIEF])})
    assert r.status_code == 200 and r.json()["second_factor_ok"]


# --- usernames per tenant -----------------------------------------------------------------------------------


def test_usernames_are_per_tenant_and_sign_in_names_the_commune(platform, client):
    a = make_commune(platform, "aval", cameras=0)
    b = make_commune(platform, "brume", cameras=0)
    # Brume's administrator creates "chef": Aval's "chef" is not revealed (before: "user 'chef' already exists").
    with platform.session() as db:
        service.create_user(
            platform,
            db,
            platform.tenant(db, "aval"),
            username="chef",
            display_name="Chef A",
            role=Role.CHIEF,
            password=PASSWORD,
        )
        db.commit()
    csrf = sign_in(platform, client, b.users[Role.MAYOR])
    r = client.post(
        "/api/v1/admin/users",
        headers={"X-CSRF-Token": csrf},
        json={"username": "chef", "display_name": "Chef B", "role": "chief"},
    )
    assert r.status_code == 201, r.text
    # Two "chef": a bare username is ambiguous; username@commune or the tenant field says which.
    client.cookies.clear()
    r = client.post("/api/v1/session", json={"username": "chef", "password": PASSWORD})
    assert r.status_code == 401 and "username@commune" in r.json()["detail"]
    r = client.post("/api/v1/session", json={"username": "chef@aval", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["tenant"] == "aval"
    r = client.post("/api/v1/session", json={"username": "chef", "tenant": "brume", "password": PASSWORD})
    assert r.status_code == 401  # Brume's chef has another password: no cross-over
    # An unknown user and a wrong password read the same.
    r1 = client.post("/api/v1/session", json={"username": "nobody@brume", "password": PASSWORD})
    r2 = client.post("/api/v1/session", json={"username": a.users[Role.MAYOR], "password": WRONG})
    assert r1.json()["detail"] == r2.json()["detail"]


# --- duties apart ------------------------------------------------------------------------------------------


def test_content_roles_are_granted_by_the_mayor_or_by_the_chief_when_the_commune_says_so(platform, client):
    commune = make_commune(platform, cameras=0)
    new = {"display_name": "Nouvel agent", "role": "agent", "agent_number": "POR-0042"}
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post("/api/v1/admin/users", headers={"X-CSRF-Token": csrf}, json={"username": "agent-42", **new})
    assert r.status_code == 403 and "mayor" in r.json()["detail"]
    csrf = sign_in(platform, client, commune.users[Role.MAYOR])
    r = client.post("/api/v1/admin/users", headers={"X-CSRF-Token": csrf}, json={"username": "agent-42", **new})
    assert r.status_code == 201 and r.json()["must_change_password"] is True
    r = client.post(
        "/api/v1/admin/users",
        headers={"X-CSRF-Token": csrf},
        json={"username": "dpo-2", "display_name": "DPO", "role": "dpo"},
    )
    assert r.status_code == 201
    r = client.post(
        "/api/v1/admin/users",
        headers={"X-CSRF-Token": csrf},
        json={"username": "tech-2", "display_name": "Tech", "role": "tech_admin"},
    )
    assert r.status_code == 403  # technical accounts are the technical administrator's
    with platform.session() as db:
        service.update_settings(platform, db, platform.tenant(db, commune.slug), {"chief_grants_field_roles": True})
        db.commit()
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post("/api/v1/admin/users", headers={"X-CSRF-Token": csrf}, json={"username": "agent-43", **new})
    assert r.status_code == 201
    r = client.post(
        "/api/v1/admin/users",
        headers={"X-CSRF-Token": csrf},
        json={"username": "dpo-3", "display_name": "DPO", "role": "dpo"},
    )
    assert r.status_code == 403  # the DPO oversees the chief: only the mayor grants it
    created = [e["details"]["username"] for e in _entries(platform, "user.created")]
    assert {"agent-42", "dpo-2", "agent-43"} <= set(created)


# --- credentials with a life cycle --------------------------------------------------------------------------


def test_deactivation_ends_sessions_and_tokens_at_once(platform, client):
    commune = make_commune(platform, cameras=0)
    chief = commune.users[Role.CHIEF]
    csrf = sign_in(platform, client, chief)
    token = client.post(
        "/api/v1/tokens", headers={"X-CSRF-Token": csrf}, json={"name": "script", "scopes": ["recordings.list"]}
    ).json()["token"]
    session_cookie = client.cookies.get("temoin_session")
    with _client(platform, "192.0.2.10") as admin:
        csrf_admin = sign_in(platform, admin, commune.users[Role.TECH_ADMIN])
        r = admin.post(
            f"/api/v1/admin/users/{chief}/deactivate",
            headers={"X-CSRF-Token": csrf_admin},
            json={"reason": "left the service"},
        )
        assert r.status_code == 403  # not a technical account
        csrf_mayor = sign_in(platform, admin, commune.users[Role.MAYOR])
        r = admin.post(
            f"/api/v1/admin/users/{chief}/deactivate",
            headers={"X-CSRF-Token": csrf_mayor},
            json={"reason": "left the service"},
        )
        assert r.status_code == 200 and r.json()["active"] is False
    client.cookies.set("temoin_session", session_cookie)
    assert client.get("/api/v1/recordings").status_code == 401
    assert client.get("/api/v1/recordings", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with platform.session() as db:
        user = db.scalar(select(User).where(User.username == chief))
        assert not db.scalars(select(WebSession).where(WebSession.user_id == user.id)).all()
        assert all(t.revoked_at is not None for t in db.scalars(select(ApiToken).where(ApiToken.user_id == user.id)))
    client.cookies.clear()
    assert client.post("/api/v1/session", json={"username": chief, "password": PASSWORD}).status_code == 401
    (entry,) = _entries(platform, "user.deactivated")
    assert entry["details"]["tokens_revoked"] == 1 and entry["details"]["sessions_ended"] >= 1


def test_reset_gives_new_credentials_and_forces_a_change_at_next_sign_in(platform, client):
    commune = make_commune(platform, cameras=0)
    agent = commune.users[Role.AGENT]
    old_secret = None
    with platform.session() as db:
        old_secret = service.totp_secret_of(platform, db.scalar(select(User).where(User.username == agent)))
    csrf = sign_in(platform, client, commune.users[Role.MAYOR])
    r = client.post(f"/api/v1/admin/users/{agent}/reset", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    password, uri = r.json()["password"], r.json()["totp_uri"]
    assert old_secret not in uri and password not in str(_entries(platform, "user.credentials_reset"))
    client.cookies.clear()
    assert client.post("/api/v1/session", json={"username": agent, "password": PASSWORD}).status_code == 401
    assert client.post("/api/v1/session", json={"username": agent, "password": password}).status_code == 200
    r = client.post("/api/v1/session/totp", json={"code": totp_code(platform, agent)})
    assert r.status_code == 200 and r.json()["must_change_password"] is True
    csrf = r.json()["csrf_token"]
    r = client.get("/api/v1/recordings")
    assert r.status_code == 403 and "choose a new one" in r.json()["detail"]
    r = client.post(
        "/api/v1/account/password", headers={"X-CSRF-Token": csrf}, json={"current": password, "new": "short"}
    )
    assert r.status_code == 422
    r = client.post(
        "/api/v1/account/password",
        headers={"X-CSRF-Token": csrf},
        json={"current": password, "new": "a brand new passphrase"},
    )
    assert r.status_code == 204, r.text
    assert client.get("/api/v1/recordings").status_code == 200
    assert _entries(platform, "user.password_changed")


def test_password_change_ends_the_other_sessions(platform, client):
    commune = make_commune(platform, cameras=0)
    dpo = commune.users[Role.DPO]
    with _client(platform, "192.0.2.20") as elsewhere:
        sign_in(platform, elsewhere, dpo)
        csrf = sign_in(platform, client, dpo)
        r = client.post(
            "/api/v1/account/password",
            headers={"X-CSRF-Token": csrf},
            json={"current": WRONG, "new": "another long passphrase"},
        )
        assert r.status_code == 409 and "current password" in r.json()["detail"]
        r = client.post(
            "/api/v1/account/password",
            headers={"X-CSRF-Token": csrf},
            json={"current": PASSWORD, "new": "another long passphrase"},
        )
        assert r.status_code == 204
        assert elsewhere.get("/api/v1/recordings").status_code == 401
        assert client.get("/api/v1/recordings").status_code == 200


def test_api_tokens_have_scopes_short_lives_and_are_listed_and_revoked(platform, client):
    commune = make_commune(platform, cameras=0)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    h = {"X-CSRF-Token": csrf}
    assert client.post("/api/v1/tokens", headers=h, json={"name": "x", "scopes": ["admin.devices"]}).status_code == 422
    assert client.post("/api/v1/tokens", headers=h, json={"name": "x", "scopes": []}).status_code == 422
    assert (
        client.post(
            "/api/v1/tokens", headers=h, json={"name": "x", "days": 365, "scopes": ["recordings.list"]}
        ).status_code
        == 422
    )
    r = client.post("/api/v1/tokens", headers=h, json={"name": "list only", "scopes": ["recordings.list"]})
    assert r.status_code == 201 and r.json()["days"] == 30
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    assert client.get("/api/v1/recordings", headers=bearer).status_code == 200
    r = client.get("/api/v1/rights/requests", headers=bearer)
    assert r.status_code == 403 and "scopes" in r.json()["detail"]
    (listed,) = client.get("/api/v1/tokens").json()
    assert listed["scopes"] == ["recordings.list"] and "token" not in listed
    expires = listed["expires_at"]
    assert (
        abs(
            (utcnow() + timedelta(days=30)).timestamp()
            - __import__("datetime").datetime.fromisoformat(expires).timestamp()
        )
        < 120
    )
    r = client.delete(f"/api/v1/tokens/{listed['id']}", headers=h)
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert client.get("/api/v1/recordings", headers=bearer).status_code == 401
    # Another user's token is not theirs to revoke.
    csrf = sign_in(platform, client, commune.users[Role.MAYOR])
    assert client.delete(f"/api/v1/tokens/{listed['id']}", headers={"X-CSRF-Token": csrf}).status_code == 404
    assert [e["details"]["token_id"] for e in _entries(platform, "api_token.revoked")] == [listed["id"]]


def test_sign_out_ends_the_session_and_is_journaled(platform, client):
    commune = make_commune(platform, cameras=0)
    csrf = sign_in(platform, client, commune.users[Role.AUDITOR])
    cookie = client.cookies.get("temoin_session")
    assert client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    client.cookies.set("temoin_session", cookie)
    assert client.get("/api/v1/journal").status_code == 401
    assert _entries(platform, "signout")


@pytest.mark.parametrize("sign_out", [("POST", "/logout"), ("DELETE", "/api/v1/session")])
def test_logging_out_with_an_api_token_revokes_it(platform, client, sign_out):
    commune = make_commune(platform, cameras=0)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    issued = [
        client.post(
            "/api/v1/tokens", headers={"X-CSRF-Token": csrf}, json={"name": name, "scopes": ["recordings.list"]}
        ).json()["token"]
        for name in ("script", "other script")
    ]
    token, kept = issued
    session_cookie = client.cookies.get("temoin_session")
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/recordings", headers=bearer).status_code == 200
    r = client.request(*sign_out, headers=bearer, follow_redirects=False)
    assert r.status_code in (204, 303), r.text
    assert client.get("/api/v1/recordings", headers=bearer).status_code == 401  # the token opens nothing now
    with platform.session() as db:
        rows = {t.name: t for t in db.scalars(select(ApiToken))}
    assert rows["script"].revoked_at is not None and rows["other script"].revoked_at is None
    (revoked,) = _entries(platform, "api_token.revoked")
    assert revoked["details"]["token_id"] == rows["script"].id and "signed out" in revoked["details"]["reason"]
    # Only that token: the other one and the browser's session still work.
    assert client.get("/api/v1/recordings", headers={"Authorization": f"Bearer {kept}"}).status_code == 200
    client.cookies.set("temoin_session", session_cookie)
    assert client.get("/api/v1/recordings").status_code == 200


def test_logging_out_from_the_page_ends_the_session(platform, client):
    commune = make_commune(platform, cameras=0)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    cookie = client.cookies.get("temoin_session")
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    with platform.session() as db:
        assert db.get(WebSession, token_hash(cookie)) is None  # deleted on the server
    client.cookies.set("temoin_session", cookie)  # a copy of the cookie opens nothing
    assert client.get("/api/v1/recordings").status_code == 401
    assert len(_entries(platform, "signout")) == 1


def test_the_account_page_changes_the_password_and_manages_tokens(platform, client):
    commune = make_commune(platform, cameras=0)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    page = client.get("/account", headers={"Accept-Language": "fr"})
    assert page.status_code == 200 and "Mon compte" in page.text and "recordings.list" in page.text
    r = client.post("/account/tokens", data={"csrf_token": csrf, "name": "nuit", "scope": "recordings.list"})
    assert r.status_code == 201 and 'id="new-token"' in r.text
    (tok,) = client.get("/api/v1/tokens").json()
    r = client.post(f"/account/tokens/{tok['id']}/revoke", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and client.get("/api/v1/tokens").json()[0]["revoked_at"]
    r = client.post(
        "/account/password",
        data={"csrf_token": csrf, "current": PASSWORD, "new": "brand new passphrase"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    client.cookies.set("lang", "en")
    assert "My account" in client.get("/account").text
