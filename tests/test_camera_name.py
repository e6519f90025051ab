"""One camera name everywhere: the tenant's label of the camera (its asset tag), never its technical id, on the
review page, the search results and the CSU's transmissions; the id stays in the API and as the tooltip."""

from __future__ import annotations

from datetime import timedelta

import httpx
import orjson
import pytest
from playwright.sync_api import expect

from temoin.db import utcnow
from temoin.identity.models import Device
from temoin.law.access import Role
from temoin.platform import Platform
from tests.helpers import make_commune, upload
from tests.live_helpers import (  # noqa: F401 - fixtures, which pytest finds by name
    FIX,
    _cheap_password_hashes,
    on_shift,
    open_dashboard,
    server,
    settings,
    sign_in_context,
    signed,
)

pytestmark = pytest.mark.slow

TAG = "PT-BWC-005"


def press_live(url: str, commune) -> str:
    """The camera's live button, signed over its body as the camera signs it."""
    path, body = "/api/v1/live/sessions", orjson.dumps({"reason": "threat", "position": FIX.model_dump(mode="json")})
    r = httpx.post(
        f"{url}{path}",
        content=body,
        headers={**signed(commune, "POST", path, body=body), "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_the_same_camera_has_the_same_name_on_review_search_and_the_csu(
    platform: Platform, server: str, browser
) -> None:
    commune = make_commune(platform, cameras=1)
    device_id = commune.cameras[0][0]
    with platform.session() as db:
        db.get(Device, device_id).label = TAG
        db.commit()
    with httpx.Client(base_url=server, timeout=30) as api:
        rid, _ = upload(platform, api, commune, started_at=utcnow() - timedelta(minutes=10), duration_s=2)
    on_shift(platform, commune)

    context = browser.new_context(base_url=server, locale="fr-FR", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        sign_in_context(platform, context, commune.users[Role.CHIEF])
        page = context.new_page()
        page.goto("/recordings")
        cell = page.locator(f'tr[data-recording="{rid}"] td.camera')
        expect(cell).to_have_text(TAG)
        assert cell.get_attribute("title") == device_id
        camera_filter = page.locator("#search-form select[name=camera]")
        expect(camera_filter.locator(f'option[value="{device_id}"]')).to_have_text(TAG)
        page.goto(f"/recordings/{rid}")
        expect(page.locator("#camera")).to_have_text(TAG)
        assert page.locator("#camera").get_attribute("title") == device_id
        assert device_id not in page.locator(".meta").inner_text()
    finally:
        context.close()

    sid = press_live(server, commune)
    context, page = open_dashboard(platform, browser, server, commune.users[Role.CSU_OPERATOR])
    try:
        cell = page.locator(f'#live-sessions tr[data-session="{sid}"] td.camera')
        expect(cell).to_have_text(TAG)
        assert cell.get_attribute("title") == device_id
    finally:
        context.close()
