"""The pages speak French first, English too, from the gettext catalogues in web/locale: every text the code
and the templates ask for has a French translation, every code a page shows has a label, and a page reads in
the language the visitor chose (?lang=, cookie, Accept-Language; French by default)."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from temoin.evidence.manifest import NotInformedReason, Trigger
from temoin.extraction.package import RecipientKind
from temoin.law.access import Role
from temoin.rights.models import CopyState, ProposalState, RequestKind, RequestStatus
from temoin.vault.catalogue import HoldState
from temoin.vault.field_checks import Flag
from temoin.vault.holds import ProcedureType
from temoin.web import i18n
from temoin.web.routes.recording_pages import CATEGORIES
from tests.helpers import make_commune, sign_in

SRC = Path(i18n.__file__).parents[1]  # src/temoin


def _catalogue(lang: str):
    with (i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=lang)


def _used() -> set[tuple[str | None, str]]:
    """(msgctxt, msgid) of every text the Python code and the templates ask for, as `pybabel extract` sees them."""
    found = extract_from_dir(
        str(SRC),
        method_map=[("web/templates/**.html", "jinja2"), ("**.py", "python")],
        options_map={"web/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords=i18n.EXTRACT_KEYWORDS,
    )
    return {(context, msgid) for _file, _line, msgid, _comments, context in found}


def test_every_text_in_the_code_and_templates_has_a_french_translation() -> None:
    used = _used()
    assert len(used) > 200  # the extraction did find the pages' texts
    fr, en = _catalogue("fr"), _catalogue("en")
    for context, msgid in sorted(used, key=str):
        assert isinstance(msgid, str), f"plural forms are not used by the pages: {msgid!r}"
        french = fr.get(msgid, context=context)
        assert french is not None and french.string.strip(), f"no French for {msgid!r} (msgctxt {context!r})"
        assert en.get(msgid, context=context) is not None, f"not in the English catalogue: {msgid!r}"


@pytest.mark.parametrize(
    "kind, codes",
    [
        ("kind", list(RequestKind)),
        ("status", list(RequestStatus)),
        ("copy_state", list(CopyState)),
        ("proposal_state", list(ProposalState)),
        ("procedure", [*ProcedureType, "training"]),
        ("trigger", list(Trigger)),
        ("reason", list(NotInformedReason)),
        ("recipient", list(RecipientKind)),
        ("state", list(HoldState.ALL)),
        ("flag", list(Flag)),
        ("category", list(CATEGORIES)),
    ],
)
def test_every_code_a_page_shows_has_a_label_in_both_languages(kind: str, codes: list[str]) -> None:
    for code in codes:
        french, english = i18n.label("fr", kind, str(code)), i18n.label("en", kind, str(code))
        assert french and english
        assert "_" not in french and "_" not in english, f"a raw code shown for {kind} {code}: {french} / {english}"
    assert i18n.label("fr", "status", "in_progress") == "en cours"
    assert i18n.label("en", "status", "in_progress") == "in progress"


def test_the_sign_in_page_in_french_by_default_and_in_english_when_asked(client) -> None:
    french = client.get("/login").text
    assert "<h1>Connexion</h1>" in french and "Mot de passe" in french and '<html lang="fr">' in french
    english = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.8"}).text
    assert "<h1>Sign in</h1>" in english and "Password" in english and '<html lang="en">' in english
    assert "Sign in" in client.get("/login?lang=en").text
    client.cookies.set("lang", "en")
    assert "Username" in client.get("/login", headers={"Accept-Language": "fr-FR"}).text


def test_the_rights_register_shows_labels_not_codes_in_both_languages(platform, client) -> None:
    commune = make_commune(platform, cameras=0)
    csrf = sign_in(platform, client, commune.users[Role.MAYOR])
    r = client.post(
        "/api/v1/rights/requests",
        headers={"X-CSRF-Token": csrf},
        json={
            "kind": "erasure",
            "person_description": "veste rouge, devant la mairie",
            "contact": "dupont@example.org",
        },
    )
    assert r.status_code == 201, r.text
    client.post(
        f"/api/v1/rights/requests/{r.json()['id']}/status",
        headers={"X-CSRF-Token": csrf},
        json={"status": "in_progress"},
    )
    french = client.get("/rights").text
    assert "Droits des personnes" in french and "<td>effacement</td>" in french and "<td>en cours</td>" in french
    english = client.get("/rights?lang=en").text
    assert "Rights requests" in english and "<td>erasure</td>" in english and "<td>in progress</td>" in english
    assert "in_progress" not in english.split('id="rights-requests"')[1].split("</table>")[0]


def test_the_supervision_page_is_served_in_the_visitors_language(platform, client) -> None:
    """The CSU page's own texts come from the server in the visitor's language: an English operator never sees
    French first (the script used to swap the French built into the page once loaded)."""
    import re

    commune = make_commune(platform, cameras=0)
    sign_in(platform, client, commune.users[Role.CSU_OPERATOR])

    def page(lang: str) -> str:  # the page's elements, without the scripts' catalogue (inlined JSON)
        return client.get(f"/live?lang={lang}").text.split("<body", 1)[1].split("<script", 1)[0]

    english = page("en")
    for text in (
        "Supervision centre",
        "Connecting to the events channel…",
        "Acknowledge",
        "Reinforcements",
        "No live transmission.",
        "Session expired: sign in again",
        'aria-label="Picture wall"',
    ):
        assert text in english, text
    for text in ("Centre de supervision", "Accuser réception", "Renforts", "Aucune transmission", "Mur d'images"):
        assert text not in english, text
    french = page("fr")
    for text in ("Centre de supervision", "Accuser réception", "Renforts", "Aucune transmission en cours."):
        assert text in french, text
    # Every text of the page is the catalogue's: nothing left in French in the English page's elements.
    words = " ".join(re.findall(r">([^<>{}]+)<", english))
    assert not re.search(r"[éèàêç]", words.replace("Témoin", "").replace("Français", "")), words
