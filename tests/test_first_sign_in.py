"""First sign-in of an account someone else created: the authenticator enrolled from a QR code (and the key by
groups of 4), then the password changed before any other page opens. In Chromium against a real server."""

from __future__ import annotations

import re

import cv2
import httpx
import numpy as np
import pyotp
import pytest
from playwright.sync_api import expect

from temoin.identity.secrets import totp_uri
from temoin.law.access import Role
from temoin.web.routes.sign_in import grouped, totp_qr_svg
from tests.helpers import make_commune, sign_in

pytestmark = pytest.mark.slow


def test_the_qr_code_is_the_otpauth_uri() -> None:
    uri = totp_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "dupont")
    svg = str(totp_qr_svg(uri))
    import segno

    assert svg == segno.make(uri, error="m").svg_inline(scale=5, border=4, dark="#000", light="#fff", omitsize=True)
    assert svg.startswith("<svg") and "<script" not in svg and "style=" not in svg  # CSP: no inline script/style
    assert grouped("JBSWY3DPEHPK3PXPJB") == "JBSW Y3DP EHPK 3PXP JB"


def _decode(png: bytes) -> str:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    return cv2.QRCodeDetector().detectAndDecode(image)[0]


def test_first_sign_in_enrols_the_authenticator_then_forces_a_new_password(browser, platform, server_url) -> None:
    commune = make_commune(platform, cameras=0)
    with httpx.Client(base_url=server_url, timeout=30) as api:
        csrf = sign_in(platform, api, commune.users[Role.MAYOR])
        r = api.post(
            "/api/v1/admin/users",
            headers={"X-CSRF-Token": csrf},
            json={"username": "dupont", "display_name": "Agent Dupont", "role": "chief"},
        )
        assert r.status_code == 201, r.text
        created = r.json()
    assert created["must_change_password"] is True
    secret = pyotp.parse_uri(created["totp_uri"]).secret

    context = browser.new_context(base_url=server_url, locale="fr-FR", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto("/login")
        page.get_by_label("Identifiant").fill("dupont")
        page.get_by_label("Mot de passe").fill(created["password"])
        page.get_by_role("button", name="Continuer").click()
        expect(page).to_have_url(re.compile(r"/login/totp$"))
        qr = page.locator(".totp-qr svg")
        expect(qr).to_be_visible()
        # What a phone would read from the screen: the user's otpauth URI, with the same secret as handed over.
        shot = qr.screenshot()
        assert _decode(shot) == created["totp_uri"]
        key = page.locator(".totp-secret").inner_text()
        assert key.replace(" ", "") == secret and all(len(g) == 4 for g in key.split(" ")[:-1])

        page.get_by_label("Code").fill(pyotp.TOTP(key.replace(" ", "")).now())
        page.get_by_role("button", name="Continuer").click()
        expect(page).to_have_url(re.compile(r"/account$"))
        page.goto("/recordings")  # nothing else opens until the password is the user's own
        expect(page).to_have_url(re.compile(r"/account$"))

        page.get_by_label("Mot de passe actuel").fill(created["password"])
        page.get_by_label("Nouveau mot de passe").fill("a passphrase of my own")
        page.get_by_role("button", name="Changer de mot de passe").click()
        page.goto("/recordings")
        expect(page).to_have_url(re.compile(r"/recordings"))

        # The enrolment is never shown again.
        context.clear_cookies()
        page.goto("/login")
        page.get_by_label("Identifiant").fill("dupont")
        page.get_by_label("Mot de passe").fill("a passphrase of my own")
        page.get_by_role("button", name="Continuer").click()
        expect(page).to_have_url(re.compile(r"/login/totp$"))
        expect(page.get_by_label("Code")).to_be_visible()
        assert page.locator(".totp-qr").count() == 0 and secret not in page.content()
    finally:
        context.close()
