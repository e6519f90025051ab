"""Erasure at a person's request in a real browser (Debian's Chromium through Playwright): the approving person
reads what is erased, irreversibly, must type EFFACER (a click alone erases nothing), then downloads the erasure
certificate from the request page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import expect

from temoin.db import utcnow
from temoin.law.access import Role
from temoin.vault.models import Recording
from tests.helpers import make_commune, pdf_text, sign_in, sign_in_page, upload

pytestmark = pytest.mark.slow


@pytest.fixture
def api(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=60) as c:
        yield c


def test_erasure_asks_for_confirmation_and_its_certificate_downloads(platform, api, browser, server_url, tmp_path):
    commune = make_commune(platform, cameras=1)
    t0 = utcnow().replace(microsecond=0) - timedelta(hours=2)
    rid, _ = upload(platform, api, commune, started_at=t0, duration_s=2, segment_s=2)
    csrf = sign_in(platform, api, commune.users[Role.DPO])
    r = api.post(
        "/api/v1/rights/requests",
        headers={"X-CSRF-Token": csrf},
        json={
            "kind": "erasure",
            "person_description": "manteau vert",
            "contact": "martin@example.org",
            "facts_start": (t0 - timedelta(minutes=5)).isoformat(),
            "facts_end": (t0 + timedelta(minutes=5)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    req = r.json()["id"]
    r = api.post(
        f"/api/v1/rights/requests/{req}/erasure", headers={"X-CSRF-Token": csrf}, json={"recording_ids": [rid]}
    )
    assert r.status_code == 201, r.text

    context = browser.new_context(
        base_url=server_url, locale="fr-FR", viewport={"width": 1280, "height": 1000}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        sign_in_page(page, platform, commune.users[Role.MAYOR])
        page.goto(f"/rights/{req}")
        approve = page.locator("#erasure-proposals form.erasure-approve")
        expect(approve).to_contain_text("irréversible")
        expect(approve).to_contain_text(rid)
        # One click erases nothing: the typed confirmation is missing, then wrong.
        approve.get_by_role("button", name="Approuver et effacer").click()
        confirm = approve.get_by_label("Tapez EFFACER pour confirmer")
        assert confirm.evaluate("e => e.validity.valueMissing")
        confirm.fill("oui")
        approve.get_by_role("button", name="Approuver et effacer").click()
        assert confirm.evaluate("e => e.validity.patternMismatch")
        with platform.session() as db:
            assert db.get(Recording, rid).state == "stored"
        confirm.fill("EFFACER")
        approve.get_by_role("button", name="Approuver et effacer").click()
        link = page.locator("#erasure-certificate")
        expect(link).to_be_visible()
        with platform.session() as db:
            assert db.get(Recording, rid).state == "deleted"
        # The request moved on, and its certificate downloads from its page.
        expect(page.locator("dl")).to_contain_text("en cours")
        with page.expect_download() as download:
            link.click()
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        assert path.name == f"certificat-effacement-{req}.pdf"
        text = pdf_text(path.read_bytes())
        assert rid in text and platform.keyring.fingerprint in text and "manteau vert" not in text
    finally:
        context.close()
