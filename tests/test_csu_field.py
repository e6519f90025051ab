"""The CSU dashboard as an operator meets it in the field, in a real browser (Debian's Chromium through
Playwright): the first alert is never silent (sound armed by a click, or a visible call to click), nothing is
ended by one click (a transmission, an incident: each asks first), and an expired session says so.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import delete, select

from temoin.identity.models import User, WebSession
from temoin.law.access import Role
from temoin.live.models import LiveSession
from temoin.platform import Platform
from tests.helpers import make_commune
from tests.live_helpers import (
    FIX,
    _cheap_password_hashes,
    as_camera,
    entries,
    on_shift,
    open_dashboard,
    server,
    settings,
)

pytestmark = pytest.mark.slow


def press_live(url: str, commune, camera: int = 0) -> str:
    """The camera's live button (the request alone: no media), signed as the camera signs it."""
    path = "/api/v1/live/sessions"
    r = httpx.post(
        f"{url}{path}",
        json={"reason": "threat", "position": FIX.model_dump(mode="json")},
        auth=as_camera(commune, camera),
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


# Chromium's autoplay policy as a person's browser applies it: no audio starts before a gesture on the page (an
# AudioContext stays "suspended" until a click or a key press). Headless Chromium under Playwright does not enforce
# it (and Playwright's evaluate counts as a gesture), so the page gets it here: the context reports "suspended" and
# resume() does nothing until a trusted click or key press reached the page.
AUTOPLAY_POLICY = """(() => {
  let gesture = false;
  for (const type of ["pointerdown", "mousedown", "keydown", "click"]) {
    window.addEventListener(type, (e) => { if (e.isTrusted) gesture = true; }, true);
  }
  const Real = window.AudioContext;
  window.AudioContext = class extends Real {
    get state() { return gesture || super.state === "closed" ? super.state : "suspended"; }
    resume() { return gesture ? super.resume() : Promise.resolve(); }
  };
})();"""


def test_the_first_alert_is_never_silent(platform: Platform, server: str, browser):
    commune = make_commune(platform, cameras=2)
    on_shift(platform, commune)
    context, page = open_dashboard(platform, browser, server, commune.users[Role.CSU_OPERATOR], AUTOPLAY_POLICY)
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
        expect(page.get_by_text("Cliquer pour activer le son", exact=True)).to_have_count(0)
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


def test_nothing_is_ended_by_one_click(platform: Platform, server: str, browser):
    commune = make_commune(platform, cameras=1)
    on_shift(platform, commune)
    context, page = open_dashboard(platform, browser, server, commune.users[Role.CSU_OPERATOR])
    asked: list[str] = []
    answer = {"accept": False}

    def on_dialog(dialog) -> None:
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


def test_an_expired_session_says_so(platform: Platform, server: str, browser):
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


def test_an_idle_dashboard_notices_its_session_expired(
    platform: Platform, server: str, browser, monkeypatch: pytest.MonkeyPatch
):
    """No alert, no click: the events channel itself checks the session (every keep-alive period, shortened here)
    and the page says the session expired."""
    from temoin.web.routes import live as live_routes

    monkeypatch.setattr(live_routes, "KEEPALIVE_S", 0.5)
    commune = make_commune(platform, cameras=1)
    operator = commune.users[Role.CSU_OPERATOR]
    context, page = open_dashboard(platform, browser, server, operator)
    try:
        with platform.session() as db:
            user = db.scalar(select(User).where(User.username == operator))
            db.execute(delete(WebSession).where(WebSession.user_id == user.id))
            db.commit()
        expect(page.locator("#csu-expired")).to_be_visible(timeout=10_000)
        expect(page.locator("#live-connection")).to_have_text("Session expirée")
    finally:
        context.close()
