"""An EPCI runs one service for several communes, each commune's data kept apart: a recording takes the commune
its GPS track starts in (the territory's features carry INSEE codes), and a user limited to commune A never
learns of commune B's recordings (search, details, consultation, extraction)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from temoin.geo.communes import commune_at, commune_of
from temoin.identity import service
from temoin.law.access import Role
from temoin.vault.models import Recording
from tests.helpers import PASSWORD, Commune, enrol_camera, sign_in, upload

WEST, EAST = "34001", "34002"


def _square(lon0: float, lon1: float) -> list[list[list[float]]]:
    return [[[lon0, 43.54], [lon1, 43.54], [lon1, 43.58], [lon0, 43.58], [lon0, 43.54]]]


TERRITORY = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"insee": WEST, "nom": "Ouest"},
     "geometry": {"type": "Polygon", "coordinates": _square(4.06, 4.08)}},
    {"type": "Feature", "properties": {"insee": EAST, "nom": "Est"},
     "geometry": {"type": "Polygon", "coordinates": _square(4.08, 4.10)}},
]}


def test_the_commune_of_a_position() -> None:
    assert commune_at(TERRITORY, 43.556, 4.07) == WEST and commune_at(TERRITORY, 43.553, 4.087) == EAST
    assert commune_at(TERRITORY, 43.60, 4.07) is None
    assert commune_of(TERRITORY, [(43.60, 4.07), (43.553, 4.087), (43.556, 4.07)]) == EAST  # first fix in one
    assert commune_of({"type": "Polygon", "coordinates": _square(4.06, 4.10)}, [(43.556, 4.07)]) is None


def _epci(platform) -> Commune:
    epci = Commune("agglo")
    with platform.session() as db:
        tenant = service.create_tenant(platform, db, slug="agglo", name="Agglo du Littoral",
                                       profile="fr-police-municipale", authorised_cameras=4, territory=TERRITORY,
                                       kind="epci", communes=[WEST, EAST])
        for username, communes in (("chief-all", None), ("chief-west", [WEST]), ("chief-east", [EAST])):
            service.create_user(platform, db, tenant, username=username, display_name=username, role=Role.CHIEF,
                                password=PASSWORD, communes=communes)
        db.commit()
    epci.cameras.append(enrol_camera(platform, "agglo", "agglo-cam-0"))
    return epci


def test_users_of_one_commune_never_see_anothers_recordings(platform, client):
    epci = _epci(platform)
    west, _ = upload(platform, client, epci, street="Avenue de la Mer", duration_s=2, segment_s=2)
    east, _ = upload(platform, client, epci, street="Quai des Pêcheurs", duration_s=2, segment_s=2, seed=2)
    unplaced, _ = upload(platform, client, epci, street="Avenue de la Mer", duration_s=2, segment_s=2, seed=3)
    with platform.session() as db:
        assert db.get(Recording, west).commune == WEST and db.get(Recording, east).commune == EAST
        db.execute(update(Recording).where(Recording.id == unplaced).values(commune=None))  # no fix in a commune
        db.commit()

    def listed() -> set[str]:
        r = client.get("/api/v1/recordings")
        assert r.status_code == 200, r.text
        return {rec["id"] for rec in r.json()}

    sign_in(platform, client, "chief-all")
    assert listed() == {west, east, unplaced}

    for user, mine, theirs in (("chief-west", west, east), ("chief-east", east, west)):
        csrf = sign_in(platform, client, user)
        assert listed() == {mine}, user
        assert client.get(f"/api/v1/recordings/{mine}").status_code == 200
        for rid in (theirs, unplaced):
            assert client.get(f"/api/v1/recordings/{rid}").status_code == 404
            r = client.post(f"/api/v1/recordings/{rid}/consultations", headers={"X-CSRF-Token": csrf},
                            json={"motive": {"code": "incident_review", "text": "relecture"}})
            assert r.status_code == 404, r.text
            r = client.post("/api/v1/extractions", headers={"X-CSRF-Token": csrf}, json={
                "recording_ids": [rid], "recipient_name": "OPJ Martin", "recipient_kind": "judicial_police",
                "procedure_type": "judicial", "reference": "PV 2026/1"})
            assert r.status_code in (403, 404) and rid not in r.text.replace(f"no recording {rid}", ""), r.text


def test_a_user_is_limited_only_to_communes_the_epci_serves(platform):
    _epci(platform)
    with platform.session() as db:
        tenant = platform.tenant(db, "agglo")
        for communes in (["99999"], []):
            with pytest.raises(service.IdentityError, match="serves the communes 34001, 34002"):
                service.create_user(platform, db, tenant, username="x-user", display_name="x", role=Role.CHIEF,
                                    password=PASSWORD, communes=communes)
