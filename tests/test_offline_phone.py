"""The API documentation with the network unplugged, and the CSU dashboard on a phone (390 px wide), in Chromium
against a real server."""

from __future__ import annotations

import warnings
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from playwright.sync_api import expect

from temoin.law.access import Role
from temoin.platform import Platform
from tests.helpers import make_commune
from tests.live_helpers import (  # noqa: F401 - fixtures, which pytest finds by name
    FIX,
    _cheap_password_hashes,
    on_shift,
    server,
    settings,
    sign_in_context,
    signed,
)

pytestmark = pytest.mark.slow


def press_live(url: str, commune) -> None:
    """The camera's live button (the request alone: no media), signed over its body as the camera signs it."""
    path = "/api/v1/live/sessions"
    body = orjson.dumps({"reason": "threat", "position": FIX.model_dump(mode="json")})
    r = httpx.post(
        f"{url}{path}",
        content=body,
        headers={**signed(commune, "POST", path, 0, body), "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text


def _offline(context) -> list[str]:
    """Every request leaving the machine fails, as with the network unplugged; returns those that were tried."""
    tried: list[str] = []

    def route(r) -> None:
        if urlsplit(r.request.url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            tried.append(r.request.url)
            r.abort("internetdisconnected")

    context.route("**/*", route)
    return tried


def test_the_api_documentation_works_offline(platform: Platform, server: str, browser) -> None:
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tried = _offline(context)
    violations: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        page.goto("/docs")
        # The operations list, drawn by Swagger UI from /openapi.json.
        expect(page.locator(".opblock-summary-path", has_text="/api/v1/platform").first).to_be_visible(timeout=30_000)
        assert page.locator(".opblock").count() > 20
        assert tried == [] and violations == []
        csp = page.request.get("/docs").headers["content-security-policy"]
        assert "cdn.jsdelivr.net" not in csp and "https:" not in csp

        page.goto("/redoc")  # the other rendering, offline too (its "powered by" logo stays away: an image)
        expect(page.get_by_text("/api/v1/platform").first).to_be_attached(timeout=30_000)  # a large document
        assert tried == [] and [v for v in violations if "Loading the image" not in v] == []
    finally:
        context.close()


def _no_horizontal_scroll(page) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is {width[0]} px wide in a {width[1]} px screen"


def _within_screen(locator, width: int = 390) -> None:
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, box


def test_the_dashboard_and_navigation_fit_a_phone(platform: Platform, server: str, browser) -> None:
    commune = make_commune(platform, cameras=1)
    on_shift(platform, commune)
    context = browser.new_context(
        base_url=server, locale="fr-FR", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    try:
        sign_in_context(platform, context, commune.users[Role.CSU_OPERATOR])
        page = context.new_page()
        page.goto("/live")
        expect(page.locator("#live-connection")).to_have_text("Canal d'événements connecté")
        press_live(server, commune)
        expect(page.locator("#csu-alert")).to_be_visible()
        for control in ("#csu-ack", "#csu-sound", "#csu-ptz", "#csu-end", "#csu-close-incident"):
            page.locator(control).scroll_into_view_if_needed()
            _within_screen(page.locator(control))
        _no_horizontal_scroll(page)
        page.locator("#csu-ack").click()
        expect(page.locator("#csu-alert-acked")).not_to_have_text("—")

        # The top navigation of the other pages: every link reachable, nothing cut off.
        sign_in_context(platform, context, commune.users[Role.MAYOR])
        page.goto("/reports")
        links = page.locator("header nav a")
        assert links.count() >= 3
        for i in range(links.count()):
            _within_screen(links.nth(i))
        _within_screen(page.locator("header .who"))
        _within_screen(page.get_by_role("button", name="Déconnexion"))
        _no_horizontal_scroll(page)
    finally:
        context.close()


def test_each_operation_of_the_api_document_has_its_own_id(client) -> None:
    """Client generators name their functions after the operation ids: two operations with one id collide."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Duplicate Operation ID")
        document = client.get("/openapi.json").json()
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values() if "operationId" in op]
    assert len(ids) == len(set(ids)) > 50
    swift = document["paths"]["/v1/{account}/{container}/{name}"]
    assert set(swift) == {"put", "post", "head", "get"}  # deleting and copying evidence are refused, not offered
