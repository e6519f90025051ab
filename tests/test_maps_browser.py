"""The maps in a real browser (Debian's Chromium through Playwright): on a fresh install (no tile source) the map
says it is an offline basemap and draws the commune's named streets; the rights form finds a street by name and
takes the place and the radius from the map, the typed fields still working; the request shows the place as its
street."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import expect

from temoin.db import utcnow
from temoin.geo import demo_commune
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.web.basemap import load_streets
from tests.helpers import make_commune, sign_in_page, upload
from tests.map_helpers import STREETS

pytestmark = pytest.mark.slow
TIMEOUT_MS = 30_000
NOTICE = "Fond de plan hors ligne : configurez une source de tuiles, voir docs/deploy.md"


@pytest.fixture
def page(browser, server_url: str):
    context = browser.new_context(base_url=server_url, locale="fr-FR", viewport={"width": 1280, "height": 1400})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    yield pg
    context.close()


def test_the_rights_form_picks_the_place_on_the_map_and_finds_streets_by_name(platform: Platform, page) -> None:
    commune = make_commune(platform, cameras=0)
    with platform.session() as db:
        load_streets(platform, db, platform.tenant(db, commune.slug), STREETS)
        db.commit()
    sign_in_page(page, platform, commune.users[Role.CHIEF])
    page.goto("/rights")
    form = page.locator("#new-request")
    picker = form.locator("[data-place-picker]")
    expect(picker.locator(".map-notice")).to_have_text(NOTICE)  # no tile source: said on the map

    # The street search: accents and case do not matter; a pick centres the map and sets the place.
    search = form.get_by_label("Chercher une rue")
    search.fill("QUAI DES PE")
    expect(picker.locator(".street-results button")).to_have_text(["Quai des Pêcheurs"])
    search.press("Enter")
    expect(form.get_by_label("Latitude")).to_have_value("43.553500")  # halfway along the quay
    expect(form.get_by_label("Longitude")).to_have_value("4.088000")
    expect(picker.locator(".place-text")).to_have_text("Quai des Pêcheurs · 43.55350, 4.08800")
    expect(picker.locator(".leaflet-tooltip.street-label", has_text="Quai des Pêcheurs")).to_be_visible()
    search.fill("zz")
    expect(picker.locator(".street-results")).to_have_text("Aucune rue de la commune ne commence ainsi.")

    # A click on the map sets the place where it was clicked (the user pans there first).
    picker.evaluate("el => el.temoinMap.setView([43.5585, 4.0795], 17, {animate: false})")
    picker.locator(".place-map").scroll_into_view_if_needed()
    box = picker.locator(".place-map").bounding_box()
    point = picker.evaluate(
        "el => { const p = el.temoinMap.latLngToContainerPoint([43.5580, 4.0803]); return [p.x, p.y]; }"
    )
    page.mouse.click(box["x"] + point[0], box["y"] + point[1])
    lat = float(form.get_by_label("Latitude").input_value())
    lon = float(form.get_by_label("Longitude").input_value())
    assert abs(lat - 43.558) < 2e-5 and abs(lon - 4.0803) < 2e-5
    expect(picker.locator(".place-text")).to_contain_text("Rue du Port · ")

    # The handle on the circle's edge sets the radius.
    radius = form.get_by_label("Rayon (m)")
    assert radius.input_value() == "200"
    picker.evaluate("el => el.temoinMap.setView([43.558, 4.0803], 16, {animate: false})")  # the whole circle in view
    handle = picker.locator(".radius-handle").bounding_box()
    hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(hx, hy)
    page.mouse.down()
    page.mouse.move(hx + 40, hy, steps=5)
    page.mouse.move(hx + 80, hy, steps=5)
    page.mouse.up()
    widened = int(radius.input_value())
    assert widened > 200
    circle = picker.evaluate(
        "el => { let r = null; el.temoinMap.eachLayer(l => { if (l instanceof L.Circle) "
        "r = l.getRadius(); }); return r; }"
    )
    assert circle == widened

    # The typed fields stay: typing moves the place (keyboard users never need the map).
    form.get_by_label("Latitude").fill("43.5536")
    form.get_by_label("Longitude").fill("4.0900")
    expect(picker.locator(".place-text")).to_have_text("Quai des Pêcheurs · 43.55360, 4.09000")
    assert picker.get_attribute("data-lat") == "43.5536"

    # Saved, the request shows its place as a street with the coordinates after.
    form.get_by_label("Description de la personne", exact=False).fill("veste rouge, sur le quai")
    form.get_by_label("Contact pour la réponse").fill("dupont@example.org")
    form.get_by_role("button", name="Enregistrer").click()
    expect(page).to_have_url(re.compile(r"/rights/\d+$"))
    expect(page.locator("#request-place")).to_have_text(f"Quai des Pêcheurs · 43.55360, 4.09000 ({widened} m)")


def test_the_csu_map_draws_the_streets_with_their_names_and_says_it_is_offline(platform: Platform, page) -> None:
    commune = make_commune(platform, cameras=0)
    with platform.session() as db:
        load_streets(platform, db, platform.tenant(db, commune.slug), STREETS)
        db.commit()
    sign_in_page(page, platform, commune.users[Role.CSU_OPERATOR])
    page.goto("/live")
    expect(page.locator("#csu-map .map-notice")).to_have_text(NOTICE)
    page.wait_for_function("() => window.temoinCsu && window.temoinCsu.map")
    page.evaluate("() => window.temoinCsu.map.setView([43.558, 4.080], 17, {animate: false})")
    expect(page.locator("#csu-map .street-label", has_text="Rue du Port")).to_be_visible()


@pytest.fixture
def api(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as c:
        yield c


def test_the_review_player_names_the_street_the_marker_is_on(platform: Platform, page, api) -> None:
    commune = make_commune(platform, cameras=1)
    with platform.session() as db:
        load_streets(platform, db, platform.tenant(db, commune.slug), demo_commune.commune())
        db.commit()
    rid, _ = upload(
        platform,
        api,
        commune,
        started_at=utcnow() - timedelta(hours=1),
        duration_s=4,
        segment_s=2,
        street="Rue du Port",
    )
    sign_in_page(page, platform, commune.users[Role.CHIEF])
    page.goto(f"/recordings/{rid}")
    form = page.locator("#motive-form")
    form.get_by_label("Motif de la consultation").select_option("incident_review")
    form.get_by_label("Précisez (obligatoire)").fill("Analyse de l'intervention rue du Port")
    form.get_by_role("button", name="Consulter").click()
    expect(page.locator("#marker-place")).to_have_text(re.compile(r"^Rue du Port · 43\.5\d{4}, 4\.0\d{4}$"))
