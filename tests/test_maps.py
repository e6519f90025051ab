"""The maps on a fresh install: the offline basemap from the tenant's own streets, positions named by their
nearest street, and the street search of the rights form."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from temoin.geo.streets import StreetsInvalid, fold
from temoin.identity import service
from temoin.identity.models import Tenant
from temoin.journal.models import JournalEntry
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.web.basemap import load_streets
from tests.helpers import make_commune, sign_in
from tests.map_helpers import STREETS


@pytest.fixture
def commune(platform: Platform):
    c = make_commune(platform, cameras=0)
    with platform.session() as db:
        load_streets(platform, db, platform.tenant(db, c.slug), STREETS)
        db.commit()
    return c


def test_a_position_is_named_by_its_nearest_street(platform: Platform, client, commune) -> None:
    sign_in(platform, client, commune.users[Role.CSU_OPERATOR])
    r = client.get("/api/v1/map/place", params={"lat": 43.5580, "lon": 4.0803})
    assert r.status_code == 200, r.text
    place = r.json()
    assert place["street"] == "Rue du Port" and 20 < place["distance_m"] < 30
    assert place["coordinates"] == "43.55800, 4.08030"
    # Far from every street: the coordinates alone, rather than a street that is not there.
    far = client.get("/api/v1/map/place", params={"lat": 43.60, "lon": 4.08}).json()
    assert far["street"] is None and far["coordinates"] == "43.60000, 4.08000"
    assert client.get("/api/v1/map/place", params={"lat": 91, "lon": 4}).status_code == 422


def test_streets_are_found_by_the_start_of_their_name_without_case_or_accents(
    platform: Platform, client, commune
) -> None:
    sign_in(platform, client, commune.users[Role.MAYOR])

    def names(q: str) -> list[str]:
        return [s["name"] for s in client.get("/api/v1/map/streets", params={"q": q}).json()]

    assert names("quai des pe") == ["Quai des Pêcheurs"]
    assert names("QUAI DES PÊ") == ["Quai des Pêcheurs"]
    assert names("rue") == ["Rue de l'Église", "Rue du Port"]
    assert names("rue de l eglise") == ["Rue de l'Église"]
    assert names("port") == ["Rue du Port"]  # a word of the name
    assert names("ort") == []  # a prefix, not any substring
    found = client.get("/api/v1/map/streets", params={"q": "rue du"}).json()
    assert found == [{"name": "Rue du Port", "lat": 43.558, "lon": 4.08}]  # a point on the street to centre on


def test_the_streets_and_places_of_a_tenant_stay_its_own(platform: Platform, client, commune) -> None:
    other = make_commune(platform, slug="autre-ville", cameras=0)
    sign_in(platform, client, other.users[Role.MAYOR])
    assert client.get("/api/v1/map/streets", params={"q": "rue"}).json() == []
    assert client.get("/api/v1/map/place", params={"lat": 43.558, "lon": 4.0803}).json()["street"] is None
    client.cookies.clear()
    assert client.get("/api/v1/map/streets", params={"q": "rue"}).status_code == 401
    assert client.get("/api/v1/map/place", params={"lat": 43.558, "lon": 4.08}).status_code == 401


def test_the_offline_basemap_draws_the_named_streets_and_says_tiles_can_be_configured(
    platform: Platform, client, commune
) -> None:
    sign_in(platform, client, commune.users[Role.CSU_OPERATOR])
    b = client.get("/api/v1/map/basemap", headers={"Accept-Language": "fr-FR"}).json()
    assert b["offline"] is True and b["tile_url"] is None
    assert b["notice"] == "Fond de plan hors ligne : configurez une source de tuiles, voir docs/deploy.md"
    streets = [f["properties"]["name"] for f in b["overlay"]["features"] if f["properties"]["kind"] == "street"]
    assert streets == ["Quai des Pêcheurs", "Rue de l'Église", "Rue du Port"]  # the unnamed line is left out
    assert any(f["properties"]["kind"] == "territory" for f in b["overlay"]["features"])
    with platform.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == commune.slug))
        service.update_settings(
            platform, db, tenant, {"tile_url": "https://tiles.example/{z}/{x}/{y}.png", "tile_attribution": "© Example"}
        )
        db.commit()
    b = client.get("/api/v1/map/basemap").json()
    assert b["offline"] is False and b["notice"] is None and b["tile_url"].startswith("https://tiles.example/")


def test_the_basemap_is_sent_again_only_when_it_changed(platform: Platform, client, commune) -> None:
    """Each map load asks for the basemap (the whole street list): the browser keeps it and revalidates it."""
    sign_in(platform, client, commune.users[Role.CSU_OPERATOR])
    first = client.get("/api/v1/map/basemap", headers={"Accept-Language": "fr-FR"})
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag and "no-cache" in first.headers["Cache-Control"]
    assert "private" in first.headers["Cache-Control"]  # the tenant's, behind its session: no shared cache
    again = client.get("/api/v1/map/basemap", headers={"Accept-Language": "fr-FR", "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    # Another language (its notice) or a changed setting: a new body, a new tag.
    english = client.get("/api/v1/map/basemap", headers={"Accept-Language": "en", "If-None-Match": etag})
    assert english.status_code == 200 and english.headers["ETag"] != etag
    with platform.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == commune.slug))
        service.update_settings(platform, db, tenant, {"tile_url": "https://tiles.example/{z}/{x}/{y}.png"})
        db.commit()
    changed = client.get("/api/v1/map/basemap", headers={"Accept-Language": "fr-FR", "If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["tile_url"].startswith("https://tiles.example/")
    client.cookies.clear()
    assert client.get("/api/v1/map/basemap", headers={"If-None-Match": etag}).status_code == 401


def test_a_streets_file_without_named_lines_is_refused_and_a_load_is_journaled(platform: Platform, commune) -> None:
    with platform.session() as db:
        tenant = platform.tenant(db, commune.slug)
        with pytest.raises(StreetsInvalid, match="named street"):
            load_streets(
                platform,
                db,
                tenant,
                {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "properties": {"kind": "territory"},
                            "geometry": {"type": "Polygon", "coordinates": [[[4, 43], [4.1, 43], [4, 43.1], [4, 43]]]},
                        }
                    ],
                },
            )
        with pytest.raises(StreetsInvalid, match="FeatureCollection"):
            load_streets(platform, db, tenant, {"type": "LineString", "coordinates": [[4, 43], [4.1, 43]]})
        events = db.scalars(select(JournalEntry.event).where(JournalEntry.event == "tenant.streets_set")).all()
    assert len(events) == 1


def test_fold_compares_without_case_accents_or_punctuation() -> None:
    assert fold("Quai des Pêcheurs") == "quai des pecheurs"
    assert fold("  RUE DE L'ÉGLISE ") == "rue de l eglise"
    assert fold("Œuvre") == "œuvre"


def test_a_rights_request_shows_its_place_and_its_candidates_closest_positions_as_streets(
    platform: Platform, client
) -> None:
    from datetime import timedelta

    from temoin.geo import demo_commune
    from tests.rights_helpers import AVENUE, _create, _scene

    commune, t0, avenue, quay, _ = _scene(platform, client)
    with platform.session() as db:
        load_streets(platform, db, platform.tenant(db, commune.slug), demo_commune.commune())
        db.commit()
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    req = _create(
        client,
        csrf,
        lat=AVENUE[0],
        lon=AVENUE[1],
        radius_m=5000,
        facts_start=(t0 - timedelta(minutes=10)).isoformat(),
        facts_end=(t0 + timedelta(minutes=10)).isoformat(),
    )
    page = client.get(f"/rights/{req['id']}").text
    assert (
        '<span class="place-street">Avenue de la Mer</span> · <span class="place-coords">43.55600, 4.07000</span>'
        in page
    )
    rows = {rid: page.split(f'data-recording="{rid}"', 1)[1].split("</tr>", 1)[0] for rid in (avenue, quay)}
    assert '<span class="place-street">Avenue de la Mer</span>' in rows[avenue]  # its fix closest to the place
    assert '<span class="place-street">Quai des Pêcheurs</span>' in rows[quay]


def test_the_cli_loads_a_tenants_streets_and_refuses_a_file_without_any(tmp_path, database_url: str) -> None:
    import json
    import os

    from temoin.geo import demo_commune
    from tests.helpers import run

    env = {**os.environ, "TEMOIN_HOME": str(tmp_path / "home"), "TEMOIN_DATABASE_URL": database_url, "COLUMNS": "200"}
    streets, empty = tmp_path / "streets.geojson", tmp_path / "empty.geojson"
    streets.write_text(json.dumps(STREETS), "utf-8")
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}), "utf-8")
    assert run(env, "init").returncode == 0
    territory = tmp_path / "territory.geojson"
    territory.write_text(json.dumps(demo_commune.territory()), "utf-8")
    r = run(env, "admin", "tenant", "create", "ville", "Ville", "--cameras", "1", "--territory", str(territory))
    assert r.returncode == 0, r.stderr
    r = run(env, "admin", "tenant", "streets", "ville", str(streets))
    assert r.returncode == 0, r.stderr
    assert "3 streets of ville loaded" in r.stdout
    r = run(env, "admin", "tenant", "streets", "ville", str(empty))
    assert r.returncode == 1 and "no named street" in r.stderr and "'name'" in r.stderr
    r = run(env, "admin", "tenant", "streets", "nowhere", str(streets))
    assert r.returncode == 1
