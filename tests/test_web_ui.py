"""The web pages in a real browser (Debian's Chromium through Playwright) against a real server (uvicorn).

French is the default language (the browser asks for fr-FR); one test switches to English with the link.
Each test runs on SQLite and PostgreSQL (the `platform` fixture).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from temoin.identity import service
from temoin.identity.models import User, WebSession
from temoin.journal.models import JournalEntry
from temoin.law.access import AGENT_MOTIVES, Role
from temoin.platform import Platform
from temoin.texts import label
from tests.helpers import PASSWORD, Commune, make_commune, totp_code, upload

pytestmark = pytest.mark.slow  # a server per test, a browser per module

TIMEOUT_MS = 15_000


@pytest.fixture
def commune(platform: Platform) -> Commune:
    return make_commune(platform)


@pytest.fixture
def api(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as c:
        yield c


@pytest.fixture
def page(browser, server_url: str):
    context = browser.new_context(base_url=server_url, locale="fr-FR", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    yield pg
    context.close()


def wrong_code(code: str) -> str:
    return f"{(int(code) + 500_000) % 1_000_000:06d}"  # never one of the three codes accepted around now


def password_step(page, username: str) -> None:
    page.goto("/login")
    expect(page.locator("h1")).to_have_text("Connexion")
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Continuer").click()
    expect(page).to_have_url(re.compile(r"/login/totp$"))
    expect(page.locator("h1")).to_have_text("Second facteur")


def sign_in(page, p: Platform, username: str) -> None:
    password_step(page, username)
    page.get_by_label("Code").fill(totp_code(p, username))
    page.get_by_role("button", name="Continuer").click()
    expect(page.locator("header .who")).to_be_visible()


def test_sign_in_needs_password_then_totp(page, platform, commune) -> None:
    chief = commune.users[Role.CHIEF]
    # Anonymous: the pages send to the sign-in page.
    page.goto("/recordings")
    expect(page).to_have_url(re.compile(r"/login$"))
    # A wrong password is refused, in French.
    page.get_by_label("Identifiant").fill(chief)
    page.get_by_label("Mot de passe").fill("not the password at all")
    page.get_by_role("button", name="Continuer").click()
    expect(page.locator(".error")).to_contain_text("Identifiant ou mot de passe incorrect")
    expect(page.locator("header .who")).to_have_count(0)

    password_step(page, chief)
    # Password alone is not enough: without the second factor, /recordings sends back to sign-in.
    page.goto("/recordings")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/login/totp")
    # A wrong code shows an error and does not sign in.
    page.get_by_label("Code").fill(wrong_code(totp_code(platform, chief)))
    page.get_by_role("button", name="Continuer").click()
    expect(page.locator(".error")).to_contain_text("Code incorrect ou déjà utilisé")
    expect(page.locator("header .who")).to_have_count(0)
    page.goto("/recordings")
    expect(page).to_have_url(re.compile(r"/login$"))
    # The right code signs in and lands on the recordings.
    page.goto("/login/totp")
    code = totp_code(platform, chief)
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Continuer").click()
    expect(page).to_have_url(re.compile(r"/recordings$"))
    expect(page.locator("h1")).to_have_text("Enregistrements")
    expect(page.locator("header .who")).to_contain_text("chief of port-temoin")
    # A code is good once only: replayed after a fresh password step, it is refused.
    page.context.clear_cookies()
    password_step(page, chief)
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Continuer").click()
    expect(page.locator(".error")).to_contain_text("Code incorrect ou déjà utilisé")
    page.goto("/recordings")
    expect(page).to_have_url(re.compile(r"/login$"))


def test_chief_lists_opens_and_plays_with_a_motive(page, platform, commune, api) -> None:
    ids = [upload(platform, api, commune, camera=i % 2, duration_s=4, segment_s=2)[0] for i in range(2)]
    chief = commune.users[Role.CHIEF]
    sign_in(page, platform, chief)
    page.goto("/recordings")
    rows = page.locator("tr[data-recording]")
    expect(rows).to_have_count(2)
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.recording)")) == sorted(ids)

    rid = ids[0]
    page.locator(f'tr[data-recording="{rid}"] a').click()
    expect(page).to_have_url(re.compile(rf"/recordings/{rid}$"))
    expect(page.locator("h1")).to_have_text(rid)
    meta = page.locator("dl.meta")
    expect(meta).to_contain_text("Début")
    expect(meta).to_contain_text("Caméra")
    # The camera by the name people use (its label), its technical id as the tooltip.
    expect(meta.locator("#camera")).to_have_text(f"{commune.slug}-cam-0")
    expect(meta.locator("#camera")).to_have_attribute("title", commune.cameras[0][0])
    expect(meta).to_contain_text("POR-0001")
    expect(meta).to_contain_text("Vérifiée à la réception")
    expect(page.locator("#player")).to_have_count(0)  # no content before a motive

    form = page.locator("#motive-form")
    # The motive is required: the browser refuses to submit without the text...
    form.get_by_role("button", name="Consulter").click()
    assert form.locator("input[name=motive_text]").evaluate("e => e.validity.valueMissing")
    expect(page.locator("#player")).to_have_count(0)
    # ...and the server refuses blank text the browser would let through.
    form.get_by_label("Motif de la consultation").select_option("complaint")
    form.locator("input[name=motive_text]").fill("    ")
    form.get_by_role("button", name="Consulter").click()
    expect(page.locator("#motive-form .error")).to_contain_text("Choisissez un motif de la liste")
    expect(page.locator("#player")).to_have_count(0)
    with platform.session() as db:
        assert (
            db.scalar(select(func.count()).select_from(JournalEntry).where(JournalEntry.event.like("%consult%"))) == 0
        )

    motive_text = "Plainte n° 2024-117 du riverain"
    form = page.locator("#motive-form")
    form.get_by_label("Motif de la consultation").select_option("complaint")
    form.get_by_label("Précisez (obligatoire)").fill(motive_text)
    form.get_by_role("button", name="Consulter").click()
    player = page.locator("video#player")
    expect(player).to_have_count(1)
    assert player.evaluate("v => v.canPlayType('video/mp4; codecs=\"avc1.42E01E\"')") in ("probably", "maybe")
    page.wait_for_function(
        "() => { const v = document.getElementById('player');"
        " if (v.error) throw new Error('media error ' + v.error.code + ': ' + v.error.message);"
        " return v.readyState >= 2 && v.currentTime > 0; }",
        timeout=TIMEOUT_MS,
    )
    state = player.evaluate("v => ({w: v.videoWidth, h: v.videoHeight, paused: v.paused, error: v.error})")
    assert state["w"] > 0 and state["h"] > 0 and state["error"] is None
    page.screenshot(path="/tmp/temoin-recording.png", full_page=True)
    # The segments play one after the other: the second one follows the first.
    page.wait_for_function(
        "() => { const v = document.getElementById('player');"
        " return v.currentSrc.includes('/segments/1?') && v.readyState >= 2 && v.currentTime > 0; }",
        timeout=TIMEOUT_MS,
    )

    # The consultation is in the journal with its motive.
    with platform.session() as db:
        entries = [
            e for e in db.scalars(select(JournalEntry).where(JournalEntry.action == "consultation")) if rid in e.body
        ]
    assert len(entries) == 1 and "complaint" in entries[0].body and motive_text in entries[0].body
    auditor = page.context.browser.new_context(base_url=page.url.split("/recordings")[0], locale="fr-FR")
    try:
        apage = auditor.new_page()
        sign_in(apage, platform, commune.users[Role.AUDITOR])
        apage.goto("/journal")
        row = apage.locator("#journal tbody tr", has_text=motive_text)
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Plainte ou réclamation")  # the motive's label, not its code
        expect(row).to_contain_text(rid)
        expect(row).to_contain_text("consultation")
        expect(row).not_to_contain_text("recording.consulted")  # the event reads as a sentence
    finally:
        auditor.close()


def test_agent_sees_own_recordings_and_only_r241_11_motives(page, platform, commune, api) -> None:
    own, _ = upload(platform, api, commune)  # recorded by POR-0001, the agent of the commune
    other, _ = upload(platform, api, commune, camera=1, agent="POR-0002")
    sign_in(page, platform, commune.users[Role.AGENT])
    page.goto("/recordings")
    rows = page.locator("tr[data-recording]")
    expect(rows).to_have_count(1)
    assert rows.get_attribute("data-recording") == own
    # Someone else's recording does not exist for the agent, not even by its address.
    response = page.goto(f"/recordings/{other}")
    assert response.status == 404
    expect(page.locator("body")).not_to_contain_text("POR-0002")
    page.goto(f"/recordings/{own}")
    # After the empty choice that starts the list (no motive is pre-selected), the agent's motives only.
    expect(page.locator("#motive-form select[name=motive_code] option").first).to_have_text("— choisir un motif —")
    options = page.locator("#motive-form select[name=motive_code] option:not([value=''])")
    values = sorted(options.evaluate_all("os => os.map(o => o.value)"))
    assert values == sorted(m.value for m in AGENT_MOTIVES)
    assert sorted(t.strip() for t in options.all_inner_texts()) == sorted(
        label("fr", "motive", m) for m in AGENT_MOTIVES
    )
    # A staff motive forged into the form is refused by the server.
    options.first.evaluate("o => { o.value = 'complaint'; o.selected = true; }")
    page.locator("#motive-form input[name=motive_text]").fill("pour voir")
    page.locator("#motive-form").get_by_role("button", name="Consulter").click()
    expect(page.locator("#motive-form .error")).to_contain_text("Ce motif n'est pas ouvert à votre fonction")
    expect(page.locator("#player")).to_have_count(0)


def test_auditor_verifies_journal_tech_admin_sees_no_recordings(page, platform, commune, api) -> None:
    rid, _ = upload(platform, api, commune)
    sign_in(page, platform, commune.users[Role.AUDITOR])
    expect(page).to_have_url(re.compile(r"/journal$"))
    rows = page.locator("#journal tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 1
    expect(page.locator("#journal")).to_contain_text(rid)  # the collection of the recording
    page.get_by_role("link", name="Vérifier l'intégrité du journal").click()
    expect(page.locator("#verdict")).to_have_class("ok")
    expect(page.locator("#verdict")).to_contain_text("Journal intègre")
    # The auditor reads the journal, not the recordings.
    response = page.goto("/recordings")
    assert response.status == 403 or re.search(r"/login$", page.url)
    expect(page.locator("body")).not_to_contain_text(rid)

    page.context.clear_cookies()
    sign_in(page, platform, commune.users[Role.TECH_ADMIN])
    expect(page.locator("h1")).to_have_text("Accueil")  # no page for the role: a home with the sign-out
    expect(page.locator("header nav a")).to_have_count(0)
    for path in ("/recordings", f"/recordings/{rid}", "/journal"):
        response = page.goto(path)
        assert response.status == 403 or re.search(r"/login$", page.url), path
        expect(page.locator("body")).not_to_contain_text(rid)
        expect(page.locator("tr[data-recording]")).to_have_count(0)


def test_sign_out_closes_the_session_and_english_link(page, platform, commune) -> None:
    chief = commune.users[Role.CHIEF]
    sign_in(page, platform, chief)
    page.goto("/recordings")
    # Switch to English with the link, and back.
    page.get_by_role("link", name="English").click()
    expect(page).to_have_url(re.compile(r"/recordings$"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Recordings")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.get_by_role("link", name="Français").click()
    expect(page.locator("h1")).to_have_text("Enregistrements")

    with platform.session() as db:
        user_id = db.scalar(select(User.id).where(User.username == chief))
        assert db.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == user_id)) == 1
    csrf = page.locator("form[action='/logout'] input[name=csrf_token]").input_value()
    assert len(csrf) > 10
    page.get_by_role("button", name="Déconnexion").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator("h1")).to_have_text("Connexion")
    with platform.session() as db:
        assert db.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == user_id)) == 0
    assert not [c for c in page.context.cookies() if c["name"] == service.SESSION_COOKIE]
    page.goto("/recordings")
    expect(page).to_have_url(re.compile(r"/login$"))
