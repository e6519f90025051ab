"""The CSU dashboard as an operator meets it in the field, in a real browser (Debian's Chromium through
Playwright): the first alert is never silent (sound armed by a click, or a visible call to click), nothing is
ended by one click (a transmission, an incident: each asks first), and an expired session says so.
"""

from __future__ import annotations

import asyncio

import pytest
from playwright.sync_api import expect
from sqlalchemy import delete, select

from temoin.identity.models import User, WebSession
from temoin.law.access import Role
from temoin.live.models import LiveSession
from temoin.platform import Platform
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import make_commune
from tests.test_live import FIX, _cheap_password_hashes, entries, on_shift, publisher, server, settings  # noqa: F401
from tests.test_live_browser import sign_in_context

pytestmark = pytest.mark.slow


def press_live(url: str, commune, camera: int = 0) -> str:  # noqa: ANN001
    """The camera's live button (the request alone: no media), as the camera signs it."""
    async def press() -> str:
        cam = publisher(url, commune, camera)
        try:
            return (await cam.request(position=FIX))["id"]
        finally:
            await cam.aclose()
    return asyncio.run(press())


def open_dashboard(platform: Platform, browser, server: str, username: str):  # noqa: ANN001, ANN201
    context = browser.new_context(base_url=server, locale="fr-FR", viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    sign_in_context(platform, context, username)
    page = context.new_page()
    page.goto("/live")
    expect(page.locator("#live-connection")).to_have_text("Canal d'événements connecté")
    return context, page


@pytest.fixture(scope="module")
def browser_as_shipped():  # noqa: ANN201
    """Chromium with its usual autoplay policy: no sound before the user's gesture on the page (the test suite's
    other browser lifts it)."""
    from playwright import sync_api

    args = [a for a in CHROMIUM_ARGS if not a.startswith("--autoplay-policy")] + \
        ["--autoplay-policy=user-gesture-required"]
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield b
        b.close()


def test_the_first_alert_is_never_silent(platform: Platform, server: str, browser_as_shipped):  # noqa: F811
    commune = make_commune(platform, cameras=2)
    on_shift(platform, commune)
    context, page = open_dashboard(platform, browser_as_shipped, server, commune.users[Role.CSU_OPERATOR])
    try:
        # Loaded without a gesture: the browser keeps the sound off, and the idle screen says so (blocking nothing).
        prompt = page.locator("#csu-sound-state")
        expect(prompt).to_have_text("Cliquer pour activer le son")
        assert page.evaluate("window.temoinCsu.audioState()") != "running"
        expect(page.locator("#csu-sound-alarm")).to_be_hidden()

        # An alert before any click: a prominent visual alarm with the same call to click; nothing played yet.
        sid = press_live(server, commune)
        expect(page.locator("#csu-alert")).to_be_visible()
        alarm = page.locator("#csu-sound-alarm")
        expect(alarm).to_be_visible()
        expect(alarm).to_contain_text("cliquer pour activer le son")
        assert page.evaluate("window.temoinCsu.beeps") >= 1 and page.evaluate("window.temoinCsu.sounded") == 0
        # The alarm blocks nothing: the click goes to what is under it, and arms the sound on the way.
        row = page.locator(f'#live-sessions tr[data-session="{sid}"]')
        row.get_by_role("button", name="Afficher").click()

        # The click armed the sound: the prompt is gone, the context runs, and the waiting alert is heard now.
        expect(prompt).to_have_text("Son activé")
        expect(page.get_by_text("Cliquer pour activer le son")).to_have_count(0)
        expect(alarm).to_be_hidden()
        assert page.evaluate("window.temoinCsu.audioState()") == "running"
        page.wait_for_function("() => window.temoinCsu.sounded >= 1")
        # A further alert plays at once.
        heard = page.evaluate("window.temoinCsu.sounded")
        press_live(server, commune, camera=1)
        page.wait_for_function("(n) => window.temoinCsu.sounded > n", arg=heard)
        assert page.evaluate("window.temoinCsu.audioState()") == "running"
    finally:
        context.close()


def test_nothing_is_ended_by_one_click(platform: Platform, server: str, browser):  # noqa: F811
    commune = make_commune(platform, cameras=1)
    on_shift(platform, commune)
    context, page = open_dashboard(platform, browser, server, commune.users[Role.CSU_OPERATOR])
    asked: list[str] = []
    answer = {"accept": False}

    def on_dialog(dialog) -> None:  # noqa: ANN001
        asked.append(dialog.message)
        dialog.accept() if answer["accept"] else dialog.dismiss()

    def session() -> LiveSession:
        with platform.session() as db:
            return db.get(LiveSession, sid)

    page.on("dialog", on_dialog)
    try:
        sid = press_live(server, commune)
        expect(page.locator("#csu-alert")).to_be_visible()
        state = page.locator("#csu-alert-state")

        # "Clore" ends the transmission only once confirmed; dismissed, nothing ends.
        page.click("#csu-end")
        assert asked[-1].startswith("Clore la transmission ?")
        page.wait_for_timeout(500)
        assert session().state != "ended"
        expect(page.locator("#csu-end")).to_be_enabled()
        answer["accept"] = True
        page.click("#csu-end")
        expect(state).to_have_text("Terminé")
        assert session().state == "ended" and session().incident_closed_at is None

        # The picture stopped; the incident is still open until closed, and closing it asks first too.
        close = page.locator("#csu-close-incident")
        expect(close).to_be_enabled()
        answer["accept"] = False
        close.click()
        assert asked[-1] == "Clore l'incident ? Les renforts engagés seront rappelés."
        page.wait_for_timeout(500)
        assert session().incident_closed_at is None
        answer["accept"] = True
        close.click()
        expect(state).to_have_text("Incident clos")
        expect(close).to_be_disabled()
        assert session().incident_closed_by == commune.users[Role.CSU_OPERATOR]
    finally:
        context.close()
    events = [e["event"] for e in entries(platform, commune.slug)]
    assert events.count("live.ended") == 1 and events.count("live.incident_closed") == 1


def test_an_expired_session_says_so(platform: Platform, server: str, browser):  # noqa: F811
    commune = make_commune(platform, cameras=1)
    on_shift(platform, commune)
    operator = commune.users[Role.CSU_OPERATOR]
    context, page = open_dashboard(platform, browser, server, operator)
    try:
        expect(page.locator("#csu-expired")).to_be_hidden()
        # The session is revoked server-side (signed out elsewhere, or timed out) while the page is open.
        with platform.session() as db:
            user = db.scalar(select(User).where(User.username == operator))
            db.execute(delete(WebSession).where(WebSession.user_id == user.id))
            db.commit()
        # An alert still comes down the open events channel; what the page asks next is refused (401).
        press_live(server, commune)
        dialog = page.locator("#csu-expired")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Session expirée : se reconnecter")
        link = dialog.get_by_role("link", name="Se reconnecter")
        expect(link).to_have_attribute("href", "/login?next=/live")
        expect(page.locator("#live-connection")).to_have_text("Session expirée")
        expect(page.locator("#live-connection")).not_to_contain_text("connecté")
        for text in page.locator(".csu-tile .lost").all_inner_texts():
            assert "401" not in text, text
        # The link signs in again and comes back to /live.
        link.click()
        expect(page.locator("input[name=next]")).to_have_value("/live")
    finally:
        context.close()
