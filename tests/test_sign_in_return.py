"""Signing in again from a page that lost its session (the CSU dashboard's "Session expirée" prompt) returns to that
page; only a path of this site is followed."""

from __future__ import annotations

from temoin.law.access import Role
from tests.helpers import PASSWORD, make_commune, totp_code


def _sign_in(platform, client, username: str, next_: str) -> tuple[str, str, str]:
    client.cookies.clear()
    form = client.get("/login", params={"next": next_}).text
    r = client.post("/login", data={"username": username, "password": PASSWORD, "next": next_}, follow_redirects=False)
    assert r.status_code == 303, r.text
    totp_page = client.get(r.headers["location"]).text
    r = client.post("/login/totp", data={"code": totp_code(platform, username), "next": next_}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return form, totp_page, r.headers["location"]


def test_sign_in_returns_to_the_page_it_was_asked_from(platform, client):
    commune = make_commune(platform, cameras=0)
    chief = commune.users[Role.CHIEF]  # whose home is /recordings
    form, totp_page, went = _sign_in(platform, client, chief, "/live")
    assert 'name="next" value="/live"' in form and 'name="next" value="/live"' in totp_page
    assert went == "/live"
    for elsewhere in ("//evil.example/live", "https://evil.example/", "/live\\..\\x", "javascript:alert(1)"):
        form, _, went = _sign_in(platform, client, chief, elsewhere)
        assert went == "/recordings" and 'name="next"' not in form
