"""What the CSU operator reads is French, from the one catalogue: the incident record shows each step as a sentence
(never `live.requested`), and a refusal from the server reads as the kind of problem, then its detail."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from temoin.law.access import Role
from temoin.platform import Platform
from tests.helpers import make_commune
from tests.live_helpers import (  # noqa: F401 (server, settings, _cheap_password_hashes: fixtures)
    FIX,
    _cheap_password_hashes,
    as_camera,
    on_shift,
    open_dashboard,
    server,
    settings,
)

pytestmark = pytest.mark.slow


def press_live(url: str, commune) -> str:
    """The camera's live button (the request alone: no media), signed over its body as the camera signs it."""
    r = httpx.post(
        f"{url}/api/v1/live/sessions",
        json={"reason": "threat", "position": FIX.model_dump(mode="json")},
        auth=as_camera(commune),
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_the_incident_record_reads_as_sentences_and_refusals_say_their_kind(
    platform: Platform, server: str, browser
) -> None:
    commune = make_commune(platform, cameras=1)
    on_shift(platform, commune)
    context, page = open_dashboard(platform, browser, server, commune.users[Role.CSU_OPERATOR])
    try:
        press_live(server, commune)
        expect(page.locator("#csu-alert")).to_be_visible()
        requested = page.locator('#csu-timeline li[data-event="live.requested"]')
        expect(requested).to_contain_text("L'agent a demandé une transmission en direct")
        page.click("#csu-ack")
        acknowledged = page.locator('#csu-timeline li[data-event="live.acknowledged"]')
        expect(acknowledged).to_contain_text("Réception de l'alerte confirmée")
        for text in page.locator("#csu-timeline li").all_inner_texts():
            assert not re.search(r"\b(live|ptz|cctv|dispatch)\.[a-z_]+", text), text  # no event code
        expect(page.locator("#csu-alert-state")).to_have_text("Réception confirmée")
        # The kind of problem in French, then the server's detail; never the detail alone.
        assert page.evaluate("TemoinI18n.problem(401, 'sign in first')") == "Session expirée : sign in first"
        assert page.evaluate("TemoinI18n.problem(403, 'not your session')") == "Accès refusé : not your session"
        assert page.evaluate("TemoinI18n.problem(404, '')") == "Introuvable"
    finally:
        context.close()


def test_the_dashboard_in_english_from_the_same_catalogue(platform: Platform, server: str, browser) -> None:
    commune = make_commune(platform, cameras=1)
    on_shift(platform, commune)
    context, page = open_dashboard(platform, browser, server, commune.users[Role.CSU_OPERATOR])
    try:
        page.goto("/live?lang=en")
        expect(page.locator("#live-connection")).to_have_text("Events channel connected")
        press_live(server, commune)
        expect(page.locator('#csu-timeline li[data-event="live.requested"]')).to_contain_text(
            "The agent asked for a live transmission"
        )
        expect(page.locator("#csu-alert-state")).to_have_text("Requested")
    finally:
        context.close()
