"""A browser that meets an error on a page reads a page in its language, saying what to do, never the API's JSON
(found by fuzzing: FastAPI's validation list, a 403's permission code and "Not Found" reached the browser). The API
keeps its JSON."""

from __future__ import annotations

import html

import pytest

from temoin.law.access import Role
from temoin.web import page_errors
from temoin.web.i18n import gettext
from tests.helpers import make_commune, sign_in

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
RAW = ("detail", "Not Found", "journal.read", "less_than_equal", "CSRF", "{")


def _page(r, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/html"), r.headers["content-type"]
    body = html.unescape(r.text.split("<main", 1)[-1])
    assert not any(raw in body for raw in RAW), body
    assert 'href="/"' in body
    return body


def test_unknown_page_forbidden_page_and_bad_address_read_as_pages_in_french(platform, client) -> None:
    commune = make_commune(platform, cameras=0)
    assert "Cette page n'existe pas" in _page(client.get("/no-such-page", headers=BROWSER), 404)
    sign_in(platform, client, commune.users[Role.CHIEF])
    assert "Votre rôle ne donne pas accès à cette page" in _page(client.get("/journal", headers=BROWSER), 403)
    bad_address = client.get("/rights/99999999999999999999999", headers=BROWSER)
    assert "Cette adresse n'est pas valide" in _page(bad_address, 422)
    # A form left open past its session: its token no longer matches.
    expired = client.post("/logout", data={"csrf_token": "stale"}, headers=BROWSER)
    assert "Ce formulaire a expiré : rechargez la page" in _page(expired, 403)
    # In English when asked.
    english = _page(client.get("/journal?lang=en", headers=BROWSER), 403)
    assert "Your role does not give access to this page" in english


def test_the_api_and_programs_keep_their_json(platform, client) -> None:
    commune = make_commune(platform, cameras=0)
    sign_in(platform, client, commune.users[Role.CHIEF])
    for path in ("/api/v1/no-such-thing", "/api/v1/journal"):
        r = client.get(path, headers=BROWSER)  # even from a browser: a program reads these
        assert r.status_code in (403, 404) and r.headers["content-type"].startswith("application/"), r.text
        assert "detail" in r.json()
    r = client.get("/no-such-page")  # no HTML asked for (a script, curl): JSON as before
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


@pytest.mark.parametrize("advice", [*page_errors.ADVICE.values(), page_errors.OTHER, page_errors.FORM_EXPIRED])
def test_every_error_advice_has_a_french_translation(advice: str) -> None:
    assert gettext("fr", advice) != advice and gettext("en", advice) == advice
